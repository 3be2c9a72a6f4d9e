import DumpGen
import Foundation
import Testing
import TestSupport

/// The build directory of this test run: libp2mnote.so and the tools sit beside the test bundle.
let productsDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// Compile the C caller (Tests/LibP2MNoteTests/c/api_check.c) against the installed-style header
/// and the built library, as a C user would: only p2mnote.h and -lp2mnote.
func buildCCaller(in d: String) throws -> String {
    let lib = productsDir + "/libp2mnote.so"
    guard FileManager.default.fileExists(atPath: lib) else {
        Issue.record("libp2mnote.so is not built at \(lib): build with `swift build --build-tests` (it builds every product)")
        throw CancellationError()
    }
    let cc = ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].first { FileManager.default.isExecutableFile(atPath: $0) }
    guard let cc else { Issue.record("REQUIRED EXTERNAL TOOL MISSING: a C compiler (cc, gcc or clang) — make deps installs gcc"); throw CancellationError() }
    let exe = d + "/api_check"
    let r = try runTool([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-I", repoRoot + "/Sources/CP2MNote/include",
                         repoRoot + "/Tests/LibP2MNoteTests/c/api_check.c", "-L", productsDir, "-Wl,-rpath," + productsDir,
                         "-lp2mnote", "-lpthread", "-o", exe])
    #expect(r.status == 0, "compiling the C caller: \(r.stderr)")
    return exe
}

/// The manifest's samples and p2m runs (an independent record of the dump) as the C caller's input.
func expectations(_ m: DumpManifest) -> String {
    var out = ""
    for s in m.samples { out += "S \(s.vaddr) \(s.pfn) \(s.mfn) \(s.bytes.prefix(128))\n" }
    for r in m.p2m where r.count > 0 {
        for pfn in Set([r.start, r.start + r.count / 2, r.start + r.count - 1]).sorted() {
            let i = pfn - r.start
            switch r.kind {
            case "ascending": out += "P \(pfn) 0 \(r.first! + i)\n"
            case "descending": out += "P \(pfn) 0 \(r.first! - i)\n"
            case "identity": out += "P \(pfn) 2 \(pfn)\n"
            case "invalid": out += "P \(pfn) 1 \(UInt64.max)\n"
            default: if let v = r.values, Int(i) < v.count { out += "P \(pfn) 0 \(v[Int(i)])\n" }
            }
        }
    }
    return out
}

@Suite(.serialized) struct CAPITests {
    func run(_ exe: String, _ g: GeneratedDump, dump: String? = nil) throws -> [String] {
        // LD_BIND_NOW: every symbol the library needs must resolve at load, so a runtime piece
        // missing from the static link fails here rather than at a user's first call.
        let r = try runTool(["env", "LD_BIND_NOW=1", exe, dump ?? g.path, g.systemMapPath], stdin: expectations(g.manifest))
        #expect(r.status == 0, "api_check exited \(r.status): \(r.stdout.suffix(2000)) \(r.stderr.suffix(2000))")
        #expect(r.stdout.hasSuffix("end\n"), "api_check did not finish: \(r.stdout.suffix(500)) \(r.stderr)")
        return r.stdout.split(separator: "\n").map(String.init)
    }

    func check(_ lines: [String], _ g: GeneratedDump, container: String, source: String, dump: String? = nil) {
        func line(_ p: String) -> String? { lines.first { $0.hasPrefix(p) } }
        #expect(line("version ")?.contains("API 1") == true)
        #expect(line("info container \(container) page_size 4096") != nil, "\(lines.prefix(3))")
        #expect(line("root 0x\(String(g.manifest.cr3, radix: 16)) ") != nil, "root: \(line("root") ?? "-") vs manifest cr3 0x\(String(g.manifest.cr3, radix: 16))")
        #expect(line("p2m \(g.manifest.nrPfns) \(source)") != nil, "\(line("p2m") ?? "-")")
        let banner = g.manifest.banner.trimmingCharacters(in: .newlines)
        #expect(line("banner ") == "banner " + banner)
        #expect(line("samples \(g.manifest.samples.count) bad 0") != nil, "\(lines.filter { $0.hasPrefix("sample") })")
        #expect(line("pfns ")?.hasSuffix(" bad 0") == true, "\(lines.filter { $0.hasPrefix("pfn") })")
        #expect(line("threads bad 0") != nil)
        // Each error path: its status (p2mnote.h) and a message that says what and where.
        let want: [(String, Int, String)] = [
            ("unmapped", 6, "kernel virtual address 0x1000 does not translate"), ("beyond-p2m", 10, "beyond the p2m"),
            ("null-buffer", 1, "buf is NULL"), ("bad-space", 1, "unknown address space 7"),
            ("unknown-symbol", 5, "no_such_symbol_anywhere"), ("missing-file", 2, "/nonexistent/dump"),
            ("directory", 2, "is a directory"), ("not-a-dump", 3, "not a dump"), ("domain", 9, "domain 5"),
            ("flags", 1, "unknown open flags"), ("after-close", 1, "not an open p2mnote handle"),
        ]
        for (what, status, text) in want {
            let l = line("error \(what) ")
            #expect(l?.hasPrefix("error \(what) status \(status) message ") == true && l?.contains(text) == true, "\(what): \(l ?? "missing")")
        }
        #expect(line("error beyond-p2m")?.contains(dump ?? g.path) == true, "the message names the dump")
        #expect(line("unmapped done 0") != nil)
    }

    @Test func aCCallerReadsAGeneratedDom0Dump() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let exe = try buildCCaller(in: d)
        var o = Dom0DumpOptions(); o.guestMiB = 128; o.seed = 11; o.profile = .fragmented
        let g = try DumpGenerator.generateDom0(o, to: d + "/dom0.vmcore")
        check(try run(exe, g), g, container: "ELF vmcore", source: "linear-list")
        // With the note injected, the note is the source and every answer is the same.
        let inj = try runTool([productsDir + "/p2m-inject", g.path, "--emit", "--system-map", g.systemMapPath])
        #expect(inj.status == 0, "p2m-inject: \(inj.stderr)")
        check(try run(exe, g), g, container: "ELF vmcore", source: "note")
    }

    @Test func aCCallerReadsAGeneratedXLDumpAndItsKdumpCompressedCopy() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let exe = try buildCCaller(in: d)
        var x = XLDumpOptions(); x.guestMiB = 128; x.seed = 3
        let g = try DumpGenerator.generateXL(x, to: d + "/domU.xcore")
        check(try run(exe, g), g, container: "xl dump-core", source: "linear-list")
        var o = Dom0DumpOptions(); o.guestMiB = 128; o.seed = 12
        let g0 = try DumpGenerator.generateDom0(o, to: d + "/dom0.vmcore")
        try KdumpWriter.write(fromELF: g0.path, to: d + "/dom0.kdump", KdumpWriteOptions())
        check(try run(exe, g0, dump: d + "/dom0.kdump"), g0, container: "kdump-compressed", source: "linear-list", dump: d + "/dom0.kdump")
    }
}
