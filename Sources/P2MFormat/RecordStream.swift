// The record stream of Spec §6: the streaming reference encoder (§9) and the decoder.
//
// The encoder is the hot path of `p2m-emit`: a 2^27-entry table is mostly INVALID with a few
// hundred runs at the start, so each state scans ahead in a tight loop (8 entries at a time
// with SIMD where the comparison is uniform) and only the boundaries take the general path.

public enum RecordKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case invalid = 0x1, identity = 0x2, ascending = 0x3, descending = 0x4, repeated = 0x5
    case foreignAscending = 0x6, foreignDescending = 0x7, literal = 0x8, literalRaw = 0x9

    public var description: String {
        switch self {
        case .invalid: return "INVALID"
        case .identity: return "IDENTITY"
        case .ascending: return "ASC"
        case .descending: return "DESC"
        case .repeated: return "REPEAT"
        case .foreignAscending: return "FOREIGN_ASC"
        case .foreignDescending: return "FOREIGN_DESC"
        case .literal: return "LITERAL"
        case .literalRaw: return "LITERAL_RAW"
        }
    }
}

/// Which stream of the payload: the map (entries at the guest's width) or the frames stream
/// (width 8, no IDENTITY or FOREIGN runs).
public enum StreamRole: Sendable {
    case map(EntryWidth)
    case frames

    var width: EntryWidth { if case .map(let w) = self { return w } else { return .eight } }
    var isFrames: Bool { if case .frames = self { return true } else { return false } }
    var name: String { isFrames ? "frames" : "map" }
}

/// Is a normalised entry representable at `width` (Spec §3)? Width 4 holds all ones, or a payload
/// below 2^30 whose 32-bit slot is not 0xffffffff: 0xC00000003FFFFFFF (class 3, payload 2^30 − 1)
/// would be stored as 0xffffffff and read back as INVALID, so it is not representable.
@inline(__always) func representable(_ e: UInt64, _ width: EntryWidth) -> Bool {
    width == .eight || e == .max || ((e & ~P2MEntry.flagMask) <= 0x3FFF_FFFF && e != 0xC000_0000_3FFF_FFFF)
}

// MARK: - Encoder

/// Streaming reference encoder (Spec §9). Output depends only on the entry sequence, not on
/// how it was chunked.
public final class StreamEncoder {
    public let role: StreamRole
    private let width: EntryWidth
    private let isFrames: Bool
    private var out: ByteWriter
    public private(set) var digester = MapDigester()
    public private(set) var nrRecords: UInt64 = 0
    private var cursor: UInt64 = 0
    /// Entries consumed so far.
    public private(set) var count: UInt64 = 0

    private enum State { case empty, invalid, identity, candidate, run }
    private var state = State.empty
    private var runLen: UInt64 = 0
    private var runFirst: UInt64 = 0
    private var runStep: UInt64 = 0
    private var runClass: UInt64 = 0
    private var literals: [UInt64] = []
    private var finished = false

    public init(role: StreamRole) {
        self.role = role
        self.width = role.width
        self.isFrames = role.isFrames
        self.out = ByteWriter(capacity: 1 << 12)
    }

    // MARK: record writing

    @inline(__always) private func tag(_ kind: RecordKind, _ length: UInt64) {
        if length <= 15 {
            out.u8(kind.rawValue | UInt8(length) << 4)
        } else {
            out.u8(kind.rawValue)
            out.uvar(length)
        }
        nrRecords += 1
    }

    private func flushLiterals() {
        guard !literals.isEmpty else { return }
        let n = UInt64(literals.count)
        // LITERAL (varints through the cursor) or LITERAL_RAW, whichever is shorter.
        var varBytes = 0
        var c = cursor
        for e in literals {
            varBytes += uvarSize(zigzag(e &- c))
            c = e &+ 1
        }
        let rawBytes = literals.count * width.bytes
        if varBytes <= rawBytes {
            tag(.literal, n)
            for e in literals {
                out.svar(e &- cursor)
                cursor = e &+ 1
                digester.feed(entry: e)
            }
        } else {
            tag(.literalRaw, n)
            for e in literals {
                // stored(width:) cannot fail: entries were checked representable on input.
                out.le(P2MEntry(raw: e).stored(width: width) ?? e, width.bytes)
                cursor = e &+ 1
                digester.feed(entry: e)
            }
        }
        literals.removeAll(keepingCapacity: true)
    }

