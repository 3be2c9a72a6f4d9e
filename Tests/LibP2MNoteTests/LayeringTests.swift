// libp2mnote.so sits on the reader core (GuestReader) only: no argument parser, no line editor,
// none of the tools' code; and p2mnote_open opens the dump once (issue 22).
import DumpGen
import Foundation
import Testing
import TestSupport

@Suite struct LayeringTests {
    /// The library's dependency closure in the package graph, and what the linked file holds.
    @Test func theLibraryCarriesNoCommandLine() throws {
        let lib = productsDir + "/libp2mnote.so"
        try #require(FileManager.default.fileExists(atPath: lib), "libp2mnote.so is not built at \(lib)")
        // The target graph: every target LibP2MNote reaches.
        // A scratch path of its own: `swift test` holds the lock of .build while this runs.
        let scratch = try tempDir(); defer { try? FileManager.default.removeItem(atPath: scratch) }
        let dump = try runTool(["swift", "package", "--package-path", repoRoot, "--scratch-path", scratch, "dump-package"])
        try #require(dump.status == 0, "swift package dump-package: \(dump.stderr.suffix(500))")
        let pkg = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        var deps: [String: [String]] = [:]
        for t in pkg["targets"] as? [[String: Any]] ?? [] {
            guard let name = t["name"] as? String else { continue }
            deps[name] = (t["dependencies"] as? [[String: Any]] ?? []).compactMap { d in
                ((d["byName"] ?? d["target"] ?? d["product"]) as? [Any])?.first as? String
            }
        }
        var reached: Set<String> = [], todo = ["LibP2MNote"]
        while let t = todo.popLast() { for d in deps[t] ?? [] where reached.insert(d).inserted { todo.append(d) } }
        #expect(reached.contains("GuestReader"), "LibP2MNote should sit on the reader core: \(reached.sorted())")
        for banned in ["P2MTools", "ArgumentParser", "CEdit"] {
            #expect(!reached.contains(banned), "LibP2MNote reaches \(banned) in the target graph: \(reached.sorted())")
        }
        // The linked file: no symbol of the argument parser, the tools or libedit, and no libedit.
        let nm = try runTool(["nm", lib])
        try #require(nm.status == 0, "nm: \(nm.stderr)")
        let symbols = nm.stdout.split(separator: "\n").map { $0.split(separator: " ").last.map(String.init) ?? "" }
        #expect(symbols.count > 1000, "nm listed only \(symbols.count) symbols")
        let argumentParser = symbols.filter { $0.contains("14ArgumentParser") }
        let tools = symbols.filter { $0.contains("8P2MTools") }
        let edit = symbols.filter { ["readline", "el_init", "add_history", "rl_completion_matches"].contains($0) }
        #expect(argumentParser.isEmpty, "\(argumentParser.count) ArgumentParser symbols, e.g. \(argumentParser.prefix(3))")
        #expect(tools.isEmpty, "\(tools.count) P2MTools symbols, e.g. \(tools.prefix(3))")
        #expect(edit.isEmpty, "libedit symbols: \(edit)")
        let ldd = try runTool(["ldd", lib])
        #expect(ldd.status == 0 && !ldd.stdout.contains("libedit"), "ldd: \(ldd.stdout)")
    }

    /// strace counts the opens of the dump's path during p2mnote_open, get_info and a read.
    @Test func openOpensTheDumpOnce() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/strace") else {
            Issue.record("REQUIRED EXTERNAL TOOL MISSING: /usr/bin/strace — make deps / .ci/run installs it")
            return
        }
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = Dom0DumpOptions(); o.guestMiB = 128; o.seed = 5
        let g = try DumpGenerator.generateDom0(o, to: d + "/dom0.vmcore")
        let src = d + "/open_once.c"
        try """
        #include <p2mnote.h>
        #include <stdio.h>
        int main(int argc, char **argv) {
            (void)argc;
            struct p2mnote_open_options o = { .struct_size = sizeof o, .system_map = argv[2] };
            p2mnote *h = NULL;
            if (p2mnote_open(argv[1], &o, &h) != P2MNOTE_OK) { fprintf(stderr, "%s\\n", p2mnote_last_error()); return 1; }
            struct p2mnote_info i = { .struct_size = sizeof i };
            unsigned char b[16]; size_t done = 0;
            if (p2mnote_get_info(h, &i) != P2MNOTE_OK || p2mnote_read(h, P2MNOTE_MACHINE, 0x100000, b, sizeof b, &done) != P2MNOTE_OK) {
                fprintf(stderr, "%s\\n", p2mnote_last_error()); return 1;
            }
            p2mnote_close(h);
            return 0;
        }
        """.write(toFile: src, atomically: true, encoding: .utf8)
        let cc = try runTool(["cc", "-std=c11", "-I", repoRoot + "/Sources/CP2MNote/include", src, "-L", productsDir,
                              "-Wl,-rpath," + productsDir, "-lp2mnote", "-o", d + "/open_once"])
        try #require(cc.status == 0, "cc: \(cc.stderr)")
        let trace = d + "/trace"
        let r = try runTool(["strace", "-f", "-e", "trace=open,openat,openat2", "-o", trace, d + "/open_once", g.path, g.systemMapPath])
        #expect(r.status == 0, "open_once: \(r.stderr)")
        let opens = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").filter { $0.contains("\"\(g.path)\"") }
        #expect(opens.count == 1, "the dump was opened \(opens.count) times:\n\(opens.joined(separator: "\n"))")
    }
}
