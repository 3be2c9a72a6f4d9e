// p2m layouts as data: what a guest's pfn→mfn table looks like for each profile, without
// expanding long runs, so that TiB guests (2^28 pfns) stay cheap.
import P2MFormat

/// Deterministic PRNG (splitmix64): same seed → same dump, on every machine.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func below(_ n: UInt64) -> UInt64 { n == 0 ? 0 : next() % n }
    public mutating func range(_ r: ClosedRange<UInt64>) -> UInt64 { r.lowerBound + below(r.upperBound - r.lowerBound + 1) }
}

public enum LayoutProfile: String, CaseIterable, Sendable {
    /// What Xen's dom0 builder gives: long ascending chunks, series of 64-page chunks whose
    /// starting mfns step down by 0x40, a few short descending runs, identity for the legacy
    /// hole (pfns 0x9f–0xff) and the PCI hole, INVALID beyond RAM.
    case dom0
    /// dom0 plus ranges ballooned out (INVALID inside RAM).
    case ballooned
    /// A domU after live migration: the restore side populates pfns in batches and Xen hands
    /// out 2 MiB extents where it can, so most runs are 512 pages (some shorter, some longer),
    /// placed near each other but out of order.
    case fragmented
    /// A harsher case: runs of 1–512 pages shuffled across the whole machine.
    case scattered
    /// A random permutation: the worst case for any run encoding.
    case random
}

public enum P2MSegment: Sendable, Equatable {
    case invalid(UInt64)
    case identity(UInt64)
    case ascending(first: UInt64, count: UInt64)
    case descending(first: UInt64, count: UInt64)
    case literal([UInt64])                    // normalised entries

    public var count: UInt64 {
        switch self {
        case .invalid(let n), .identity(let n): return n
        case .ascending(_, let n), .descending(_, let n): return n
        case .literal(let v): return UInt64(v.count)
        }
    }
}

/// A machine frame range [start, start+count).
public struct FrameRange: Sendable, Equatable, Codable {
    public var start: UInt64
    public var count: UInt64
    public init(start: UInt64, count: UInt64) { self.start = start; self.count = count }
    public var end: UInt64 { start + count }
}

public struct P2MLayout: Sendable {
    public let width: EntryWidth
    public let nrPfns: UInt64
    public let segments: [P2MSegment]
    private let starts: [UInt64]

    public init(width: EntryWidth, segments: [P2MSegment]) {
        self.width = width
        var s: [UInt64] = []
        var p: UInt64 = 0
        var merged: [P2MSegment] = []
        for seg in segments where seg.count > 0 { s.append(p); p += seg.count; merged.append(seg) }
        self.segments = merged
        self.starts = s
        self.nrPfns = p
    }

    public func entry(at pfn: UInt64) -> P2MEntry {
        guard pfn < nrPfns else { return .invalid }
        var lo = 0, hi = starts.count - 1
        while lo < hi { let mid = (lo + hi + 1) / 2; if starts[mid] <= pfn { lo = mid } else { hi = mid - 1 } }
        let off = pfn - starts[lo]
        switch segments[lo] {
        case .invalid: return .invalid
        case .identity: return .identity(PFN(rawValue: pfn))
        case .ascending(let f, _): return P2MEntry(raw: f + off)
        case .descending(let f, _): return P2MEntry(raw: f - off)
        case .literal(let v): return P2MEntry(raw: v[Int(off)])
        }
    }

    /// Write normalised entries from `pfn` on into `out` (INVALID beyond the table).
    public func fill(from pfn: UInt64, into out: UnsafeMutableBufferPointer<UInt64>) {
        var p = pfn
        var i = 0
        while i < out.count {
            guard p < nrPfns else { out[i] = .max; i += 1; p += 1; continue }
            var lo = 0, hi = starts.count - 1
            while lo < hi { let mid = (lo + hi + 1) / 2; if starts[mid] <= p { lo = mid } else { hi = mid - 1 } }
            let seg = segments[lo]
            let off = p - starts[lo]
            let n = Int(min(UInt64(out.count - i), seg.count - off))
            switch seg {
            case .invalid: for k in 0..<n { out[i + k] = .max }
            case .identity: for k in 0..<n { out[i + k] = (p + UInt64(k)) | P2MEntry.identityBit }
            case .ascending(let f, _): for k in 0..<n { out[i + k] = f + off + UInt64(k) }
            case .descending(let f, _): for k in 0..<n { out[i + k] = f - off - UInt64(k) }
            case .literal(let v): for k in 0..<n { out[i + k] = v[Int(off) + k] }
            }
            i += n; p += UInt64(n)
        }
    }

    /// All entries (only for small tables: tests).
    public func allEntries() -> [UInt64] {
        var a = [UInt64](repeating: 0, count: Int(nrPfns))
        a.withUnsafeMutableBufferPointer { fill(from: 0, into: $0) }
        return a
    }

