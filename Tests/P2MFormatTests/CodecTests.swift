import Testing
@testable import P2MFormat

/// Small deterministic PRNG (splitmix64) for property tests.
struct SplitMix { var s: UInt64
    mutating func next() -> UInt64 { s &+= 0x9E3779B97F4A7C15; var z = s
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) &* 0x94D049BB133111EB; return z ^ (z >> 31) }
    mutating func below(_ n: UInt64) -> UInt64 { next() % n }
}

/// A random map mixing every kind of run, for the given width.
func randomMap(_ rng: inout SplitMix, count: Int, width: EntryWidth) -> [UInt64] {
    var e: [UInt64] = []
    let maxF = width.maxFrame
    while e.count < count {
        let len = Int(rng.below(40)) + 1
        switch rng.below(9) {
        case 0: e += Array(repeating: .max, count: len)
        case 1: let p = UInt64(e.count); e += (0..<UInt64(len)).map { (p + $0) | P2MEntry.identityBit }
        case 2: let f = rng.below(maxF - 100); e += (0..<UInt64(len)).map { f + $0 }
        case 3: let f = rng.below(maxF - 100) + 100; e += (0..<UInt64(len)).map { f - min($0, 99) }
        case 4: e += Array(repeating: rng.below(maxF), count: len)
        case 5: let f = rng.below(maxF - 100); e += (0..<UInt64(len)).map { (f + $0) | P2MEntry.foreignBit }
        case 6: e += (0..<len).map { _ in rng.below(maxF) }
        case 7: e += (0..<len).map { _ in rng.below(4) == 0 ? (rng.below(maxF) | P2MEntry.identityBit) : rng.below(1 << 16) }
        default: e += (0..<len).map { _ in (rng.below(maxF)) | (rng.below(4) << 62) }
        }
    }
    e.removeLast(e.count - count)
    return e
}

@Suite struct CodecTests {
    @Test func xxh64CheckValues() {
        #expect(XXH64.hash([]) == 0xEF46DB3751D8E999)
        #expect(XXH64.hash(Array("abc".utf8)) == 0x44BC2CF5AD770999)
        // Streaming in odd pieces equals one shot.
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var h = XXH64()
        var i = 0
        for step in [1, 3, 8, 13, 64, 5, 300, 2] { let j = min(data.count, i + step); h.update(Array(data[i..<j])); i = j }
        h.update(Array(data[i...]))
        #expect(h.finalize() == XXH64.hash(data))
    }

