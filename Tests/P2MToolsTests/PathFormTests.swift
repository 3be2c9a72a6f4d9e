import DumpGen
import DumpIO
import Foundation
import Testing
import TestSupport

/// Every tool works with the file names users type: a bare one-character name (which trapped in
/// Foundation's deletingLastPathComponent, leaving a journal behind), "./", "../", a symlink, a
/// name with spaces, one with bytes that are not UTF-8; and says so cleanly for a directory it
/// cannot write in.
@Suite(.serialized) struct PathFormTests {
    @Test func directoryOfAPath() {
        let cases: [(String, String)] = [
            ("v", "."), ("./v", "."), ("../v", ".."), ("/v", "/"), ("a/b/c", "a/b"), ("a//b", "a"),
            ("dir/", "."), ("/a/b/", "/a"), ("//x", "/"), ("with space/x y", "with space"), ("", "."),
        ]
        for (path, dir) in cases { #expect(PathName.directory(of: path) == dir, "\(path)") }
    }

    @Test func injectAndAnalyzeWithEveryFormOfName() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d, "orig.vmcore")
        try FileManager.default.createDirectory(atPath: d + "/sub", withIntermediateDirectories: true)
        // (directory to cd into, the name typed, the file it names)
        let nonUTF8 = "caf\u{e9}"   // written below as Latin-1 bytes: not UTF-8
        let forms: [(String, String, String)] = [
            (d, "v", d + "/v"),
            (d, "./w", d + "/w"),
            (d + "/sub", "../x", d + "/x"),
            (d, "with space.vmcore", d + "/with space.vmcore"),
            (d, "link", d + "/target.vmcore"),
        ]
        for (cwd, name, file) in forms {
            try? FileManager.default.removeItem(atPath: file)
            #expect(try runTool(["cp", "--sparse=always", g.path, file]).status == 0)
            if name == "link" { try FileManager.default.createSymbolicLink(atPath: d + "/link", withDestinationPath: "target.vmcore") }
            let r = try sh(cwd, "\(q(tool("p2m-inject"))) \(q(name)) --emit --system-map \(q(g.systemMapPath))")
            #expect(r.status == 0, "inject \(name): \(r.status) \(r.stderr)")
            let named = cwd + "/" + name   // the journal sits beside the name given (a symlink's own)
            #expect(!FileManager.default.fileExists(atPath: file + ".p2minject.journal") && !FileManager.default.fileExists(atPath: named + ".p2minject.journal"),
                    "\(name): a journal was left")
            #expect(try openDump(path: file).p2mNotes.count == 1, "\(name): no note")
            let a = try sh(cwd, "\(q(tool("p2m-analyze"))) \(q(name)) check --system-map \(q(g.systemMapPath))")
            #expect(a.status == 0, "analyze \(name): \(a.stderr)")
        }
        // Non-ASCII names (UTF-8) work like any other.
        let utf8Name = "caf\u{e9} \u{2603}.vmcore"
        #expect(try runTool(["cp", "--sparse=always", g.path, d + "/" + utf8Name]).status == 0)
        let u = try sh(d, "\(q(tool("p2m-inject"))) \(q(utf8Name)) --emit --system-map \(q(g.systemMapPath)) && \(q(tool("p2m-analyze"))) \(q(utf8Name)) check --system-map \(q(g.systemMapPath))")
        #expect(u.status == 0, "\(utf8Name): \(u.stderr)")
        // A name whose bytes are not UTF-8 (Latin-1): Swift's CommandLine.arguments replaces such
        // bytes with U+FFFD, so the tools cannot name that file; they must refuse cleanly (exit
        // 1, no signal), leaving it as it was.
        let latin1 = "\\x63\\x61\\x66\\xe9"
        let r = try sh(d, "n=$(printf '\(latin1)'); cp --sparse=always orig.vmcore \"$n\" && \(q(tool("p2m-inject"))) \"$n\" --emit --system-map \(q(g.systemMapPath)); echo \"rc=$?\"; cmp orig.vmcore \"$n\" && echo same")
        #expect(r.stdout.contains("rc=0") || (r.stdout.contains("rc=1") && r.stdout.contains("same")), "\(nonUTF8) in Latin-1: \(r.stdout) \(r.stderr)")
        // A directory it cannot write in: refused before any change, with the reason and no journal.
        // (Root may write anywhere; the check is skipped loudly then.)
        if getuid() != 0 {
            try FileManager.default.createDirectory(atPath: d + "/ro", withIntermediateDirectories: true)
            #expect(try runTool(["cp", "--sparse=always", g.path, d + "/ro/y"]).status == 0)
            chmod(d + "/ro", 0o555)
            defer { chmod(d + "/ro", 0o755) }
            let before = try Data(contentsOf: URL(fileURLWithPath: d + "/ro/y"))
            let ro = try sh(d + "/ro", "\(q(tool("p2m-inject"))) y --emit --system-map \(q(g.systemMapPath))")
            #expect(ro.status == 1 && ro.stderr.contains("y"), "\(ro.status) \(ro.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: d + "/ro/y")) == before)
        } else {
            // Root writes through a mode-555 directory: a read-only mount stands for it.
            let ro = d + "/ro"
            try FileManager.default.createDirectory(atPath: ro, withIntermediateDirectories: true)
            if try runTool(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", ro]).status == 0 {
                defer { _ = try? runTool(["umount", ro]) }
                #expect(try runTool(["cp", "--sparse=always", g.path, ro + "/y"]).status == 0)
                #expect(try runTool(["mount", "-o", "remount,ro", ro]).status == 0)
                let before = try Data(contentsOf: URL(fileURLWithPath: ro + "/y"))
                let r = try sh(ro, "\(q(tool("p2m-inject"))) y --emit --system-map \(q(g.systemMapPath))")
                #expect(r.status == 1 && r.stderr.contains("p2m-inject: error:") && r.stderr.contains("y"), "\(r.status) \(r.stderr)")
                #expect(try Data(contentsOf: URL(fileURLWithPath: ro + "/y")) == before)
                // -o into it: refused before any work, naming the directory.
                let o = try runTool([tool("p2m-inject"), g.path, "--emit", "--system-map", g.systemMapPath, "-o", ro + "/copy"])
                #expect(o.status == 1 && o.stderr.contains("cannot write in"), "\(o.stderr)")
            } else {
                print("SKIPPED LOUDLY: cannot mount a tmpfs here; the read-only directory case is not tried")
            }
        }
    }

    private func sh(_ cwd: String, _ command: String) throws -> ToolRun {
        try runTool(["/bin/sh", "-c", "cd \(q(cwd)) && \(command)"])
    }

    private func q(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}
