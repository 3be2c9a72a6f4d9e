import DumpGen
import DumpIO
import Foundation
import P2MFormat
import Testing
import TestSupport
import Translation
@testable import P2MTools

let buildDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent(".build/debug").path
func tool(_ name: String) -> String {
    let p = buildDir + "/" + name
    if !FileManager.default.isExecutableFile(atPath: p) { Issue.record("\(name) not built at \(p)") }
    return p
}

/// What a new user ran into (the architecture issue's list), each as a test that failed before.
@Suite(.serialized) struct NewUserDefectTests {
    // 1. Auto mode reads only dumps; anything else says what it found, exit 1, no note written.
    @Test func emitRefusesWhatIsNotADump() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        let note = try emitNote(g).note.elfNoteBytes
        let cases: [(String, [UInt8], String)] = [
            ("kdump", Array("KDUMP   ".utf8) + [UInt8](repeating: 0, count: 600), "kdump-compressed: header_version 0"),
            ("flat", Array("makedumpfile".utf8) + [UInt8](repeating: 0, count: 600), "flattened: file of 612 bytes"),
            ("random", (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }, "no known dump magic"),
            ("note", note, "p2mnote note file"),
            ("gz", [0x1f, 0x8b, 8, 0] + [UInt8](repeating: 0, count: 100), "gzip"),
            ("empty", [], "empty file"),
        ]
        for (name, bytes, what) in cases {
            let p = d + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: p))
            let r = try runTool([tool("p2m-emit"), p])
            #expect(r.status == 1 && (r.stderr.contains("not a dump") || name == "kdump" || name == "flat") && r.stderr.contains(what), "\(name): \(r.status) \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: p + ".p2mnote"), "\(name): a note was written")
        }
        // Raw tables only when asked for.
        let raw = d + "/t.raw"
        try Data((0..<512).flatMap { withUnsafeBytes(of: UInt64(0x1000 + $0).littleEndian) { Array($0) } }).write(to: URL(fileURLWithPath: raw))
        #expect(try runTool([tool("p2m-emit"), raw]).status == 1)
        #expect(try runTool([tool("p2m-emit"), raw, "--from", "raw"]).status == 0)
    }

    // 2. A directory is an error, not a trap; an existing note is not overwritten without --force.
    @Test func emitOutputsAreCheckedAndNeverOverwrittenSilently() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        let dirRun = try runTool([tool("p2m-emit"), d])
        #expect(dirRun.status == 1 && dirRun.stderr.contains("is a directory"), "\(dirRun.status) \(dirRun.stderr)")
        let fifo = d + "/fifo"; mkfifo(fifo, 0o644)
        let fifoRun = try runTool([tool("p2m-analyze"), fifo, "info"])
        #expect(fifoRun.status == 1 && fifoRun.stderr.contains("FIFO"), "\(fifoRun.stderr)")
        let first = try runTool([tool("p2m-emit"), g.path, "--system-map", g.systemMapPath])
        #expect(first.status == 0, "\(first.stderr)")
        let again = try runTool([tool("p2m-emit"), g.path, "--system-map", g.systemMapPath])
        #expect(again.status == 1 && again.stderr.contains("--force"), "\(again.stderr)")
        #expect(try runTool([tool("p2m-emit"), g.path, "--system-map", g.systemMapPath, "--force"]).status == 0)
        let toDir = try runTool([tool("p2m-emit"), g.path, "--system-map", g.systemMapPath, "-o", d])
        #expect(toDir.status == 1 && toDir.stderr.contains("is a directory"), "\(toDir.stderr)")
        // No temporary files left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: d).filter { $0.contains(".tmp-") }.isEmpty)
    }

    // 3. A note made from another dump is refused before anything is written.
    @Test func injectRefusesANoteFromAnotherDump() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        let other = try dom0(d, "other.vmcore") { $0.seed = 99 }
        let n = d + "/other.note"
        try Data(try emitNote(other).note.elfNoteBytes).write(to: URL(fileURLWithPath: n))
        let before = try Data(contentsOf: URL(fileURLWithPath: g.path))
        let r = try runTool([tool("p2m-inject"), g.path, "--note", n])
        #expect(r.status == 1 && r.stderr.contains("does not match") && r.stderr.contains("frame-tree"), "\(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: g.path)) == before, "the dump was changed")
        let f = try runTool([tool("p2m-inject"), g.path, "--note", n, "--force"])
        #expect(f.status == 0 && f.stderr.contains("--force"), "\(f.stderr)")
        // A matching note passes the same check and says what it was compared with.
        let own = d + "/own.note"
        try Data(try emitNote(g).note.elfNoteBytes).write(to: URL(fileURLWithPath: own))
        let ok = try runTool([tool("p2m-inject"), g.path, "--note", own, "--replace", "--system-map", g.systemMapPath])
        #expect(ok.status == 0 && ok.stdout.contains("agrees with linear-list, frame-tree"), "\(ok.stdout)\(ok.stderr)")
    }

    // 4. Coverage is not disagreement: a note from .xen_p2m (65,536 pfns) against a 2^27-slot list.
    @Test func checkComparesWhatBothCover() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = XLDumpOptions(); o.guestMiB = 128; o.nrPfns = 1 << 20
        let g = try DumpGenerator.generateXL(o, to: d + "/domU.xcore")
        var e = EmitOptions(input: g.path); e.from = .xlP2M
        let r = try Emitter.emit(e)
        #expect(r.note.header.nrPfns < 1 << 20)
        _ = try NoteInjector(path: g.path).run(action: .add, note: r.note.elfNoteBytes)
        let out = try session(g).execute(["check"])
        #expect(out.exitCode == 0, "\(out.text)")
        #expect(out.text.contains("note covers \(r.note.header.nrPfns) pfns, linear-list \(1 << 20)"), "\(out.text)")
    }

    // 5. Options after the command; bare hex; ptov bounds; sym of module and data addresses.
    @Test func commandWordsBehaveLikeCrash() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        let after = try runTool([tool("p2m-analyze"), g.path, "mod", "--system-map", g.systemMapPath])
        #expect(after.status == 0 && after.stdout.contains(g.manifest.modules[0].name), "\(after.stderr)")
        let s = try session(g)
        let m = g.manifest.modules[1]
        let bare = try s.execute(["rd", String(m.structAddress + 0x18, radix: 16), "2"])
        #expect((bare.json as? [String: Any])?["hex"] as? String == Array(m.name.utf8).map { String(format: "%02x", $0) }.joined() + String(repeating: "00", count: 16 - m.name.utf8.count))
        #expect(throws: (any Error).self) { _ = try s.execute(["ptov", "ffffffffffffffff"]) }
        #expect(throws: (any Error).self) { _ = try s.execute(["ptov", String((g.manifest.nrPfns + 1) << 12, radix: 16)]) }
        let sym = try s.execute(["sym", String(m.base + 0x10, radix: 16)]).text
        #expect(sym.contains(m.name + "+0x10") && !sym.contains("_end"), "\(sym)")
        let data = try s.execute(["sym", "xen_p2m_addr"]).text
        #expect(data.contains("data") && !data.contains("kernel text"), "\(data)")
        let help = try s.execute(["rd", "--help"]).text
        #expect(help.contains("pseudo-physical") && help.lowercased().contains("count"), "\(help)")
    }

    // 6. The prompt: completion of commands and symbols, history, Ctrl-C drops the line, not the session.
    @Test func promptEditsCompletesAndSurvivesCtrlC() throws {
        requireTool("/usr/bin/tmux")
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        let s = "p2mtest\(getpid())"
        // Its own server socket, and no pipes held by the forked server (runTool reads to EOF).
        func tm(_ a: [String]) throws -> ToolRun {
            // Tests run in parallel: close every descriptor another test's pipes left open in
            // this child, or the long-lived tmux server would hold them and hang that test.
            let closeInherited = "for f in /proc/$$/fd/*; do n=${f##*/}; [ \"$n\" -gt 2 ] 2>/dev/null && eval \"exec $n>&-\" 2>/dev/null; done; "
            return try runTool(["bash", "-c", closeInherited + "exec tmux -L \(s) \"$@\" 2>/dev/null" + (a.first == "capture-pane" ? "" : " >/dev/null"), "tmux"] + a)
        }
        _ = try tm(["new-session", "-d", "-s", s, "-x", "160", "-y", "40", "HOME=\(d) \(tool("p2m-analyze")) \(g.path) --system-map \(g.systemMapPath); echo SESSION-ENDED; sleep 20"])
        defer { _ = try? tm(["kill-server"]) }
        func keys(_ k: String...) throws { _ = try tm(["send-keys", "-t", s] + k); usleep(400_000) }
        usleep(1_500_000)
        try keys("ban", "Tab"); try keys("Enter")                  // command word completed
        try keys("sym xen_p2m_a", "Tab"); try keys("Enter")        // symbol completed
        try keys("banner"); try keys("C-c")                        // dropped, session goes on
        try keys("Up", "Enter")                                    // history: sym xen_p2m_addr again
        try keys("quit", "Enter")
        usleep(500_000)
        let pane = try tm(["capture-pane", "-t", s, "-p"]).stdout
        #expect(pane.contains("p2m> banner") && pane.contains("Linux version"), "\(pane)")
        #expect(pane.components(separatedBy: "= xen_p2m_addr").count == 3, "completion and history: \(pane)")
        #expect(pane.components(separatedBy: "Linux version").count == 2, "the interrupted banner must not run: \(pane)")
        #expect(pane.contains("SESSION-ENDED"), "quit ends it: \(pane)")
        let hist = try String(contentsOfFile: d + "/.p2m_analyze_history", encoding: .utf8)
        #expect(hist.contains("banner") && hist.contains("xen_p2m_addr"), "\(hist)")   // libedit writes spaces as \\040
    }

    // 7. JSON: addresses as strings, the dump in every result, errors as JSON, JSON Lines in scripts.
    @Test func jsonIsOneSchema() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        let r = try runTool([tool("p2m-analyze"), g.path, "--system-map", g.systemMapPath, "--json", "-"],
                            stdin: "info\nvtop linux_banner\nmod\nrd linux_banner 2\nsym nonexistent_symbol\n")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 4, "\(r.stdout)")
        for l in lines {
            let o = try JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any]
            #expect(o?["dump"] as? String == g.path && o?["result"] != nil, "\(l)")
        }
        let vtop = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any]
        #expect(((vtop?["result"] as? [String: Any])?["machine"] as? String)?.hasPrefix("0x") == true)
        let err = try JSONSerialization.jsonObject(with: Data(r.stderr.split(separator: "\n").last.map { Data($0.utf8) } ?? Data())) as? [String: Any]
        #expect(err?["command"] as? String == "sym" && (err?["error"] as? String)?.contains("nonexistent_symbol") == true, "\(r.stderr)")
        let e = try runTool([tool("p2m-emit"), g.path + ".missing", "--json"])
        let ej = try JSONSerialization.jsonObject(with: Data(e.stderr.utf8)) as? [String: Any]
        #expect(e.status == 1 && ej?["file"] as? String == g.path + ".missing", "\(e.stderr)")
        let em = try runTool([tool("p2m-emit"), g.path, "--system-map", g.systemMapPath, "--json", "-o", d + "/n"])
        let sj = try JSONSerialization.jsonObject(with: Data(em.stdout.utf8)) as? [String: Any]
        #expect((sj?["listVaddr"] as? String)?.hasPrefix("0x") == true && sj?["dump"] as? String == g.path, "\(em.stdout)")
    }

    // 8. --version on every tool.
    @Test func everyToolHasAVersion() throws {
        for t in ["p2m-emit", "p2m-inject", "p2m-analyze", "p2m-gendump"] {
            let r = try runTool([tool(t), "--version"])
            #expect(r.status == 0 && r.stdout.contains("p2mnote"), "\(t): \(r.stdout)\(r.stderr)")
        }
    }

    // 9. A note larger than the first PT_LOAD is injected (whole segments move); a failed -o leaves nothing.
    @Test func anyNoteSizeFitsAndAFailedCopyLeavesNothing() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d) { $0.makedumpfileELayout = true; $0.profile = .random; $0.guestMiB = 1024; $0.dom0VMCoreInfo = true }
        let big = try emitNote(g).note
        let first = try #require(try DumpFile.open(path: g.path).loads.min { $0.offset < $1.offset })
        #expect(UInt64(big.elfNoteBytes.count) > first.filesz, "note \(big.elfNoteBytes.count) B, first PT_LOAD \(first.filesz) B")
        let before = try ContentHash.of(DumpFile.open(path: g.path))
        _ = try NoteInjector(path: g.path).run(action: .add, note: big.elfNoteBytes)
        #expect(try ContentHash.of(DumpFile.open(path: g.path)) == before)
        let n = try #require(try DumpFile.open(path: g.path).p2mNote())
        #expect(try P2MNote.decode(descriptor: n.desc).header.mapDigest == g.manifest.p2mDigest)
        try checkReaders(g, path: g.path, expectNote: true)
        // -o onto a path whose directory vanishes mid-way cannot be staged; simplest failure: a
        // bad note after the copy. The copy must not remain.
        let bad = d + "/bad.note"; try Data([1, 2, 3]).write(to: URL(fileURLWithPath: bad))
        let r = try runTool([tool("p2m-inject"), g.path, "--note", bad, "-o", d + "/copy.vmcore"])
        #expect(r.status == 1 && !FileManager.default.fileExists(atPath: d + "/copy.vmcore"), "\(r.stderr)")
    }

    // 10. A real-size System.map (95,000 symbols) loads fast.
    @Test func aLargeSystemMapLoads() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        var text = ""
        for i in 0..<95_349 { text += String(format: "ffffffff%08x %@ sym_%06d_%@\n", 0x81000000 + i * 16, i % 3 == 0 ? "T" : "d", i, String(repeating: "x", count: i % 20)) }
        try text.write(toFile: d + "/System.map", atomically: true, encoding: .utf8)
        let t = try SymbolTable.systemMap(path: d + "/System.map")
        #expect(t.count == 95_349)
        #expect(t.address("sym_004711_" + String(repeating: "x", count: 4711 % 20)) == KVAddr(rawValue: 0xffffffff81000000 + 4711 * 16))
        #expect(t.symbol(at: KVAddr(rawValue: 0xffffffff81000000 + 4711 * 16 + 3))?.offset == 3)
        // Speed is a benchmark (Tools/bench symbols), not a timed test.
    }
}
