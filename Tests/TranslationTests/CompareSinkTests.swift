import P2MFormat
import Testing
@testable import Translation

/// CompareSink's identity-blind comparison is symmetric: a note made without IDENTITY_KNOWN says
/// INVALID where the kernel's list says IDENTITY (the real ballooned domU's note made from the
/// frame tree and .xen_p2m, checked with a System.map, was a false MISMATCH for 1,000,508 pfns),
/// and the other way round. Both the per-entry path and the run path.
@Suite struct CompareSinkTests {
    let id = P2MEntry.identityBit
    // pfns 0-3 mfns, 4-7 the side's own view of 4-7, 8-11 mfns again.
    func map(_ middle: [UInt64]) throws -> P2MMap {
        try P2MMap.from(entries: [10, 11, 12, 13] + middle + [20, 21, 22, 23], width: .eight)
    }
    func entries(_ sink: CompareSink, _ e: [UInt64]) throws { try e.withUnsafeBufferPointer { try sink.entries($0) } }

    @Test func identityAgainstInvalidEitherWayWhenBlind() throws {
        let invalid = [UInt64](repeating: .max, count: 4)
        let identity = (4..<8).map { UInt64($0) | id }
        for (mapSays, sourceSays) in [(invalid, identity), (identity, invalid)] {
            for blind in [true, false] {
                // Per entry.
                let a = CompareSink(map: try map(mapSays), identityBlind: blind)
                try entries(a, [10, 11, 12, 13] + sourceSays + [20, 21, 22, 23])
                #expect(a.differenceCount == (blind ? 0 : 4), "entries, blind \(blind), map \(mapSays[0]) source \(sourceSays[0])")
                // As runs: the list reader's invalid()/identity() calls.
                let b = CompareSink(map: try map(mapSays), identityBlind: blind)
                try entries(b, [10, 11, 12, 13])
                if sourceSays[0] == .max { try b.invalid(4) } else { try b.identity(4) }
                try entries(b, [20, 21, 22, 23])
                #expect(b.differenceCount == (blind ? 0 : 4), "runs, blind \(blind), map \(mapSays[0]) source \(sourceSays[0])")
                #expect(a.compared == 12 && b.compared == 12)
            }
        }
    }

    @Test func blindnessExcusesNothingElse() throws {
        // An mfn against INVALID or IDENTITY is a difference however blind the comparison.
        let m = try map([30, 31, 32, 33])
        for blind in [true, false] {
            let a = CompareSink(map: m, identityBlind: blind)
            try entries(a, [10, 11, 12, 13, .max, 4 | id, 32, 33, 20, 21, 22, 23])
            #expect(a.differenceCount == 2)
            let b = CompareSink(map: m, identityBlind: blind)
            try entries(b, [10, 11, 12, 13]); try b.identity(2); try b.invalid(2); try entries(b, [20, 21, 22, 23])
            #expect(b.differenceCount == 4)
        }
    }
}
