// A decoded p2m, ready for lookups both ways.
//
// pfn → entry: binary search over run starts (runs are the note's records, so a dom0 map is a
// few hundred of them). mfn → pfn (m2p): a sorted array of mfn intervals with a bucket index
// on the high mfn bits, so a lookup is one table read plus a short binary search; never a
// scan of the p2m (crash's m2p scans p2m pages). Two pfns claiming one mfn are kept as
// conflicts and reported as `.ambiguous`, never silently resolved.

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

public enum M2PResult: Hashable, Sendable {
    case none
    case unique(PFN)
    /// Several pfns map to the mfn (at most 16 listed) — a corrupt or unusual p2m.
    case ambiguous([PFN])
}

/// Built once, on first use, under a lock (maps are shared across threads by the C library).
final class LazyM2PIndexes: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private var built: (mfn: M2PIndex, identity: M2PIndex)?
    private let make: () -> (M2PIndex, M2PIndex)

    init(_ make: @escaping () -> (M2PIndex, M2PIndex)) {
        self.make = make
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
    }
    deinit { pthread_mutex_destroy(lock); lock.deallocate() }

    func get() -> (mfn: M2PIndex, identity: M2PIndex) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        if let b = built { return b }
        let (m, i) = make()
        built = (m, i)
        return (m, i)
    }
}

public struct P2MMap: Sendable {
    public let nrPfns: UInt64
    public let width: EntryWidth
    // Runs, parallel arrays: start pfn, first value (or literal offset), step code.
    @usableFromInline let starts: [UInt64]
    @usableFromInline let firsts: [UInt64]
    @usableFromInline let steps: [UInt8]      // 0 constant, 1 ascending, 2 descending, 3 literal
    @usableFromInline let literals: [UInt64]
    /// The m2p indexes, built on the first m2p question: a map that only answers pfn → mfn
    /// (every read of pseudo-physical memory) never pays for them, and a hostile table of
    /// 2^27 literal entries costs its sorting only to a caller that asks for m2p.
    private let m2pIndexes: LazyM2PIndexes
    private var m2pIndex: M2PIndex { m2pIndexes.get().mfn }
    /// Identity entries, asked only when no MFN entry holds the frame: Linux's mfn_to_pfn
    /// takes IDENTITY_FRAME as the fallback, so a dom0's identity tail (every pfn past RAM up
    /// to 2^27) never makes a RAM frame ambiguous.
    private var identityIndex: M2PIndex { m2pIndexes.get().identity }

    public var runCount: Int { starts.count }

    struct Builder {
        let nrPfns: UInt64
        let width: EntryWidth
        var starts: [UInt64] = []
        var firsts: [UInt64] = []
        var steps: [UInt8] = []
        var literals: [UInt64] = []

        init(nrPfns: UInt64, width: EntryWidth) { self.nrPfns = nrPfns; self.width = width }

        mutating func add(_ r: DecodedRecord) {
            starts.append(r.start)
            switch r.kind {
            case .literal, .literalRaw:
                firsts.append(UInt64(r.literalOffset)); steps.append(3)
            default:
                firsts.append(r.first)
                steps.append(r.step == 0 ? 0 : (r.step == 1 ? 1 : 2))
            }
        }

        func build() -> P2MMap {
            P2MMap(nrPfns: nrPfns, width: width, starts: starts, firsts: firsts, steps: steps, literals: literals)
        }
    }

    init(nrPfns: UInt64, width: EntryWidth, starts: [UInt64], firsts: [UInt64], steps: [UInt8], literals: [UInt64]) {
        self.nrPfns = nrPfns; self.width = width
        self.starts = starts; self.firsts = firsts; self.steps = steps; self.literals = literals
        self.m2pIndexes = LazyM2PIndexes {
            (M2PIndex(starts: starts, firsts: firsts, steps: steps, literals: literals, nrPfns: nrPfns, entryClass: 0),
             M2PIndex(starts: starts, firsts: firsts, steps: steps, literals: literals, nrPfns: nrPfns, entryClass: 1))
        }
    }

    /// A map straight from normalised entries (tests, small tables).
    public static func from(entries: [UInt64], width: EntryWidth) throws -> P2MMap {
        let enc = P2MEncoder(width: width)
        try enc.append(entries: entries)
        return try P2MNote.decode(descriptor: enc.finish(metadata: .init(source: .unknown)).descriptor).map
    }

