import Foundation
import Testing
import TestSupport
@testable import P2MFormat

/// Tools/c-decoder/p2mdecode.c, a decoder written in C from Spec/p2mnote.md: on every vector it
/// must print exactly NAME.json (Spec §12 shape, without "description") — whether the JSON was
/// written by the Swift codec or by Spec/vectors/assemble.py — and it must reject every bad
/// vector with the rule bad/README.md names, which is also the Swift decoder's.
@Suite struct CDecoderTests {
    @Test func cDecoderAgreesOnEveryVector() throws {
        requireTool("/usr/bin/cc")
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let src = repoRoot.appendingPathComponent("Tools/c-decoder/p2mdecode.c").path
        let cc = try runTool(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined", "-o", d + "/p2mdecode", src, "-llz4"])
        #expect(cc.status == 0, "cc: \(cc.stderr)")
        guard cc.status == 0 else { return }
        let names = vectorDefs().map(\.name) + assembledVectorNames()
        for name in names {
            let r = try runTool([d + "/p2mdecode", vectorsDir.appendingPathComponent(name + ".note").path])
            #expect(r.status == 0 && r.stderr.isEmpty, "\(name): \(r.stderr)")
            let got = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? NSDictionary
            var want = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: vectorsDir.appendingPathComponent(name + ".json"))) as? [String: Any])
            want["description"] = nil
            #expect(got == want as NSDictionary, "\(name): the C decoder's JSON differs from \(name).json")
        }
        let rules = try badVectorRules()
        #expect(rules.count >= 50)
        for (name, rule) in rules.sorted(by: { $0.key < $1.key }) {
            let path = vectorsDir.appendingPathComponent("bad/" + name + ".note").path
            let r = try runTool([d + "/p2mdecode", path])
            #expect(r.status == 1 && r.stderr.hasPrefix("error: rule \(rule):"), "\(name): \(r.stderr)")
            // Same rule from the Swift decoder.
            let bytes = [UInt8](try #require(FileManager.default.contents(atPath: path)))
            do {
                _ = try P2MNote.decode(descriptor: try P2MNote.descriptor(fromElfNote: bytes))
                Issue.record("\(name): the Swift decoder accepted it")
            } catch let e as P2MFormatError {
                #expect(r.stderr.hasPrefix("error: rule \(e.rule):"), "\(name): Swift says rule \(e.rule), C says \(r.stderr)")
            }
        }
        // Differential: random corruptions of every vector get the same verdict and the same
        // rule number from both decoders (rules checked in numeric order, §8).
        var rng = SplitMix(s: 0xC0DE)
        var disagreements: [String] = []
        var seen = [Int: Int]()
        for name in names {
            let note = [UInt8](try Data(contentsOf: vectorsDir.appendingPathComponent(name + ".note")))
            let desc = try P2MNote.descriptor(fromElfNote: note)
            let good = try P2MNote.decode(descriptor: desc)
            let h = good.header
            let frameValues = good.listFrames.map(entriesOf) ?? []
            let payload = try desc.withUnsafeBytes {
                try LZ4Frame.decompress(UnsafeRawBufferPointer(rebasing: $0[Int(h.headerSize)...]), expected: Int(h.decodedSize))
            }
            func flip(_ b: inout [UInt8], _ range: Range<Int>) {
                let i = range.lowerBound + Int(rng.below(UInt64(range.count)))
                b[i] = rng.below(3) == 0 ? UInt8(truncatingIfNeeded: rng.next()) : b[i] ^ (1 << UInt8(rng.below(8)))
            }
            func withChecksum(_ d: [UInt8]) -> [UInt8] {
                var d = d
                for i in 0x98..<0xA0 { d[i] = 0 }
                let sum = XXH64.hash(Array(d[0..<160]))
                for i in 0..<8 { d[0x98 + i] = UInt8(truncatingIfNeeded: sum >> (8 * UInt64(i))) }
                return d
            }
            for k in 0..<120 {
                var m: [UInt8]
                switch k % 4 {
                case 3:   // the shared-page fields (rule 16): a listed frame, the other field, or noise
                    var d = desc
                    let off = rng.below(2) == 0 ? 0x80 : 0x88, other = off == 0x80 ? 0x88 : 0x80
                    var v = rng.below(1 << 20)
                    switch rng.below(3) {
                    case 0 where !frameValues.isEmpty: v = frameValues[Int(rng.below(UInt64(frameValues.count)))]
                    case 1: v = d.withUnsafeBytes { loadLE($0, other, 8) }
                    default: break
                    }
                    for i in 0..<8 { d[off + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
                    m = P2MNote.elfNote(descriptor: withChecksum(d))
                case 0:   // anywhere in the note, checksum left stale
                    m = note
                    for _ in 0..<Int(rng.below(3)) + 1 { flip(&m, 0..<m.count) }
                    if rng.below(10) == 0 { m.removeLast(Int(rng.below(UInt64(m.count)))) }
                case 1:   // header fields, checksum fixed: rules 2-16
                    var d = desc
                    for _ in 0..<Int(rng.below(2)) + 1 { flip(&d, 0x08..<0x98) }
                    m = P2MNote.elfNote(descriptor: withChecksum(d))
                default:  // the decompressed streams, re-framed, checksum fixed: rules 14-16
                    var p = payload
                    for _ in 0..<Int(rng.below(2)) + 1 { flip(&p, 0..<p.count) }
                    var hh = h
                    let frame = try LZ4Frame.compress(p)
                    hh.encodedSize = UInt64(frame.count)
                    m = P2MNote.elfNote(descriptor: hh.encoded() + frame)
                }
                let path = d + "/m.note"
                try Data(m).write(to: URL(fileURLWithPath: path))
                let r = try runTool([d + "/p2mdecode", path])
                let swiftRule: Int
                do {
                    _ = try P2MNote.decode(descriptor: try P2MNote.descriptor(fromElfNote: m))
                    swiftRule = 0
                } catch let e as P2MFormatError { swiftRule = e.rule }
                let cRule = r.status == 0 ? 0 : Int(r.stderr.split(separator: ":")[safe: 1]?.split(separator: " ").last ?? "") ?? -1
                seen[swiftRule, default: 0] += 1
                if cRule != swiftRule { disagreements.append("\(name)#\(k): Swift \(swiftRule), C \(r.stderr)") }
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(10))")
        print("differential: rules seen \(seen.sorted { $0.key < $1.key })")
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { i >= 0 && i < count ? self[i] : nil }
}
