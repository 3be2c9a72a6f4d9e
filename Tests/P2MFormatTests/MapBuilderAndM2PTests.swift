import Foundation
import DumpGen
import Testing
@testable import P2MFormat

@Suite struct MapBuilderAndM2PTests {
    /// A RAM frame that an identity entry also names (a dom0's identity tail covers every
    /// frame up to 2^27) belongs to the MFN entry, as in Linux's mfn_to_pfn; identity is the
    /// fallback only.
    @Test func identityIsTheM2PFallback() throws {
        var e: [UInt64] = [0x40, 0x41, 0x42]
        e += (3..<0x50).map { UInt64($0) | P2MEntry.identityBit }
        let m = try P2MMap.from(entries: e, width: .eight)
        #expect(m.m2p(MFN(rawValue: 0x41)) == .unique(PFN(rawValue: 1)))          // also identity of pfn 0x41
        #expect(m.m2p(MFN(rawValue: 0x10)) == .unique(PFN(rawValue: 0x10)))       // identity only
        #expect(m.m2p(MFN(rawValue: 0x60)) == .none)
        // Two MFN entries for one frame are still ambiguous.
        let a = try P2MMap.from(entries: [0x7, 0x7, 0x9], width: .eight)
        #expect(a.m2p(MFN(rawValue: 0x7)) == .ambiguous([PFN(rawValue: 0), PFN(rawValue: 1)]))
    }

    /// The streaming builder answers exactly what the entries say, like the decoded note.
    @Test func builderEqualsDecodedNote() throws {
        // Seeded: a failure names its seed and replays the same entries.
        var rng = SplitMix64(seed: 0x6275696c646572)
        for _ in 0..<20 {
            var e: [UInt64] = []
            var b = P2MMapBuilder()
            while e.count < 5000 {
                let n = Int.random(in: 1...300, using: &rng)
                switch Int.random(in: 0..<6, using: &rng) {
                case 0: e += Array(repeating: .max, count: n); b.appendInvalid(count: UInt64(n))
                case 1: let p = UInt64(e.count); e += (0..<UInt64(n)).map { (p + $0) | P2MEntry.identityBit }; b.appendIdentity(count: UInt64(n))
                case 2: let f = UInt64.random(in: 0x1000..<0x100000, using: &rng); let x = (0..<UInt64(n)).map { f + $0 }; e += x; x.withUnsafeBufferPointer { b.append(entries: $0) }
                case 3: let f = UInt64.random(in: 0x1000..<0x100000, using: &rng); let x = (0..<UInt64(n)).map { f - $0 }; e += x; x.withUnsafeBufferPointer { b.append(entries: $0) }
                case 4: let x = (0..<n).map { _ in UInt64.random(in: 0..<0x100000, using: &rng) | (Bool.random(using: &rng) ? P2MEntry.foreignBit : 0) }; e += x; x.withUnsafeBufferPointer { b.append(entries: $0) }
                default: let x = [UInt64](repeating: 0x4242, count: n); e += x; x.withUnsafeBufferPointer { b.append(entries: $0) }
                }
            }
            let built = b.finish()
            let decoded = try P2MMap.from(entries: e, width: .eight)
            #expect(built.nrPfns == UInt64(e.count))
            #expect(built.firstDifferences(with: decoded).isEmpty)
            #expect(built.canonical().digest == decoded.canonical().digest)
            for p in stride(from: 0, to: e.count, by: 37) { #expect(built.entry(PFN(rawValue: UInt64(p)))?.raw == e[p]) }
        }
    }
}
