// The 160-byte descriptor header of Spec §4, encoded and decoded field by field.

/// Where the table came from (Spec §4.2).
public enum P2MSource: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case unknown = 0, linearList = 1, frameListTree = 2, xlP2M = 3, rawTable = 4, textTable = 5, xlPagesLinear = 6, xenM2P = 7

    public var description: String {
        switch self {
        case .unknown: return "unknown"
        case .linearList: return "linear list (xen_p2m_addr via the guest page tables)"
        case .frameListTree: return "frame-list tree (pfn_to_mfn_frame_list_list)"
        case .xlP2M: return "xl dump-core .xen_p2m"
        case .rawTable: return "raw table"
        case .textTable: return "text table"
        case .xlPagesLinear: return "linear list in xl dump-core .xen_pages"
        case .xenM2P: return "Xen's frame table and M2P (a host dump)"
        }
    }
}

public struct P2MNoteHeader: Hashable, Sendable {
    public static let magic: [UInt8] = Array("p2mnote".utf8) + [0]
    public static let size = 160
    public static let flagFrames: UInt32 = 1 << 0
    public static let flagIdentityKnown: UInt32 = 1 << 16
    public static let flagCrossChecked: UInt32 = 1 << 17
    public static let mustUnderstandMask: UInt32 = 0xFFFF
    public static let knownMustUnderstand: UInt32 = flagFrames

    public var versionMajor: UInt16 = 1
    public var versionMinor: UInt16 = 0
    public var headerSize: UInt32 = 160
    public var flags: UInt32 = 0
    public var pageShift: UInt8 = 12
    public var entryWidth: UInt8 = 8
    public var sourceCode: UInt8 = 0
    public var reserved0: UInt8 = 0
    public var domainID: UInt32 = .max
    public var reserved1: UInt32 = 0
    public var nrPfns: UInt64 = 0
    public var counts = EntryCounts()
    public var nrRecords: UInt64 = 0
    public var encodedSize: UInt64 = 0
    public var decodedSize: UInt64 = 0
    public var mapStreamSize: UInt64 = 0
    public var mapDigest: UInt64 = 0
    public var listVAddr: UInt64 = 0
    public var fllMFN: UInt64 = .max
    public var missingPageMFN: UInt64 = .max
    public var identityPageMFN: UInt64 = .max
    public var nrListFrames: UInt64 = 0
    public var headerChecksum: UInt64 = 0

    public init() {}

    public var source: P2MSource? { P2MSource(rawValue: sourceCode) }
    public var width: EntryWidth? { EntryWidth(rawValue: entryWidth) }
    public var hasFrames: Bool { flags & P2MNoteHeader.flagFrames != 0 }
    public var identityKnown: Bool { flags & P2MNoteHeader.flagIdentityKnown != 0 }
    public var crossChecked: Bool { flags & P2MNoteHeader.flagCrossChecked != 0 }

