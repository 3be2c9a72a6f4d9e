import DumpIO
import Foundation
import P2MFormat
import Testing
import TestSupport
@testable import P2MTools

/// Real Xen dumps made by Tools/real-dump/make (not in CI: they take minutes and ~2 GB).
let realDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Tools/real-dump/work").path
let realVmcore = realDir + "/dom0.vmcore"
let realMap = realDir + "/System.map"
let haveRealDump: Bool = {
    let ok = FileManager.default.fileExists(atPath: realVmcore) && FileManager.default.fileExists(atPath: realMap)
    if !ok {
        FileHandle.standardError.write(Data("""
        ************************************************************************
        * RealDumpTests SKIPPED: no real Xen dump at \(realVmcore).
        * Make one with Tools/real-dump/make (Debian's Xen 4.17 + Linux 6.1 under
        * qemu); these tests then emit, check, inject and analyse it.
        ************************************************************************

        """.utf8))
    }
    return ok
}()

@Suite(.enabled(if: haveRealDump, "SKIPPED LOUDLY: no real dump in Tools/real-dump/work (run Tools/real-dump/make)"), .serialized)
struct RealDumpTests {
    @Test func emitCheckInjectAnalyze() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let dump = d + "/dom0.vmcore"
        try sparseCopy(from: realVmcore, to: dump)
        var o = EmitOptions(input: dump); o.systemMap = realMap
        let r = try Emitter.emit(o)
        #expect(r.summary.differences == 0, "linear list vs frame-list tree: \(r.summary.firstDifferences)")
        var t = o; t.from = .frameList
        let tree = try Emitter.emit(t)
        #expect(tree.note.header.nrPfns == r.note.header.nrPfns)
        _ = try NoteInjector(path: dump).run(action: .add, note: r.note.elfNoteBytes)
        var a = AnalyzerOptions(dump: dump); a.systemMap = realMap
        let s = try AnalyzerSession(a)
        #expect(try s.execute(["check"]).exitCode == 0)
        let banner = try s.execute(["banner"]).text
        if let truth = try? String(contentsOfFile: realDir + "/ground-truth/uname.txt", encoding: .utf8) {
            let release = truth.split(separator: " ").dropFirst(2).first.map(String.init) ?? ""
            #expect(banner.contains(release), "banner \(banner) vs uname \(truth)")
        }
        if let mods = try? String(contentsOfFile: realDir + "/ground-truth/modules.txt", encoding: .utf8) {
            let names = Set(mods.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) })
            let ours = Set((try s.execute(["mod"]).json as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
            #expect(ours == names, "mod \(ours.sorted()) vs /proc/modules \(names.sorted())")
        }
    }
}
