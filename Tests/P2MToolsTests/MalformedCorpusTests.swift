import DumpGen
import Foundation
import Testing
import TestSupport

/// The malformed-dump corpus (p2m-gendump malformed: every container broken one way at a
/// time) through the command-line tools, as a user runs them: each refusal is a clean exit
/// 1 with "TOOL: error:" naming the file, the words the case says, and an offset where the case
/// asks for one; no trap, no hang; a dump that p2m-inject refuses is byte for byte what it was,
/// with no journal left. (python/tests/test_malformed_corpus.py puts the same corpus through the
/// library and the Python package.)
@Suite(.serialized) struct MalformedCorpusTests {
    static let bin = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug").path

    @Test func everyToolRefusesEveryMalformedDumpCleanly() throws {
        for t in ["p2m-emit", "p2m-inject", "p2m-analyze", "p2m-extract"] {
            guard FileManager.default.isExecutableFile(atPath: Self.bin + "/" + t) else { Issue.record("LOUD: \(t) is not built at \(Self.bin)"); return }
        }
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let cases = try MalformedCorpus.write(to: d + "/corpus")
        #expect(cases.count >= 100, "the corpus has \(cases.count) inputs")
        let map = d + "/corpus/guest.System.map"
        var refusals = 0, extractRefusals = 0
        for c in cases {
            let path = d + "/corpus/" + c.file
            func judge(_ tool: String, _ r: ToolRun) {
                let short = String(tool.dropFirst(4))            // cases.json says emit, inject, analyze
                let mustFail = c.fail.contains(short), mustSay = mustFail || c.warn.contains(short)
                if mustFail {
                    #expect(r.status == 1 && r.stderr.contains("\(tool): error:"), "\(c.name) / \(tool): exit \(r.status) (a signal?), stderr \(r.stderr.prefix(300))")
                    #expect(r.stderr.contains(c.file), "\(c.name) / \(tool): the error does not name the file: \(r.stderr.prefix(300))")
                    if c.offset { #expect(r.stderr.contains("offset 0x"), "\(c.name) / \(tool): no offset in \(r.stderr.prefix(300))") }
                    if r.status == 1 { refusals += 1 }
                } else {
                    #expect(r.status == 0 || r.status == 1 || r.status == 2, "\(c.name) / \(tool): exit \(r.status) (killed by a signal?) \(r.stderr.prefix(300))")
                }
                if mustSay {
                    let lower = r.stderr.lowercased()
                    for w in c.expect { #expect(lower.contains(w.lowercased()), "\(c.name) / \(tool): \"\(w)\" missing from: \(r.stderr.prefix(400))") }
                }
            }
            judge("p2m-emit", try runTool([Self.bin + "/p2m-emit", path, "--system-map", map, "-o", d + "/out.note", "--force"]))
            judge("p2m-analyze", try runTool([Self.bin + "/p2m-analyze", path, "--system-map", map] + c.analyze))
            // inject works on a copy, which a refusal must leave exactly as it was.
            let copy = d + "/copy-" + c.file
            try? FileManager.default.removeItem(atPath: copy)
            try FileManager.default.copyItem(atPath: path, toPath: copy)
            let before = try Data(contentsOf: URL(fileURLWithPath: copy))
            let r = try runTool([Self.bin + "/p2m-inject", copy, "--emit", "--system-map", map])
            judge("p2m-inject", ToolRun(status: r.status, stdout: r.stdout, stderr: r.stderr.replacingOccurrences(of: "copy-" + c.file, with: c.file)))
            if r.status != 0 {
                #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == before, "\(c.name): a failed p2m-inject changed the dump")
                #expect(!FileManager.default.fileExists(atPath: copy + ".p2minject.journal"), "\(c.name): a failed p2m-inject left a journal")
            }
            try? FileManager.default.removeItem(atPath: copy)
            // p2m-extract: none of these is a readable host dump, so every one is a clean
            // refusal that names the file and leaves no output behind.
            let out = d + "/extract.xcore"
            let x = try runTool([Self.bin + "/p2m-extract", path, "--domain", "1", "-o", out])
            #expect(x.status == 1 && x.stderr.contains("p2m-extract: error:") && x.stderr.contains(c.file),
                    "\(c.name) / p2m-extract: exit \(x.status), stderr \(x.stderr.prefix(300))")
            #expect(!FileManager.default.fileExists(atPath: out), "\(c.name): a failed p2m-extract left \(out)")
            if x.status == 1 { extractRefusals += 1 }
        }
        #expect(extractRefusals == cases.count, "p2m-extract refused \(extractRefusals) of \(cases.count) cleanly")
        let required = cases.reduce(0) { $0 + $1.fail.filter { $0 != "library" }.count }
        #expect(refusals == required, "\(refusals) clean refusals of the \(required) the corpus requires")
        FileHandle.standardError.write(Data("malformed corpus: \(cases.count) inputs, \(refusals) clean refusals by the three tools, \(extractRefusals) by p2m-extract\n".utf8))
    }
}

