import DumpGen
import DumpIO
import Foundation
import Testing
import TestSupport

/// Fault injection at the system calls themselves: p2m-inject runs under Tools/failshim (an
/// LD_PRELOAD library built here with cc) that fails its Nth write, pwrite, fsync, ftruncate,
/// rename, open for writing or close of a written file, with ENOSPC, EIO, EDQUOT or EINTR, for
/// every N up to the last, for each container and for `-o` copies. After each run: exit 0 with a
/// note every reader finds, or exit 1 with a message naming the dump, the dump byte for byte as
/// it was and no journal left (a `-o` output is complete or absent, its input untouched).
@Suite(.serialized) struct SyscallFaultTests {
    static let shimSource = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Tools/failshim/failshim.c").path

    @Test func everyFailingSystemCallOfEveryLayout() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let shim = d + "/failshim.so"
        let cc = try runTool(["cc", "-shared", "-fPIC", "-O1", "-o", shim, Self.shimSource, "-ldl"])
        try #require(cc.status == 0, "REQUIRED: cc could not build the fault shim: \(cc.stderr)")
        let layouts = try injectionLayouts(in: d, seed: 13)
        // (name, dump, System.map, -o copy?): each layout in place, and two as -o copies.
        let cases: [(String, String, String, Bool)] = layouts.map { ($0.name, $0.path, $0.map, false) }
            + layouts.filter { $0.name == "ELF slack" || $0.name == "kdump-compressed" }.map { ($0.name + " -o", $0.path, $0.map, true) }
        let errnos: [(String, Int32)] = [("ENOSPC", ENOSPC), ("EIO", EIO), ("EDQUOT", EDQUOT), ("EINTR", EINTR)]
        var summary: [String] = []
        for (name, source, map, copy) in cases {
            let original = try Data(contentsOf: URL(fileURLWithPath: source))
            let work = d + "/work", out = d + "/out"
            func run(_ env: [String: String]) throws -> ToolRun {
                _ = try? FileManager.default.removeItem(atPath: work); _ = try? FileManager.default.removeItem(atPath: out)
                _ = try? FileManager.default.removeItem(atPath: work + ".p2minject.journal")
                #expect(try runTool(["cp", "--sparse=always", source, work]).status == 0)
                let argv = ["env"] + env.map { "\($0.key)=\($0.value)" }.sorted() + ["LD_PRELOAD=" + shim, tool("p2m-inject"), work, "--emit", "--system-map", map] + (copy ? ["-o", out] : [])
                return try runTool(Array(argv.dropFirst()))
            }
            // A clean run counts the calls.
            let clean = try run(["FAILSHIM_COUNT": d + "/count"])
            try #require(clean.status == 0, "\(name): the clean run failed: \(clean.stderr)")
            let calls = Int(try String(contentsOfFile: d + "/count", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            #expect(calls >= 3, "\(name): \(calls) counted calls")
            var refused = 0, ok = 0
            for n in 1...max(1, calls) {
                for (ename, e) in errnos {
                    let r = try run(["FAILSHIM_AT": String(n), "FAILSHIM_ERRNO": String(e)])
                    let what = "\(name), call \(n) of \(calls) failing with \(ename)"
                    #expect(r.status == 0 || r.status == 1, "\(what): exit \(r.status) \(r.stderr)")
                    let target = copy ? out : work
                    let journal = FileManager.default.fileExists(atPath: target + ".p2minject.journal") || FileManager.default.fileExists(atPath: target + ".p2minject.journal.tmp")
                    #expect(!journal, "\(what): a journal was left (exit \(r.status))")
                    if copy {
                        #expect(try Data(contentsOf: URL(fileURLWithPath: work)) == original, "\(what): -o changed its input")
                    }
                    if r.status == 0 {
                        ok += 1
                        #expect(try openDump(path: target).p2mNotes.count == 1, "\(what): exit 0 and no note")
                    } else {
                        refused += 1
                        #expect(r.stderr.hasPrefix("p2m-inject: error: ") && r.stderr.contains(copy ? "out" : "work"), "\(what): \(r.stderr)")
                        if copy {
                            #expect(!FileManager.default.fileExists(atPath: out), "\(what): a partial -o output was left")
                        } else {
                            #expect(try Data(contentsOf: URL(fileURLWithPath: work)) == original, "\(what): exit 1 and the dump changed: \(r.stderr)")
                        }
                    }
                }
            }
            summary.append("\(name): \(calls) calls, \(refused) refused, \(ok) succeeded")
        }
        print("syscall faults: " + summary.joined(separator: "; "))
    }
}
