import Foundation
import Testing
import TestSupport
@testable import P2MFormat

/// Tools/c-decoder/p2mdecode.c, a decoder written in C from Spec/p2mnote.md: it must agree with
/// the Swift codec on every vector and reject every bad vector with the same rule.
@Suite struct CDecoderTests {
    @Test func cDecoderAgreesOnEveryVector() throws {
        requireTool("/usr/bin/cc")
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let src = repoRoot.appendingPathComponent("Tools/c-decoder/p2mdecode.c").path
        let cc = try runTool(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined", "-o", d + "/p2mdecode", src, "-llz4"])
        #expect(cc.status == 0, "cc: \(cc.stderr)")
        guard cc.status == 0 else { return }
        for v in vectorDefs() {
            let r = try runTool([d + "/p2mdecode", vectorsDir.appendingPathComponent(v.name + ".note").path])
            #expect(r.status == 0, "\(v.name): \(r.stderr)")
            let got = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
            let want = (try JSONSerialization.jsonObject(with: Data(contentsOf: vectorsDir.appendingPathComponent(v.name + ".json"))) as? [String: Any])?["header"] as? [String: Any] ?? [:]
            for k in ["map_digest", "count_mfn", "count_invalid", "count_identity", "count_foreign", "nr_records"] {
                #expect("\(got[k] ?? "nil")" == "\(want[k] ?? "nil")", "\(v.name).\(k)")
            }
        }
        for b in try badNotes() {
            let r = try runTool([d + "/p2mdecode", vectorsDir.appendingPathComponent("bad/" + b.name + ".note").path])
            #expect(r.status == 1 && r.stderr.hasPrefix("error: rule \(b.rule):"), "\(b.name): \(r.stderr)")
        }
    }
}
