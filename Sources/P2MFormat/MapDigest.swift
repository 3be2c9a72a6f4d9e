// The map digest of Spec §7: XXH64 over the greedy canonical runs of the entry sequence.
//
// Canonical runs depend only on the map, not on how a note split it into records, so the
// digest lets an analyzer compare a table read back from memory with a note without
// re-encoding. This implementation merges *progressions* (runs of one class with a constant
// step) so that it costs O(records + literal entries), not O(pfns).

/// Class of a normalised entry (Spec §3): 4 = INVALID, else bits 63..62.
@inline(__always) func entryClass(_ e: UInt64) -> UInt64 { e == .max ? 4 : e >> 62 }

public struct CanonicalRun: Hashable, Sendable {
    public var start: UInt64
    public var length: UInt64
    public var first: UInt64
    /// 0, 1 or UInt64.max (−1).
    public var step: UInt64
}

/// Streaming canonicaliser + digest. Feed entries in pfn order, as single entries or as
/// progressions; read `digest`, `counts` and (optionally) the canonical runs.
public struct MapDigester: Sendable {
    private var hasher = XXH64()
    private var pos: UInt64 = 0
    // Current canonical run; `curStep == nil` while it has one entry.
    private var curStart: UInt64 = 0
    private var curLen: UInt64 = 0
    private var curFirst: UInt64 = 0
    private var curStep: UInt64? = nil
    private var curClass: UInt64 = 0
    public private(set) var counts = EntryCounts()
    public private(set) var runCount: UInt64 = 0
    private let keepRuns: Bool
    public private(set) var runs: [CanonicalRun] = []

    public init(keepRuns: Bool = false) { self.keepRuns = keepRuns }

    public var entriesFed: UInt64 { pos }

    @inline(__always) private var curLast: UInt64 {
        curFirst &+ (curStep ?? 0) &* (curLen &- 1)
    }

    private mutating func emit() {
        guard curLen > 0 else { return }
        let step = curStep ?? 0
        hasher.update(word: curStart)
        hasher.update(word: curLen)
        hasher.update(word: curFirst)
        hasher.update(word: step)
        runCount += 1
        if keepRuns { runs.append(CanonicalRun(start: curStart, length: curLen, first: curFirst, step: step)) }
        curLen = 0
    }

    /// Feed `length` entries `first + i·step` (step 0, 1 or UInt64.max), all of one class.
    /// The caller guarantees the class does not change inside the progression.
    public mutating func feed(first: UInt64, length: UInt64, step: UInt64) {
        guard length > 0 else { return }
        let cls = entryClass(first)
        counts.add(first: first, length: length)
        // First entry: try to extend the current run.
        var consumed = false
        if curLen > 0 && cls == curClass {
            if let s = curStep {
                if first == curLast &+ s { curLen += 1; consumed = true }
            } else {
                let d = first &- curFirst
                if d == 0 || d == 1 || d == .max { curStep = d; curLen = 2; consumed = true }
            }
        }
        if !consumed {
            emit()
            curStart = pos; curLen = 1; curFirst = first; curStep = nil; curClass = cls
        }
        // The remaining entries continue the progression with `step`.
        let rest = length - 1
        if rest > 0 {
            if curStep == nil {
                curStep = step
                curLen += rest
            } else if curStep == step {
                curLen += rest
            } else {
                // `first` ended the current run; the rest starts a new one at its second entry.
                emit()
                curStart = pos &+ 1
                curLen = rest
                curFirst = first &+ step
                curStep = rest >= 2 ? step : nil
                curClass = cls
            }
        }
        pos &+= length
    }

    @inline(__always) public mutating func feed(entry e: UInt64) {
        feed(first: e, length: 1, step: 0)
    }

    /// Feed a chunk of normalised entries (e.g. a page of a p2m list read from memory).
    public mutating func feed(entries: UnsafeBufferPointer<UInt64>) {
        var i = 0
        let n = entries.count
        while i < n {
            let e = entries[i]
            let cls = entryClass(e)
            var j = i + 1
            var step: UInt64 = 0
            if j < n, entryClass(entries[j]) == cls {
                let d = entries[j] &- e
                if d == 0 || d == 1 || d == .max {
                    step = d
                    j += 1
                    while j < n, entries[j] == entries[j - 1] &+ step, entryClass(entries[j]) == cls { j += 1 }
                }
            }
            feed(first: e, length: UInt64(j - i), step: step)
            i = j
        }
    }

    public mutating func feedInvalid(count: UInt64) { feed(first: .max, length: count, step: 0) }

    /// `count` identity entries starting at the current position (pfn | 1<<62).
    public mutating func feedIdentity(count: UInt64) {
        feed(first: pos | P2MEntry.identityBit, length: count, step: 1)
    }

    /// Close the last run and return the digest.
    public mutating func finish() -> UInt64 {
        emit()
        return hasher.finalize()
    }
}

/// Entries per kind.
public struct EntryCounts: Hashable, Sendable, CustomStringConvertible {
    public var mfn: UInt64 = 0
    public var invalid: UInt64 = 0
    public var identity: UInt64 = 0
    public var foreign: UInt64 = 0
    public init() {}
    public init(mfn: UInt64, invalid: UInt64, identity: UInt64, foreign: UInt64) {
        self.mfn = mfn; self.invalid = invalid; self.identity = identity; self.foreign = foreign
    }

    @inline(__always) mutating func add(first: UInt64, length: UInt64) {
        switch entryClass(first) {
        case 0: mfn &+= length
        case 1: identity &+= length
        case 4: invalid &+= length
        default: foreign &+= length
        }
    }

    public var total: UInt64 { mfn &+ invalid &+ identity &+ foreign }
    public subscript(kind: EntryKind) -> UInt64 {
        switch kind {
        case .mfn: return mfn
        case .invalid: return invalid
        case .identity: return identity
        case .foreign: return foreign
        }
    }
    public var description: String { "mfn \(mfn), invalid \(invalid), identity \(identity), foreign \(foreign)" }
}

/// Entry-by-entry reference of Spec §7, for tests and for tiny maps.
public func canonicalRunsReference(_ e: [UInt64]) -> [CanonicalRun] {
    var out: [CanonicalRun] = []
    var i = 0
    while i < e.count {
        let c = entryClass(e[i])
        var j = i + 1
        var step: UInt64 = 0
        if j < e.count, entryClass(e[j]) == c {
            let d = e[j] &- e[i]
            if d == 0 || d == 1 || d == .max {
                step = d
                while j < e.count, entryClass(e[j]) == c, e[j] == e[j - 1] &+ step { j += 1 }
            }
        }
        out.append(CanonicalRun(start: UInt64(i), length: UInt64(j - i), first: e[i], step: step))
        i = j
    }
    return out
}

public func digestOf(canonicalRuns runs: [CanonicalRun]) -> UInt64 {
    var h = XXH64()
    for r in runs { h.update(word: r.start); h.update(word: r.length); h.update(word: r.first); h.update(word: r.step) }
    return h.finalize()
}
