import Foundation
import Testing
@testable import P2MFormat

/// Random corruption of every vector: decoding must throw or succeed, never trap, and a note
/// that still decodes must still satisfy its own header (counts, digest).
@Suite struct MutationTests {
    @Test func randomByteFlipsNeverTrap() throws {
        var rng = SplitMix(s: 0xF00D)
        var accepted = 0, rejected = 0
        for v in vectorDefs() {
            let bytes = [UInt8](try #require(FileManager.default.contents(atPath: vectorsDir.appendingPathComponent(v.name + ".note").path)))
            let desc = try P2MNote.descriptor(fromElfNote: bytes)
            for _ in 0..<3000 {
                var m = desc
                for _ in 0..<Int(rng.below(4)) + 1 {
                    let i = Int(rng.below(UInt64(m.count)))
                    m[i] = rng.below(3) == 0 ? UInt8(truncatingIfNeeded: rng.next()) : m[i] ^ (1 << UInt8(rng.below(8)))
                }
                if rng.below(8) == 0 { m.removeLast(Int(rng.below(UInt64(m.count)))) }
                do {
                    let d = try P2MNote.decode(descriptor: m, limits: DecodeLimits(maxDecodedSize: 1 << 24))
                    let c = d.map.canonical()
                    #expect(c.counts == d.header.counts && c.digest == d.header.mapDigest)
                    accepted += 1
                } catch is P2MFormatError { rejected += 1 }
            }
        }
        #expect(rejected > 0)
        print("mutations: \(rejected) rejected with typed errors, \(accepted) still valid (flips in informational fields)")
    }
}