    /// Generate a layout.
    /// - guestPages: pages of RAM the guest has (mapped pfns, identity ranges excluded).
    /// - nrPfns: slots of the table (≥ what RAM needs; Linux: xen_p2m_size, often 2^27).
    /// - free: machine frames the guest may use (sorted, disjoint).
    public static func generate(profile: LayoutProfile, guestPages: UInt64, nrPfns: UInt64,
                                free: [FrameRange], width: EntryWidth, seed: UInt64) throws -> P2MLayout {
        var rng = SplitMix64(seed: seed ^ 0x70326D6E6F7465)
        // Which pfn ranges hold RAM, which are identity holes (as Linux dom0 sets them up).
        var plan: [(isRAM: Bool, count: UInt64)] = []
        var ramLeft = guestPages
        var pfn: UInt64 = 0
        func take(_ n: UInt64) { let k = min(n, ramLeft); if k > 0 { plan.append((true, k)); ramLeft -= k; pfn += k } }
        if profile == .dom0 || profile == .ballooned {
            take(0x9f)
            if ramLeft > 0 { plan.append((false, 0x100 - 0x9f)); pfn = 0x100 }
            take(0xC0000 - 0x100)
            if ramLeft > 0 { plan.append((false, 0x100000 - 0xC0000)); pfn = 0x100000 }
            take(ramLeft)
        } else {
            take(ramLeft)
        }
        let maxFrame = width.maxFrame
        // Machine frames, in order, as slices.
        let totalFree = free.reduce(0) { $0 + $1.count }
        guard totalFree >= guestPages else {
            throw GenError.parameter("the machine has \(totalFree) free frames, the guest needs \(guestPages)")
        }
        var pool = FramePool(free)
        var segs: [P2MSegment] = []
        for part in plan {
            if !part.isRAM { segs.append(.identity(part.count)); continue }
            var left = part.count
            switch profile {
            case .dom0, .ballooned:
                while left > 0 {
                    let r = rng.below(100)
                    if r < 55 {
                        let n = min(left, rng.range(1024...65536))
                        for s in try pool.take(n) { segs.append(.ascending(first: s.start, count: s.count)) }
                        left -= n
                    } else if r < 90 {
                        // A series of 64-page chunks taken from one region, emitted top down.
                        let k = min(left / 64, rng.range(4...64))
                        if k == 0 { let n = left; for s in try pool.take(n) { segs.append(.ascending(first: s.start, count: s.count)) }; left = 0; break }
                        let slices = try pool.take(k * 64)
                        var chunks: [FrameRange] = []
                        for s in slices { var st = s.start; var c = s.count
                            while c > 0 { let m = min(64, c); chunks.append(FrameRange(start: st, count: m)); st += m; c -= m } }
                        for c in chunks.reversed() { segs.append(.ascending(first: c.start, count: c.count)) }
                        left -= k * 64
                    } else {
                        let n = min(left, rng.range(8...64))
                        for s in try pool.take(n) { segs.append(.descending(first: s.end - 1, count: s.count)) }
                        left -= n
                    }
                    if profile == .ballooned && left > 0 && rng.below(4) == 0 {
                        let gap = min(left, rng.range(16...4096))
                        segs.append(.invalid(gap)); left -= gap
                    }
                }
            case .fragmented:
                while left > 0 {
                    var window: [FrameRange] = []
                    for _ in 0..<8 where left > 0 {
                        let r = rng.below(10)
                        let n = min(left, r < 7 ? 512 : (r < 9 ? rng.range(1...511) : rng.range(1024...8192)))
                        window += try pool.take(n); left -= n
                        if rng.below(4) == 0 { _ = try? pool.take(rng.range(1...1024)) }   // frames that went elsewhere
                    }
                    window.shuffle(using: &rng)
                    for s in window {
                        if s.count > 1 && rng.below(16) == 0 { segs.append(.descending(first: s.end - 1, count: s.count)) }
                        else { segs.append(.ascending(first: s.start, count: s.count)) }
                    }
                }
            case .scattered:
                // Slices of 1–512 frames, scattered: take a window of slices and shuffle it.
                while left > 0 {
                    var window: [FrameRange] = []
                    var w: UInt64 = 0
                    while w < min(left, 1 << 16) {
                        let n = min(left - w, rng.range(1...512))
                        window += try pool.take(n); w += n
                    }
                    window.shuffle(using: &rng)
                    for s in window {
                        if s.count > 1 && rng.below(8) == 0 { segs.append(.descending(first: s.end - 1, count: s.count)) }
                        else { segs.append(.ascending(first: s.start, count: s.count)) }
                    }
                    left -= w
                }
            case .random:
                var frames: [UInt64] = []
                frames.reserveCapacity(Int(left))
                for s in try pool.take(left) { frames += (s.start..<s.end) }
                frames.shuffle(using: &rng)
                segs.append(.literal(frames))
                left = 0
            }
        }
        let used = segs.reduce(0) { $0 + $1.count }
        guard used <= nrPfns else { throw GenError.parameter("nrPfns \(nrPfns) is smaller than the \(used) pfns the guest needs") }
        segs.append(.invalid(nrPfns - used))
        for s in segs {
            switch s {
            case .ascending(let f, let n): if f + n - 1 > maxFrame { throw GenError.parameter("mfn beyond the entry width") }
            case .descending(let f, _): if f > maxFrame { throw GenError.parameter("mfn beyond the entry width") }
            default: break
            }
        }
        return P2MLayout(width: width, segments: segs)
    }
}

/// Hands out machine frames in address order.
struct FramePool {
    var ranges: [FrameRange]
    var index = 0
    init(_ r: [FrameRange]) { ranges = r }
    mutating func take(_ n: UInt64) throws -> [FrameRange] {
        var out: [FrameRange] = []
        var left = n
        while left > 0 {
            guard index < ranges.count else { throw GenError.parameter("out of machine frames") }
            let r = ranges[index]
            let k = min(left, r.count)
            out.append(FrameRange(start: r.start, count: k))
            if k == r.count { index += 1 } else { ranges[index] = FrameRange(start: r.start + k, count: r.count - k) }
            left -= k
        }
        return out
    }
}

public enum GenError: Error, CustomStringConvertible {
    case parameter(String)
    case io(String)
    public var description: String {
        switch self {
        case .parameter(let s): return "p2m-gendump: \(s)"
        case .io(let s): return "p2m-gendump: \(s)"
        }
    }
}
