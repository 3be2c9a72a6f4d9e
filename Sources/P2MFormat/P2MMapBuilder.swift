// Build a P2MMap straight from a table streamed in pfn order (a dump's linear list, Xen's
// frame-list tree, `.xen_p2m`), without encoding a note and decoding it again.
//
// Runs: a stretch of one entry class whose values step by +1, −1 or 0 is one run; entries that
// start no run are gathered into literal stretches. The result answers exactly what the
// entries say; its runs need not be the note's records.

public struct P2MMapBuilder {
    public let width: EntryWidth
    private var starts: [UInt64] = []
    private var firsts: [UInt64] = []
    private var steps: [UInt8] = []
    private var literals: [UInt64] = []
    private var pfn: UInt64 = 0
    // The run being formed: [pendStart, pfn), first value, step code (0/1/2), or one entry.
    private var pendStart: UInt64 = 0
    private var pendFirst: UInt64 = 0
    private var pendLast: UInt64 = 0
    private var pendLen: UInt64 = 0
    private var pendStep: UInt8 = 0

    public init(width: EntryWidth = .eight) { self.width = width }

    /// Entries added so far.
    public var count: UInt64 { pfn }

    @inline(__always) private static func cls(_ e: UInt64) -> UInt64 { e == .max ? 4 : e >> 62 }

    private func stepCode(_ a: UInt64, _ b: UInt64) -> UInt8? {
        guard P2MMapBuilder.cls(a) == P2MMapBuilder.cls(b) else { return nil }
        if b == a { return 0 }
        if b == a &+ 1 { return 1 }
        if b == a &- 1 { return 2 }
        return nil
    }

    /// Whether the last stored progression run already continues with `first` at `start`.
    private func lastRunContinues(start: UInt64, first: UInt64, step: UInt8) -> Bool {
        guard let k = starts.indices.last, steps[k] != 3, steps[k] == step else { return false }
        let off = start - starts[k]
        let v: UInt64 = step == 0 ? firsts[k] : (step == 1 ? firsts[k] &+ off : firsts[k] &- off)
        guard v == first else { return false }
        // Never continue across a class change.
        return P2MMapBuilder.cls(firsts[k]) == P2MMapBuilder.cls(first)
    }

    private mutating func storeRun(start: UInt64, first: UInt64, step: UInt8) {
        if lastRunContinues(start: start, first: first, step: step) { return }
        starts.append(start); firsts.append(first); steps.append(step)
    }

    private mutating func storeSingleton(at p: UInt64, _ e: UInt64) {
        if let k = starts.indices.last, steps[k] == 3 {
            // Extend the literal stretch that ends right here.
            literals.append(e)
            return
        }
        starts.append(p); firsts.append(UInt64(literals.count)); steps.append(3)
        literals.append(e)
    }

    private mutating func flush() {
        switch pendLen {
        case 0: return
        case 1: storeSingleton(at: pendStart, pendFirst)
        default: storeRun(start: pendStart, first: pendFirst, step: pendStep)
        }
        pendLen = 0
    }

    public mutating func append(_ e: UInt64) {
        if pendLen == 0 {
            pendStart = pfn; pendFirst = e; pendLast = e; pendLen = 1
        } else if pendLen == 1, let s = stepCode(pendLast, e) {
            pendStep = s; pendLast = e; pendLen = 2
        } else if pendLen >= 2, stepCode(pendLast, e) == pendStep {
            pendLast = e; pendLen += 1
        } else {
            flush()
            pendStart = pfn; pendFirst = e; pendLast = e; pendLen = 1
        }
        pfn += 1
    }

    public mutating func append(entries: UnsafeBufferPointer<UInt64>) { for e in entries { append(e) } }

    /// `count` INVALID entries.
    public mutating func appendInvalid(count: UInt64) {
        guard count > 0 else { return }
        flush()
        storeRun(start: pfn, first: .max, step: 0)
        pfn += count
    }

    /// `count` entries IDENTITY of their own pfn.
    public mutating func appendIdentity(count: UInt64) {
        guard count > 0 else { return }
        flush()
        storeRun(start: pfn, first: pfn | P2MEntry.identityBit, step: 1)
        pfn += count
    }

    public mutating func finish() -> P2MMap {
        flush()
        return P2MMap(nrPfns: pfn, width: width, starts: starts, firsts: firsts, steps: steps, literals: literals)
    }
}