    /// Close the pending run-like record (not a candidate).
    private func closeRun() {
        switch state {
        case .invalid:
            tag(.invalid, runLen)
            digester.feedInvalid(count: runLen)
        case .identity:
            tag(.identity, runLen)
            digester.feedIdentity(count: runLen)
        case .run:
            let isForeign = runClass == 2
            let kind: RecordKind
            var v = runFirst
            switch runStep {
            case 0: kind = .repeated
            case 1: kind = isForeign ? .foreignAscending : .ascending
            default: kind = isForeign ? .foreignDescending : .descending
            }
            if isForeign && runStep != 0 { v &= ~P2MEntry.foreignBit }
            tag(kind, runLen)
            out.svar(v &- cursor)
            switch kind {
            case .ascending, .foreignAscending: cursor = v &+ runLen
            case .descending, .foreignDescending: cursor = v &- runLen &+ 2
            default: cursor = v &+ 1
            }
            digester.feed(first: runFirst, length: runLen, step: runStep)
        case .candidate, .empty:
            return
        }
        state = .empty
    }

    // MARK: input

    /// Append normalised entries (Spec §3).
    public func append(entries p: UnsafeBufferPointer<UInt64>) throws {
        precondition(!finished, "append after finish")
        if width == .four {
            for (k, e) in p.enumerated() where !representable(e, .four) {
                throw P2MFormatError.encoding("entry 0x\(String(e, radix: 16)) at index \(count + UInt64(k)) does not fit a 4-byte slot")
            }
        }
        guard let base = p.baseAddress else { return }
        let n = p.count
        var i = 0
        let lane = SIMD8<UInt64>(0, 1, 2, 3, 4, 5, 6, 7)
        let ones = SIMD8<UInt64>(repeating: .max)
        while i < n {
            switch state {
            case .invalid:
                var j = i
                while j + 8 <= n {
                    let v = UnsafeRawPointer(base + j).loadUnaligned(as: SIMD8<UInt64>.self)
                    if v != ones { break }
                    j += 8
                }
                while j < n && base[j] == .max { j += 1 }
                runLen += UInt64(j - i); count += UInt64(j - i); i = j
                if i < n { closeRun() }
            case .identity:
                var j = i
                var expect = count | P2MEntry.identityBit
                while j + 8 <= n {
                    let v = UnsafeRawPointer(base + j).loadUnaligned(as: SIMD8<UInt64>.self)
                    if v != SIMD8(repeating: expect) &+ lane { break }
                    j += 8; expect &+= 8
                }
                while j < n && base[j] == expect { j += 1; expect &+= 1 }
                runLen += UInt64(j - i); count += UInt64(j - i); i = j
                if i < n { closeRun() }
            case .run:
                var j = i
                var expect = runFirst &+ runStep &* runLen
                if runStep == 1 {
                    while j + 8 <= n && entryClass(expect &+ 7) == runClass && expect &+ 7 > expect {
                        let v = UnsafeRawPointer(base + j).loadUnaligned(as: SIMD8<UInt64>.self)
                        if v != SIMD8(repeating: expect) &+ lane { break }
                        j += 8; expect &+= 8
                    }
                } else if runStep == 0 {
                    let r = SIMD8<UInt64>(repeating: expect)
                    while j + 8 <= n {
                        let v = UnsafeRawPointer(base + j).loadUnaligned(as: SIMD8<UInt64>.self)
                        if v != r { break }
                        j += 8
                    }
                }
                while j < n && base[j] == expect && entryClass(expect) == runClass {
                    j += 1; expect &+= runStep
                }
                runLen += UInt64(j - i); count += UInt64(j - i); i = j
                if i < n { closeRun() }
            case .candidate:
                let e = base[i]
                let d = e &- runFirst
                if entryClass(e) == runClass && (d == 0 || d == 1 || d == .max)
                    && !(isFrames && runClass == 2 && d != 0) {
                    flushLiterals()       // singletons before the candidate come first
                    state = .run
                    runStep = d
                    runLen = 2
                    i += 1; count += 1
                } else {
                    literals.append(runFirst)
                    state = .empty
                }
            case .empty:
                let e = base[i]
                runLen = 1
                runFirst = e
                if e == .max {
                    flushLiterals(); state = .invalid
                } else if !isFrames && e == count | P2MEntry.identityBit {
                    flushLiterals(); state = .identity
                } else {
                    let cls = entryClass(e)
                    if cls == 0 || cls == 2 {
                        runClass = cls
                        state = .candidate
                    } else {
                        literals.append(e)
                    }
                }
                i += 1; count += 1
            }
        }
    }