    @inline(__always) func runIndex(_ pfn: UInt64) -> Int {
        var lo = 0, hi = starts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) >> 1
            if starts[mid] <= pfn { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    @inline(__always) func value(run k: Int, pfn: UInt64) -> UInt64 {
        let off = pfn - starts[k]
        switch steps[k] {
        case 0: return firsts[k]
        case 1: return firsts[k] &+ off
        case 2: return firsts[k] &- off
        default: return literals[Int(firsts[k]) + Int(off)]
        }
    }

    /// The entry of `pfn`; nil beyond the table.
    public func entry(_ pfn: PFN) -> P2MEntry? {
        guard pfn.rawValue < nrPfns, !starts.isEmpty else { return nil }
        return P2MEntry(raw: value(run: runIndex(pfn.rawValue), pfn: pfn.rawValue))
    }

    /// Fill `out` with the entries from `pfn` on (fewer at the end of the table); returns the count.
    public func entries(from pfn: UInt64, into out: UnsafeMutableBufferPointer<UInt64>) -> Int {
        guard pfn < nrPfns, !starts.isEmpty else { return 0 }
        let n = Int(min(UInt64(out.count), nrPfns - pfn))
        var k = runIndex(pfn)
        var p = pfn
        for i in 0..<n {
            if k + 1 < starts.count && starts[k + 1] <= p { k += 1 }
            out[i] = value(run: k, pfn: p)
            p += 1
        }
        return n
    }

    /// Visit the map's runs overlapping [pfn, pfn + count): (start, length, first value at
    /// start, step 0/1/UInt64.max) for progressions, or the entries for literal stretches.
    public func forEachSegment(from pfn: UInt64, count: UInt64,
                               _ body: (UInt64, UInt64, UInt64, UInt64, ArraySlice<UInt64>?) throws -> Void) rethrows {
        guard pfn < nrPfns, count > 0, !starts.isEmpty else { return }
        let end = min(nrPfns, pfn + count)
        var k = runIndex(pfn)
        var p = pfn
        while p < end {
            let runEnd = k + 1 < starts.count ? starts[k + 1] : nrPfns
            let segEnd = min(runEnd, end)
            let off = p - starts[k]
            switch steps[k] {
            case 3:
                let base = Int(firsts[k]) + Int(off)
                try body(p, segEnd - p, literals[base], 0, literals[base..<base + Int(segEnd - p)])
            default:
                let step: UInt64 = steps[k] == 0 ? 0 : (steps[k] == 1 ? 1 : .max)
                try body(p, segEnd - p, value(run: k, pfn: p), step, nil)
            }
            p = segEnd
            k += 1
        }
    }

    /// m2p: which pfn holds `mfn` (MFN and IDENTITY entries; foreign frames belong to others).
    public func m2p(_ mfn: MFN) -> M2PResult {
        let r = m2pIndex.lookup(mfn.rawValue)
        if case .none = r { return identityIndex.lookup(mfn.rawValue) }
        return r
    }

    /// Intervals of mfns claimed by more than one pfn.
    public var conflicts: [ClosedRange<UInt64>] { m2pIndex.conflictRanges }

    /// Canonical runs (Spec §7) and counts, recomputed from the runs.
    public func canonical() -> (runs: [CanonicalRun], counts: EntryCounts, digest: UInt64) {
        var d = MapDigester(keepRuns: true)
        feed(into: &d)
        let digest = d.finish()
        return (d.runs, d.counts, digest)
    }

    public var counts: EntryCounts { canonical().counts }

    /// Feed this map into a digester in pfn order.
    public func feed(into d: inout MapDigester) {
        for k in 0..<starts.count {
            let end = k + 1 < starts.count ? starts[k + 1] : nrPfns
            let len = end - starts[k]
            switch steps[k] {
            case 0: d.feed(first: firsts[k], length: len, step: 0)
            case 1: d.feed(first: firsts[k], length: len, step: 1)
            case 2: d.feed(first: firsts[k], length: len, step: .max)
            default:
                for i in 0..<Int(len) { d.feed(entry: literals[Int(firsts[k]) + i]) }
            }
        }
    }

    /// The first pfns where two maps differ (entries beyond a map's end count as absent).
    public func firstDifferences(with other: P2MMap, limit: Int = 10) -> [(pfn: PFN, mine: P2MEntry?, theirs: P2MEntry?)] {
        var out: [(PFN, P2MEntry?, P2MEntry?)] = []
        let common = min(nrPfns, other.nrPfns)
        var p: UInt64 = 0
        var a = 0, b = 0
        while p < common && out.count < limit {
            while a + 1 < starts.count && starts[a + 1] <= p { a += 1 }
            while b + 1 < other.starts.count && other.starts[b + 1] <= p { b += 1 }
            let endA = a + 1 < starts.count ? starts[a + 1] : nrPfns
            let endB = b + 1 < other.starts.count ? other.starts[b + 1] : other.nrPfns
            let end = min(endA, endB, common)
            if steps[a] != 3 && other.steps[b] != 3 && steps[a] == other.steps[b]
                && value(run: a, pfn: p) == other.value(run: b, pfn: p) {
                p = end
                continue
            }
            while p < end && out.count < limit {
                let x = value(run: a, pfn: p), y = other.value(run: b, pfn: p)
                if x != y { out.append((PFN(rawValue: p), P2MEntry(raw: x), P2MEntry(raw: y))) }
                p += 1
            }
        }
        if nrPfns != other.nrPfns && out.count < limit {
            let p = common
            out.append((PFN(rawValue: p), entry(PFN(rawValue: p)), other.entry(PFN(rawValue: p))))
        }
        return out
    }
}

/// mfn → pfn intervals with a bucket index.
struct M2PIndex: Sendable {
    struct Interval: Sendable {
        var lo: UInt64
        var hi: UInt64
        var pfnAtLo: UInt64
        var dir: Int8          // +1 ascending, −1 descending, 0 one mfn for `mult` pfns
        var mult: UInt64
        @inline(__always) func pfn(_ m: UInt64) -> UInt64 {
            dir >= 0 ? pfnAtLo &+ (dir == 0 ? 0 : m - lo) : pfnAtLo &- (m - lo)
        }
    }
    var main: [Interval] = []
    var overlaps: [Interval] = []
    var bucketStart: [Int32] = []
    var shift: UInt64 = 0