    @Test func workedExampleStream() throws {
        var e: [UInt64] = [0x1000, 0x1001]
        e += (2...4).map { UInt64($0) | P2MEntry.identityBit }
        e += [0x2002, 0x2001, 0x2000, 0x77, 0x10]
        e += Array(repeating: .max, count: 14)
        let s = StreamEncoder(role: .map(.eight))
        try s.append(e)
        let bytes = s.finish()
        #expect(bytes == [0x23, 0x80, 0x40, 0x32, 0x34, 0x80, 0x40, 0x28, 0x93, 0x7E, 0xCF, 0x01, 0xE1])
        #expect(s.nrRecords == 5)
        let runs = canonicalRunsReference(e)
        #expect(runs.map { [$0.start, $0.length, $0.first, $0.step] } == [
            [0, 2, 0x1000, 1], [2, 3, 0x4000000000000002, 1], [5, 3, 0x2002, .max],
            [8, 1, 0x77, 0], [9, 1, 0x10, 0], [10, 14, .max, 0]])
    }

    @Test(arguments: [EntryWidth.eight, .four])
    func roundTripRandomMaps(width: EntryWidth) throws {
        var rng = SplitMix(s: 42 + UInt64(width.rawValue))
        for round in 0..<60 {
            let n = Int(rng.below(3000)) + 1
            var e = randomMap(&rng, count: n, width: width)
            if width == .four { e = e.map { P2MEntry.normalise(stored: P2MEntry(raw: $0).stored(width: .four) ?? 0xFFFF_FFFF, width: .four)!.raw } }
            // Chunked encoding in random pieces equals one-shot encoding.
            let one = P2MEncoder(width: width)
            try one.append(entries: e)
            let noteA = try one.finish(metadata: .init(source: .rawTable))
            let chunked = P2MEncoder(width: width)
            var i = 0
            while i < e.count { let j = min(e.count, i + Int(rng.below(50)) + 1); try chunked.append(entries: Array(e[i..<j])); i = j }
            let noteB = try chunked.finish(metadata: .init(source: .rawTable))
            #expect(noteA.descriptor == noteB.descriptor, "round \(round)")
            let dec = try P2MNote.decode(descriptor: noteA.descriptor)
            #expect(dec.map.nrPfns == UInt64(n))
            for p in 0..<n { #expect(dec.map.entry(PFN(rawValue: UInt64(p)))?.raw == e[p], "pfn \(p) round \(round)") }
            // Digest equals the entry-by-entry reference.
            #expect(noteA.header.mapDigest == digestOf(canonicalRuns: canonicalRunsReference(e)))
            // Digester fed in arbitrary chunks agrees.
            var d = MapDigester()
            i = 0
            while i < e.count { let j = min(e.count, i + Int(rng.below(20)) + 1)
                Array(e[i..<j]).withUnsafeBufferPointer { d.feed(entries: $0) }; i = j }
            #expect(d.finish() == noteA.header.mapDigest)
        }
    }

    @Test func bulkRunsEqualExpandedEntries() throws {
        let a = P2MEncoder(width: .eight)
        try a.append(entries: [5, 6, 7])
        try a.appendInvalid(count: 1000)
        try a.appendIdentity(count: 600)
        try a.append(entries: [9])
        try a.appendInvalid(count: 3)
        let b = P2MEncoder(width: .eight)
        var e: [UInt64] = [5, 6, 7] + Array(repeating: .max, count: 1000)
        e += (1003..<1603).map { UInt64($0) | P2MEntry.identityBit }
        e += [9, .max, .max, .max]
        try b.append(entries: e)
        #expect(try a.finish(metadata: .init(source: .unknown)).descriptor == b.finish(metadata: .init(source: .unknown)).descriptor)
    }

    @Test func m2pLookupsAndConflicts() throws {
        var e: [UInt64] = Array(100..<200)            // pfn 0..99 → mfn 100..199
        e += (0..<50).map { 1000 - UInt64($0) }       // pfn 100..149 → 1000 down to 951
        e += [150, 5000, .max, 7]                     // pfn 150 → 150 (conflict), 151 → 5000
        e += [151 | P2MEntry.foreignBit]
        let m = try P2MMap.from(entries: e, width: .eight)
        #expect(m.m2p(MFN(rawValue: 105)) == .unique(PFN(rawValue: 5)))
        #expect(m.m2p(MFN(rawValue: 1000)) == .unique(PFN(rawValue: 100)))
        #expect(m.m2p(MFN(rawValue: 951)) == .unique(PFN(rawValue: 149)))
        #expect(m.m2p(MFN(rawValue: 5000)) == .unique(PFN(rawValue: 151)))
        #expect(m.m2p(MFN(rawValue: 7)) == .unique(PFN(rawValue: 153)))
        #expect(m.m2p(MFN(rawValue: 151)) == .unique(PFN(rawValue: 51)))     // foreign 151 not claimed
        #expect(m.m2p(MFN(rawValue: 99)) == .none)
        if case .ambiguous(let ps) = m.m2p(MFN(rawValue: 150)) { #expect(Set(ps) == [PFN(rawValue: 50), PFN(rawValue: 150)]) } else { Issue.record("expected ambiguous") }
        #expect(!m.conflicts.isEmpty)
    }

    @Test func firstDifferences() throws {
        let a = try P2MMap.from(entries: Array(0..<1000), width: .eight)
        var e = Array(UInt64(0)..<1000); e[700] = 5; e[900] = .max
        let b = try P2MMap.from(entries: e, width: .eight)
        let d = a.firstDifferences(with: b)
        #expect(d.map(\.pfn) == [PFN(rawValue: 700), PFN(rawValue: 900)])
        #expect(a.firstDifferences(with: a).isEmpty)
    }

    @Test func framesStreamRoundTrip() throws {
        let enc = P2MEncoder(width: .eight)
        try enc.append(entries: Array(1000..<1600))
        try enc.appendInvalid(count: 512 * 10 - 600)
        let frames: [MFN?] = [MFN(rawValue: 77), MFN(rawValue: 78)] + Array(repeating: MFN(rawValue: 5), count: 8)
        let note = try enc.finish(metadata: .init(source: .linearList, listVAddr: KVAddr(rawValue: 0xffffc90000000000),
                                                  missingPageMFN: MFN(rawValue: 5), identityKnown: true), listFrames: frames)
        let dec = try P2MNote.decode(descriptor: note.descriptor)
        #expect(dec.header.hasFrames && dec.header.nrListFrames == 10)
        #expect(dec.listFrames?.entry(PFN(rawValue: 1))?.raw == 78)
        #expect(dec.listFrames?.entry(PFN(rawValue: 9))?.raw == 5)
        #expect(dec.header.listVAddr == 0xffffc90000000000)
        #expect(dec.header.identityKnown)
    }
}