    /// Append slots as stored in guest memory: `width` bytes each, little-endian.
    public func append(stored raw: UnsafeRawBufferPointer) throws {
        let w = width.bytes
        guard raw.count % w == 0 else {
            throw P2MFormatError.encoding("stored table of \(raw.count) bytes is not a multiple of \(w)")
        }
        if width == .eight {
            try raw.withMemoryRebound(to: UInt64.self) { try append(entries: $0) }
            return
        }
        var tmp = [UInt64](repeating: 0, count: min(4096, raw.count / w))
        var off = 0
        while off < raw.count {
            let k = min(tmp.count, (raw.count - off) / w)
            for t in 0..<k {
                let s = UInt64(raw.loadUnaligned(fromByteOffset: off + 4 * t, as: UInt32.self))
                tmp[t] = P2MEntry.normalise(stored: s, width: .four)?.raw ?? .max
            }
            try tmp.withUnsafeBufferPointer { try append(entries: UnsafeBufferPointer(rebasing: $0[0..<k])) }
            off += 4 * k
        }
    }

    public func append(_ entries: [UInt64]) throws {
        try entries.withUnsafeBufferPointer { try append(entries: $0) }
    }

    /// The next `n` entries are INVALID (e.g. a list page backed by the shared p2m_missing page).
    public func appendInvalid(count n: UInt64) throws {
        guard n > 0 else { return }
        var one: UInt64 = .max
        try withUnsafePointer(to: &one) { try append(entries: UnsafeBufferPointer(start: $0, count: 1)) }
        if n > 1 { runLen += n - 1; count += n - 1 }
    }

    /// The next `n` entries are IDENTITY of their own pfn (a p2m_identity-backed page).
    public func appendIdentity(count n: UInt64) throws {
        guard n > 0 else { return }
        guard !isFrames else { throw P2MFormatError.encoding("identity entries in the frames stream") }
        guard count + n - 1 <= width.maxFrame else {
            throw P2MFormatError.encoding("identity pfn beyond the \(width.bytes)-byte entry range")
        }
        var one: UInt64 = count | P2MEntry.identityBit
        try withUnsafePointer(to: &one) { try append(entries: UnsafeBufferPointer(start: $0, count: 1)) }
        if n > 1 {
            if state == .identity {
                runLen += n - 1; count += n - 1
            } else {
                // Cannot happen: an identity entry of its own pfn always opens/extends an identity run.
                for _ in 1..<n { var e = count | P2MEntry.identityBit
                    try withUnsafePointer(to: &e) { try append(entries: UnsafeBufferPointer(start: $0, count: 1)) } }
            }
        }
    }

    /// Close the stream; returns its bytes.
    public func finish() -> [UInt8] {
        if !finished {
            if state == .candidate { literals.append(runFirst); state = .empty }
            closeRun()
            flushLiterals()
            finished = true
        }
        return out.bytes
    }
}

// MARK: - Decoder

/// One decoded record: `length` entries from index `start`. For value-bearing kinds `first` is
/// the first normalised entry; for literals `literalOffset` indexes the decoder's literal array.
public struct DecodedRecord: Hashable, Sendable {
    public var kind: RecordKind
    public var start: UInt64
    public var length: UInt64
    public var first: UInt64
    /// 0, 1 or UInt64.max: entries are first + i·step (literals: 0, see `literalOffset`).
    public var step: UInt64
    public var literalOffset: Int
}