    var conflictRanges: [ClosedRange<UInt64>] {
        overlaps.map { $0.lo...$0.hi } + main.filter { $0.mult > 1 }.map { $0.lo...$0.hi }
    }

    /// Index the entries of one class: 0 (MFN) or 1 (IDENTITY).
    init(starts: [UInt64], firsts: [UInt64], steps: [UInt8], literals: [UInt64], nrPfns: UInt64, entryClass wanted: UInt64) {
        var all: [Interval] = []
        @inline(__always) func usable(_ e: UInt64) -> Bool { entryClass(e) == wanted }
        for k in 0..<starts.count {
            let end = k + 1 < starts.count ? starts[k + 1] : nrPfns
            let len = end - starts[k]
            let f = firsts[k]
            switch steps[k] {
            case 0:
                if usable(f) { let m = f & ~P2MEntry.flagMask
                    all.append(Interval(lo: m, hi: m, pfnAtLo: starts[k], dir: 0, mult: len)) }
            case 1:
                if usable(f) { let m = f & ~P2MEntry.flagMask
                    all.append(Interval(lo: m, hi: m + len - 1, pfnAtLo: starts[k], dir: 1, mult: 1)) }
            case 2:
                if usable(f) { let m = f & ~P2MEntry.flagMask
                    all.append(Interval(lo: m - (len - 1), hi: m, pfnAtLo: starts[k] + len - 1, dir: -1, mult: 1)) }
            default:
                // Literal entries: merge neighbours that happen to ascend into one interval.
                var i = 0
                while i < Int(len) {
                    let e = literals[Int(f) + i]
                    guard usable(e) else { i += 1; continue }
                    let m = e & ~P2MEntry.flagMask
                    var j = i + 1
                    while j < Int(len), literals[Int(f) + j] == e &+ UInt64(j - i) { j += 1 }
                    all.append(Interval(lo: m, hi: m + UInt64(j - i - 1), pfnAtLo: starts[k] + UInt64(i), dir: 1, mult: 1))
                    i = j
                }
            }
        }
        all.sort { $0.lo < $1.lo }
        main.reserveCapacity(all.count)
        var maxHi: UInt64? = nil
        for iv in all {
            if let m = maxHi, iv.lo <= m { overlaps.append(iv) } else { main.append(iv); maxHi = iv.hi }
        }
        guard let last = main.last else { return }
        // Bucket index: about two buckets per interval.
        let target = UInt64(max(1024, main.count * 2))
        while (last.hi >> shift) + 1 > target { shift += 1 }
        let nb = Int((last.hi >> shift) + 2)
        bucketStart = [Int32](repeating: Int32(main.count), count: nb)
        var k = 0
        for b in 0..<nb {
            let lowMfn = UInt64(b) << shift
            while k < main.count && main[k].hi < lowMfn { k += 1 }
            bucketStart[b] = Int32(k)
        }
    }

    /// Index in `main` of the interval holding `m`, if any: one bucket read, a short search.
    @inline(__always) func mainHit(_ m: UInt64) -> Int? {
        guard !main.isEmpty else { return nil }
        let bucket = m >> shift
        guard bucket <= UInt64(bucketStart.count - 2) else { return nil }
        let b = Int(bucket)
        var lo = Int(bucketStart[b])
        var hi = min(Int(bucketStart[b + 1]), main.count - 1)
        guard lo <= hi else { return nil }
        return main.withUnsafeBufferPointer { iv -> Int? in
            guard iv[lo].lo <= m else { return nil }
            while lo < hi {
                let mid = (lo + hi + 1) >> 1
                if iv[mid].lo <= m { lo = mid } else { hi = mid - 1 }
            }
            return m <= iv[lo].hi ? lo : nil
        }
    }

    func lookup(_ m: UInt64) -> M2PResult {
        let hit = mainHit(m)
        // Fast path: no conflicts anywhere in the map.
        if overlaps.isEmpty, let k = hit, main[k].mult == 1 { return .unique(PFN(rawValue: main[k].pfn(m))) }
        if overlaps.isEmpty && hit == nil { return .none }
        var found: [PFN] = []
        if let k = hit {
            let iv = main[k]
            if iv.mult > 1 { for i in 0..<min(iv.mult, 16) { found.append(PFN(rawValue: iv.pfnAtLo + i)) } }
            else { found.append(PFN(rawValue: iv.pfn(m))) }
        }
        for iv in overlaps where iv.lo <= m && m <= iv.hi && found.count < 16 { found.append(PFN(rawValue: iv.pfn(m))) }
        switch found.count {
        case 0: return .none
        case 1: return .unique(found[0])
        default: return .ambiguous(found)
        }
    }
}