    /// The 160 bytes, with the checksum computed over them (field at 0x98 as zero).
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 160)
        w.bytes += P2MNoteHeader.magic
        w.le(UInt64(versionMajor), 2); w.le(UInt64(versionMinor), 2)
        w.le(UInt64(headerSize), 4); w.le(UInt64(flags), 4)
        w.u8(pageShift); w.u8(entryWidth); w.u8(sourceCode); w.u8(reserved0)
        w.le(UInt64(domainID), 4); w.le(UInt64(reserved1), 4)
        for v in [nrPfns, counts.mfn, counts.invalid, counts.identity, counts.foreign, nrRecords,
                  encodedSize, decodedSize, mapStreamSize, mapDigest, listVAddr, fllMFN,
                  missingPageMFN, identityPageMFN, nrListFrames, 0] {
            w.le(v, 8)
        }
        let sum = XXH64.hash(w.bytes)
        w.bytes.removeLast(8)
        w.le(sum, 8)
        return w.bytes
    }

    /// Parse and check the header (rules 2–7 and the checksum); size relations with the
    /// descriptor are checked by the note decoder.
    static func parse(_ d: UnsafeRawBufferPointer) throws -> P2MNoteHeader {
        guard d.count >= 160 else { throw P2MFormatError.badNote("descriptor of \(d.count) bytes is shorter than the 160-byte header") }
        guard Array(d[0..<8]) == magic else { throw P2MFormatError.badMagic }
        var h = P2MNoteHeader()
        h.versionMajor = UInt16(loadLE(d, 0x08, 2))
        h.versionMinor = UInt16(loadLE(d, 0x0A, 2))
        guard h.versionMajor == 1 else { throw P2MFormatError.unsupportedVersion(major: h.versionMajor, minor: h.versionMinor) }
        h.headerSize = UInt32(loadLE(d, 0x0C, 4))
        guard h.headerSize >= 160, h.headerSize <= 4096, Int(h.headerSize) <= d.count else {
            throw P2MFormatError.badHeaderSize(h.headerSize, descSize: d.count)
        }
        h.flags = UInt32(loadLE(d, 0x10, 4))
        h.pageShift = d[0x14]; h.entryWidth = d[0x15]; h.sourceCode = d[0x16]; h.reserved0 = d[0x17]
        h.domainID = UInt32(loadLE(d, 0x18, 4)); h.reserved1 = UInt32(loadLE(d, 0x1C, 4))
        h.nrPfns = loadLE(d, 0x20, 8)
        h.counts = EntryCounts(mfn: loadLE(d, 0x28, 8), invalid: loadLE(d, 0x30, 8),
                               identity: loadLE(d, 0x38, 8), foreign: loadLE(d, 0x40, 8))
        h.nrRecords = loadLE(d, 0x48, 8)
        h.encodedSize = loadLE(d, 0x50, 8)
        h.decodedSize = loadLE(d, 0x58, 8)
        h.mapStreamSize = loadLE(d, 0x60, 8)
        h.mapDigest = loadLE(d, 0x68, 8)
        h.listVAddr = loadLE(d, 0x70, 8)
        h.fllMFN = loadLE(d, 0x78, 8)
        h.missingPageMFN = loadLE(d, 0x80, 8)
        h.identityPageMFN = loadLE(d, 0x88, 8)
        h.nrListFrames = loadLE(d, 0x90, 8)
        h.headerChecksum = loadLE(d, 0x98, 8)
        // Rule 4: checksum over the whole header_size with the field as zero.
        var hasher = XXH64()
        hasher.update(UnsafeRawBufferPointer(rebasing: d[0..<0x98]))
        hasher.update([UInt8](repeating: 0, count: 8))
        hasher.update(UnsafeRawBufferPointer(rebasing: d[0xA0..<Int(h.headerSize)]))
        let sum = hasher.finalize()
        guard sum == h.headerChecksum else { throw P2MFormatError.headerChecksum(expected: h.headerChecksum, computed: sum) }
        // Rule 5
        let unknown = h.flags & P2MNoteHeader.mustUnderstandMask & ~P2MNoteHeader.knownMustUnderstand
        guard unknown == 0 else { throw P2MFormatError.unknownFlags(unknown) }
        guard h.reserved0 == 0 else { throw P2MFormatError.reservedNonZero("reserved0") }
        guard h.reserved1 == 0 else { throw P2MFormatError.reservedNonZero("reserved1") }
        // Rule 6
        guard h.pageShift == 12 else { throw P2MFormatError.badGeometry("page_shift \(h.pageShift), expected 12") }
        guard let width = h.width else { throw P2MFormatError.badGeometry("entry_width \(h.entryWidth), expected 4 or 8") }
        // Rule 7
        guard h.nrPfns >= 1, h.nrPfns <= 1 << 40, width == .eight || h.nrPfns <= 1 << 30 else {
            throw P2MFormatError.badPfnCount(h.nrPfns)
        }
        // Rule 8
        let c = h.counts
        let (s1, o1) = c.mfn.addingReportingOverflow(c.invalid)
        let (s2, o2) = s1.addingReportingOverflow(c.identity)
        let (s3, o3) = s2.addingReportingOverflow(c.foreign)
        guard !o1, !o2, !o3, s3 == h.nrPfns else {
            throw P2MFormatError.headerCountsDisagree("header counts (\(c)) do not add up to nr_pfns \(h.nrPfns)")
        }
        // Rule 9
        guard h.nrRecords >= 1, h.nrRecords <= h.nrPfns else { throw P2MFormatError.badRecordCount(h.nrRecords) }
        return h
    }
}