/// Decode a whole stream (Spec §6), enforcing rule 14. Calls `record` for each record;
/// literal values are appended to `literals`. Returns the record count and feeds `digester`.
func decodeStream(_ bytes: UnsafeRawBufferPointer, role: StreamRole, entries total: UInt64,
                  digester: inout MapDigester, literals: inout [UInt64],
                  record: (DecodedRecord) -> Void) throws -> UInt64 {
    let width = role.width
    let maxFrame = width.maxFrame
    var r = ByteReader(bytes)
    var cursor: UInt64 = 0
    var pos: UInt64 = 0
    var nrec: UInt64 = 0
    func fail(_ why: StreamError.Reason, _ at: Int) -> P2MFormatError {
        .stream(StreamError(stream: role.name, reason: why, offset: at, record: nrec, index: pos))
    }
    while pos < total {
        let at = r.pos
        guard let t = r.u8() else { throw fail(.endedEarly(covered: pos, expected: total), at) }
        guard let kind = RecordKind(rawValue: t & 0x0F) else { throw fail(.reservedKind(t & 0x0F), at) }
        var length = UInt64(t >> 4)
        if length == 0 {
            guard let l = r.uvar() else { throw fail(r.remaining == 0 ? .truncated : .badVarint, at) }
            guard l != 0 else { throw fail(.zeroLength, at) }
            guard l >= 16 else { throw fail(.nonCanonicalLength(l), at) }
            length = l
        }
        guard length <= total - pos else { throw fail(.runPastEnd(length: length, remaining: total - pos), at) }
        var rec = DecodedRecord(kind: kind, start: pos, length: length, first: 0, step: 0, literalOffset: -1)
        switch kind {
        case .invalid:
            rec.first = .max
            digester.feedInvalid(count: length)
        case .identity:
            guard !role.isFrames else { throw fail(.constraint("IDENTITY is not allowed in the frames stream"), at) }
            guard pos + length - 1 <= maxFrame else { throw fail(.constraint("IDENTITY pfn beyond maxFrame"), at) }
            rec.first = pos | P2MEntry.identityBit
            rec.step = 1
            digester.feedIdentity(count: length)
        case .ascending, .descending, .repeated, .foreignAscending, .foreignDescending:
            guard let d = r.svar() else { throw fail(r.remaining == 0 ? .truncated : .badVarint, at) }
            let v = cursor &+ d
            let foreign = kind == .foreignAscending || kind == .foreignDescending
            if foreign && role.isFrames { throw fail(.constraint("FOREIGN runs are not allowed in the frames stream"), at) }
            switch kind {
            case .ascending, .foreignAscending:
                guard v <= maxFrame, length - 1 <= maxFrame - v else {
                    throw fail(.constraint("ascending run from 0x\(String(v, radix: 16)) length \(length) passes maxFrame"), at)
                }
                rec.step = 1
                cursor = v &+ length
            case .descending, .foreignDescending:
                guard v <= maxFrame, length - 1 <= v else {
                    throw fail(.constraint("descending run from 0x\(String(v, radix: 16)) length \(length) passes 0"), at)
                }
                rec.step = .max
                cursor = v &- length &+ 2
            default:
                guard v != .max, representable(v, width) else {
                    throw fail(.constraint("REPEAT value 0x\(String(v, radix: 16)) not allowed"), at)
                }
                rec.step = 0
                cursor = v &+ 1
            }
            rec.first = foreign ? v | P2MEntry.foreignBit : v
            digester.feed(first: rec.first, length: length, step: rec.step)
        case .literal, .literalRaw:
            rec.literalOffset = literals.count
            // Each literal needs at least one byte: refuse before reserving memory.
            let minBytes = kind == .literal ? 1 : width.bytes
            guard length <= UInt64(r.remaining) / UInt64(minBytes) else { throw fail(.truncated, at) }
            literals.reserveCapacity(literals.count + Int(length))
            for _ in 0..<length {
                let e: UInt64
                if kind == .literal {
                    guard let d = r.svar() else { throw fail(r.remaining == 0 ? .truncated : .badVarint, at) }
                    e = cursor &+ d
                    guard representable(e, width) else {
                        throw fail(.constraint("LITERAL 0x\(String(e, radix: 16)) does not fit a \(width.bytes)-byte slot"), at)
                    }
                } else {
                    guard let s = r.le(width.bytes) else { throw fail(.truncated, at) }
                    e = P2MEntry.normalise(stored: s, width: width)?.raw ?? .max
                }
                literals.append(e)
                digester.feed(entry: e)
                cursor = e &+ 1
            }
            rec.first = literals[rec.literalOffset]
        }
        record(rec)
        nrec += 1
        pos += length
    }
    if r.remaining > 0 { throw fail(.trailingBytes(r.remaining), r.pos) }
    return nrec
}
