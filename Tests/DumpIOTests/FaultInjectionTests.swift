import DumpGen
import DumpIO
import Foundation
import P2MFormat
import Testing
import TestSupport

/// A failing disk under every write and fsync of every injection layout: the Nth operation
/// fails with ENOSPC or EIO, for every N; after each failure the dump must be byte-identical
/// before the call returns, no journal may be left, and the error must say the dump was put back.
@Suite(.serialized) struct FaultInjectionTests {
    final class Faults: @unchecked Sendable {
        let lock = NSLock()
        var path = "", failAt = 0, errno: Int32 = 0, seen = 0
        func hook(_ p: String, _ op: String) -> Int32? {
            lock.lock(); defer { lock.unlock() }
            guard p == path else { return nil }
            seen += 1
            return seen == failAt ? errno : nil
        }
    }

    static let note: [UInt8] = {
        let e = P2MEncoder(width: .eight)
        try? e.append(entries: (0..<4096).map { 0x1000 + $0 })
        return (try? e.finish(metadata: .init(source: .rawTable)).elfNoteBytes) ?? []
    }()

    /// Every N of one layout and action; returns the number of operations a clean run makes.
    func sweep(_ path: String, _ action: InjectAction, _ what: String) throws -> Int {
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        let f = Faults(); f.path = path
        NoteInjector.faultHook = f.hook
        defer { NoteInjector.faultHook = nil }
        // A clean run on a copy counts the operations.
        let copy = path + ".count"
        try original.write(to: URL(fileURLWithPath: copy))
        defer { unlink(copy) }
        f.path = copy
        _ = try NoteInjector(path: copy).run(action: action, note: action == .remove ? nil : Self.note)
        let ops = f.seen
        #expect(ops >= 2, "\(what): \(ops) operations")
        f.path = path
        for n in 1...ops {
            for e in [ENOSPC, EIO] {
                f.failAt = n; f.errno = e; f.seen = 0
                do {
                    _ = try NoteInjector(path: path).run(action: action, note: action == .remove ? nil : Self.note)
                    Issue.record("\(what): the run succeeded although operation \(n) failed")
                } catch {
                    #expect("\(error)".contains("put the dump back byte for byte"), "\(what) op \(n) errno \(e): \(error)")
                    #expect("\(error)".contains(path), "\(what): the message names the dump")
                }
                let now = try Data(contentsOf: URL(fileURLWithPath: path))
                #expect(now == original, "\(what): operation \(n) failing (\(String(cString: strerror(e)))) left the dump changed")
                #expect(!FileManager.default.fileExists(atPath: path + ".p2minject.journal") && !FileManager.default.fileExists(atPath: path + ".p2minject.journal.tmp"), "\(what) op \(n): a journal was left")
                if now != original { try original.write(to: URL(fileURLWithPath: path)) }
            }
        }
        f.failAt = 0
        return ops
    }

    @Test func everyFailingWriteAndFsyncOfEveryLayoutLeavesTheDumpAsItWas() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = Dom0DumpOptions(); o.guestMiB = 96; o.machineMiB = 256; o.onlyWrittenPages = true
        let slack = try DumpGenerator.generateDom0(o, to: d + "/slack.vmcore")
        o.makedumpfileELayout = true
        let tight = try DumpGenerator.generateDom0(o, to: d + "/tight.vmcore")
        var x = XLDumpOptions(); x.guestMiB = 96; x.onlyWrittenPages = true
        let xl = try DumpGenerator.generateXL(x, to: d + "/domU.xcore")
        var k = KdumpWriteOptions(); k.excludeZeroPages = true
        try KdumpWriter.write(fromELF: slack.path, to: d + "/dom0.kdump", k)
        var counts: [String: Int] = [:]
        for (name, p) in [("ELF slack", slack.path), ("ELF makedumpfile -E", tight.path), ("xl dump-core", xl.path), ("kdump-compressed", d + "/dom0.kdump")] {
            counts[name + " add"] = try sweep(p, .add, name + " add")
            // Then with a note in place: replace and remove.
            _ = try NoteInjector(path: p).run(action: .add, note: Self.note)
            counts[name + " replace"] = try sweep(p, .replace, name + " replace")
            counts[name + " remove"] = try sweep(p, .remove, name + " remove")
        }
        FileHandle.standardError.write(Data("fault sweep: operations per layout \(counts.sorted { $0.key < $1.key })\n".utf8))
    }
}
