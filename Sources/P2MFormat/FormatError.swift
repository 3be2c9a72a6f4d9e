// Typed errors of the note format. Each names the Spec §8 rule it enforces, so that a user
// (and the C decoder's author) can look it up; offsets are within the decoded stream or the
// descriptor as stated.

public enum P2MFormatError: Error, Equatable, CustomStringConvertible, Sendable {
    case badNote(String)                                   // rule 1
    case badMagic                                          // rule 2
    case unsupportedVersion(major: UInt16, minor: UInt16)  // rule 2
    case badHeaderSize(UInt32, descSize: Int)              // rule 3
    case headerChecksum(expected: UInt64, computed: UInt64) // rule 4
    case unknownFlags(UInt32)                              // rule 5
    case reservedNonZero(String)                           // rule 5
    case badGeometry(String)                               // rule 6
    case badPfnCount(UInt64)                               // rule 7
    case headerCountsDisagree(String)                      // rule 8
    case countsDisagree(String)                            // rule 15
    case badRecordCount(UInt64)                            // rule 9
    case sizeDisagrees(String)                             // rules 10, 11, 12
    case decompressionBomb(declared: UInt64, limit: UInt64) // rule 11
    case badFrames(String)                                 // rule 12
    case lz4(String)                                       // rule 13
    case stream(StreamError)                               // rule 14
    case digestMismatch(expected: UInt64, computed: UInt64) // rule 15
    case sharedPages(String)                               // rule 16
    case encoding(String)                                  // encoder input not representable

    public var rule: Int {
        switch self {
        case .badNote: return 1
        case .badMagic, .unsupportedVersion: return 2
        case .badHeaderSize: return 3
        case .headerChecksum: return 4
        case .unknownFlags, .reservedNonZero: return 5
        case .badGeometry: return 6
        case .badPfnCount: return 7
        case .headerCountsDisagree: return 8
        case .countsDisagree: return 15
        case .badRecordCount: return 9
        case .sizeDisagrees(let s): return s.hasPrefix("encoded_size") ? 10 : (s.hasPrefix("FRAMES") ? 12 : 11)
        case .decompressionBomb: return 11
        case .badFrames: return 12
        case .lz4: return 13
        case .stream: return 14
        case .digestMismatch: return 15
        case .sharedPages: return 16
        case .encoding: return 0
        }
    }

    public var description: String {
        let what: String
        switch self {
        case .badNote(let s): what = "not a p2mnote note: \(s)"
        case .badMagic: what = "descriptor magic is not \"p2mnote\\0\""
        case .unsupportedVersion(let a, let b): what = "unsupported format version \(a).\(b) (this decoder reads 1.x)"
        case .badHeaderSize(let h, let d): what = "header_size \(h) invalid for a descriptor of \(d) bytes (expected 160...4096 and ≤ descsz)"
        case .headerChecksum(let e, let c): what = "header checksum 0x\(String(e, radix: 16)) does not match computed 0x\(String(c, radix: 16))"
        case .unknownFlags(let f): what = "unknown must-understand flags 0x\(String(f, radix: 16))"
        case .reservedNonZero(let s): what = "reserved field \(s) is not zero"
        case .badGeometry(let s): what = s
        case .badPfnCount(let n): what = "nr_pfns \(n) out of range (1 ... 2^40, ≤ 2^30 for 4-byte entries)"
        case .headerCountsDisagree(let s), .countsDisagree(let s): what = "counts disagree: \(s)"
        case .badRecordCount(let n): what = "nr_records \(n) out of range (1 ... nr_pfns)"
        case .sizeDisagrees(let s): what = "sizes disagree: \(s)"
        case .decompressionBomb(let d, let l): what = "decompression bomb: decoded_size \(d) exceeds the limit \(l)"
        case .badFrames(let s): what = "frames stream: \(s)"
        case .lz4(let s): what = "LZ4 payload: \(s)"
        case .stream(let e): what = e.description
        case .digestMismatch(let e, let c): what = "map digest 0x\(String(e, radix: 16)) does not match the decoded map's 0x\(String(c, radix: 16))"
        case .sharedPages(let s): what = "shared p2m pages: \(s)"
        case .encoding(let s): return "cannot encode: \(s)"
        }
        return "rule \(rule): \(what)"
    }
}

/// A fault inside a record stream (Spec §6, rule 14). `offset` is the byte offset in the
/// decompressed stream, `record` the record's index, `index` the entry index it starts at.
public struct StreamError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Reason: Equatable, Sendable {
        case truncated
        case reservedKind(UInt8)
        case zeroLength
        case nonCanonicalLength(UInt64)
        case badVarint
        case runPastEnd(length: UInt64, remaining: UInt64)
        case endedEarly(covered: UInt64, expected: UInt64)
        case trailingBytes(Int)
        case constraint(String)
    }
    public let stream: String
    public let reason: Reason
    public let offset: Int
    public let record: UInt64
    public let index: UInt64

    public var description: String {
        let r: String
        switch reason {
        case .truncated: r = "record truncated"
        case .reservedKind(let k): r = "reserved record kind 0x\(String(k, radix: 16))"
        case .zeroLength: r = "record of length 0"
        case .nonCanonicalLength(let n): r = "long-form length \(n) < 16"
        case .badVarint: r = "overlong, non-minimal or truncated varint"
        case .runPastEnd(let l, let rem): r = "run past end: length \(l) but only \(rem) entries remain"
        case .endedEarly(let c, let e): r = "stream ended after \(c) of \(e) entries"
        case .trailingBytes(let n): r = "\(n) bytes after the last record"
        case .constraint(let s): r = s
        }
        return "\(stream) stream, record \(record) (entry \(index), byte \(offset)): \(r)"
    }
}
