// Building and reading a complete p2mnote note (Spec §2, §4, §5, §8).

/// What a producer knows besides the table itself (header fields of Spec §4).
public struct P2MNoteMetadata: Sendable {
    public var source: P2MSource
    public var domainID: UInt32?
    public var listVAddr: KVAddr?
    public var fllMFN: MFN?
    public var missingPageMFN: MFN?
    public var identityPageMFN: MFN?
    public var identityKnown: Bool
    public var crossChecked: Bool

    public init(source: P2MSource, domainID: UInt32? = nil, listVAddr: KVAddr? = nil, fllMFN: MFN? = nil,
                missingPageMFN: MFN? = nil, identityPageMFN: MFN? = nil,
                identityKnown: Bool = false, crossChecked: Bool = false) {
        self.source = source; self.domainID = domainID; self.listVAddr = listVAddr; self.fllMFN = fllMFN
        self.missingPageMFN = missingPageMFN; self.identityPageMFN = identityPageMFN
        self.identityKnown = identityKnown; self.crossChecked = crossChecked
    }
}

/// Limits a decoder applies before allocating (rule 11).
public struct DecodeLimits: Sendable {
    public var maxDecodedSize: UInt64
    public init(maxDecodedSize: UInt64 = 1 << 32) { self.maxDecodedSize = maxDecodedSize }
    public static let `default` = DecodeLimits()
}

/// Streaming producer of a note: feed the guest's table in pfn order, then `finish`.
public final class P2MEncoder {
    public let width: EntryWidth
    private let stream: StreamEncoder
    private var frames: StreamEncoder?

    public init(width: EntryWidth) {
        self.width = width
        self.stream = StreamEncoder(role: .map(width))
    }

    /// Entries fed so far (= the next pfn).
    public var count: UInt64 { stream.count }

    public func append(entries: UnsafeBufferPointer<UInt64>) throws { try stream.append(entries: entries) }
    public func append(entries: [UInt64]) throws { try stream.append(entries) }
    public func append(stored: UnsafeRawBufferPointer) throws { try stream.append(stored: stored) }
    public func appendInvalid(count: UInt64) throws { try stream.appendInvalid(count: count) }
    public func appendIdentity(count: UInt64) throws { try stream.appendIdentity(count: count) }

    /// Frames stream (Spec §5): the MFN backing each page of the guest's linear list, in order
    /// (nil = not mapped). May be fed incrementally.
    public func appendListFrames(_ mfns: [MFN?]) throws {
        if frames == nil { frames = StreamEncoder(role: .frames) }
        try frames?.append(mfns.map { $0?.rawValue ?? .max })
    }
    public func appendListFrames(repeating mfn: MFN?, count: UInt64) throws {
        if frames == nil { frames = StreamEncoder(role: .frames) }
        guard count > 0 else { return }
        if var v = mfn?.rawValue {
            // A constant run: the entry repeated, fed from one value (no array per call).
            for _ in 0..<count { try withUnsafePointer(to: &v) { try frames?.append(entries: UnsafeBufferPointer(start: $0, count: 1)) } }
        } else {
            try frames?.appendInvalid(count: count)
        }
    }

    public func finish(metadata: P2MNoteMetadata, listFrames: [MFN?]? = nil) throws -> P2MNote {
        if let lf = listFrames { try appendListFrames(lf) }
        let mapBytes = stream.finish()
        var digester = stream.digester
        let digest = digester.finish()
        let nrPfns = stream.count
        guard nrPfns >= 1 else { throw P2MFormatError.encoding("empty table") }
        guard nrPfns <= 1 << 40, width == .eight || nrPfns <= 1 << 30 else {
            throw P2MFormatError.encoding("\(nrPfns) pfns exceed the format's range")
        }
        var payload = mapBytes
        var h = P2MNoteHeader()
        h.entryWidth = width.rawValue
        h.sourceCode = metadata.source.rawValue
        // A note says the lowest version that describes it: source 7 is new in 1.1 (§10).
        if metadata.source == .xenM2P { h.versionMinor = 1 }
        h.domainID = metadata.domainID ?? .max
        h.nrPfns = nrPfns
        h.counts = digester.counts
        h.nrRecords = stream.nrRecords
        h.mapStreamSize = UInt64(mapBytes.count)
        h.mapDigest = digest
        h.listVAddr = metadata.listVAddr?.rawValue ?? 0
        h.fllMFN = metadata.fllMFN?.rawValue ?? .max
        h.missingPageMFN = metadata.missingPageMFN?.rawValue ?? .max
        h.identityPageMFN = metadata.identityPageMFN?.rawValue ?? .max
        if metadata.identityKnown { h.flags |= P2MNoteHeader.flagIdentityKnown }
        if metadata.crossChecked { h.flags |= P2MNoteHeader.flagCrossChecked }
        if let f = frames {
            let expected = PageGeometry.x86.pages(nrPfns * UInt64(width.bytes))
            guard f.count == expected else {
                throw P2MFormatError.encoding("frames stream has \(f.count) entries, the list has \(expected) pages")
            }
            payload += f.finish()
            h.flags |= P2MNoteHeader.flagFrames
            h.nrListFrames = f.count
        }
        h.decodedSize = UInt64(payload.count)
        let frame = try LZ4Frame.compress(payload)
        h.encodedSize = UInt64(frame.count)
        return P2MNote(descriptor: h.encoded() + frame, header: h)
    }
}

/// A complete note descriptor (header + LZ4 frame) and its parsed header.
public struct P2MNote: Sendable {
    public static let ownerName = "P2MNOTE-PV"
    public static let noteType: UInt32 = 0x5032_4D4E

    public let descriptor: [UInt8]
    public let header: P2MNoteHeader

    init(descriptor: [UInt8], header: P2MNoteHeader) {
        self.descriptor = descriptor
        self.header = header
    }

    /// The same note with informational flags (bits 16–31) set; the payload is unchanged.
    public func settingInformationalFlags(_ f: UInt32) -> P2MNote {
        var h = header
        h.flags |= f & ~P2MNoteHeader.mustUnderstandMask
        return P2MNote(descriptor: h.encoded() + descriptor[Int(header.headerSize)...], header: h)
    }

    /// The whole ELF note as it sits in a dump: Elf64_Nhdr (namesz, descsz, type), the name
    /// padded to 4 bytes, the descriptor padded to 4 bytes.
    public var elfNoteBytes: [UInt8] { P2MNote.elfNote(descriptor: descriptor) }

    public static func elfNote(descriptor: [UInt8]) -> [UInt8] {
        var w = ByteWriter(capacity: 24 + descriptor.count + 3)
        let name = Array(ownerName.utf8) + [0]
        w.le(UInt64(name.count), 4)
        w.le(UInt64(descriptor.count), 4)
        w.le(UInt64(noteType), 4)
        w.bytes += name
        while w.bytes.count % 4 != 0 { w.u8(0) }
        w.bytes += descriptor
        while w.bytes.count % 4 != 0 { w.u8(0) }
        return w.bytes
    }

    /// The domain id a note's header records (0xFFFFFFFF: not recorded, or no readable header),
    /// without decoding the map: containers use it to tell one domain's note from another's.
    public static func domainID(ofElfNoteDescriptor d: [UInt8]) -> UInt32 {
        guard d.count >= 0x1C, Array(d[0..<8]) == P2MNoteHeader.magic else { return .max }
        return UInt32(d[0x18]) | UInt32(d[0x19]) << 8 | UInt32(d[0x1A]) << 16 | UInt32(d[0x1B]) << 24
    }

    /// Parse a buffer holding exactly one complete ELF note (4-byte padded) and return its
    /// descriptor after checking name and type (rule 1).
    public static func descriptor(fromElfNote b: [UInt8]) throws -> [UInt8] {
        try b.withUnsafeBytes { r in
            guard r.count >= 12 else { throw P2MFormatError.badNote("\(r.count) bytes cannot hold a note header") }
            let namesz = loadLE(r, 0, 4), descsz = loadLE(r, 4, 4), type = UInt32(loadLE(r, 8, 4))
            let nameEnd = 12 + Int((namesz + 3) & ~3)
            guard namesz == 11, r.count >= nameEnd,
                  Array(r[12..<23]) == Array(ownerName.utf8) + [0] else {
                throw P2MFormatError.badNote("owner name is not \"\(ownerName)\" (namesz 11)")
            }
            guard type == noteType else { throw P2MFormatError.badNote("type 0x\(String(type, radix: 16)), expected 0x50324d4e") }
            guard descsz <= UInt64(r.count - nameEnd) else {
                throw P2MFormatError.badNote("descsz \(descsz) runs past the \(r.count)-byte buffer")
            }
            return Array(r[nameEnd..<nameEnd + Int(descsz)])
        }
    }

    /// Decode and check a descriptor completely: every rule of Spec §8, in numeric order, the
    /// first that fails thrown.
    public static func decode(descriptor: [UInt8], limits: DecodeLimits = .default,
                              keepRecords: Bool = false) throws -> DecodedP2MNote {
        try descriptor.withUnsafeBytes { try decode(descriptor: $0, limits: limits, keepRecords: keepRecords) }
    }

    public static func decode(descriptor d: UnsafeRawBufferPointer, limits: DecodeLimits = .default,
                              keepRecords: Bool = false) throws -> DecodedP2MNote {
        let h = try P2MNoteHeader.parse(d)
        guard let width = h.width else { throw P2MFormatError.badGeometry("entry_width") }
        // Rule 10
        guard h.encodedSize == UInt64(d.count) - UInt64(h.headerSize) else {
            throw P2MFormatError.sizeDisagrees("encoded_size \(h.encodedSize) ≠ descsz \(d.count) − header_size \(h.headerSize)")
        }
        // Rule 11
        guard h.mapStreamSize <= h.decodedSize else {
            throw P2MFormatError.sizeDisagrees("map_stream_size \(h.mapStreamSize) > decoded_size \(h.decodedSize)")
        }
        // 11 bytes per entry is the most a valid stream takes (a one-entry record with a 10-byte
        // svar). Exact arithmetic: a bound past 2^64 is no bound on a 64-bit decoded_size.
        let (entries, o1) = h.nrPfns.addingReportingOverflow(h.nrListFrames)
        let (bound, o2) = entries.multipliedReportingOverflow(by: 11)
        guard o1 || o2 || h.decodedSize <= bound else {
            throw P2MFormatError.decompressionBomb(declared: h.decodedSize, limit: bound)
        }
        guard h.decodedSize <= limits.maxDecodedSize, h.decodedSize <= UInt64(Int.max) else {
            throw P2MFormatError.decompressionBomb(declared: h.decodedSize, limit: limits.maxDecodedSize)
        }
        // Rule 12
        if h.hasFrames {
            let expected = PageGeometry.x86.pages(h.nrPfns * UInt64(width.bytes))
            guard h.nrListFrames == expected, h.mapStreamSize < h.decodedSize else {
                throw P2MFormatError.sizeDisagrees("FRAMES: nr_list_frames \(h.nrListFrames) (expected \(expected)) or stream sizes \(h.mapStreamSize)/\(h.decodedSize) inconsistent")
            }
        } else {
            guard h.nrListFrames == 0, h.mapStreamSize == h.decodedSize else {
                throw P2MFormatError.sizeDisagrees("FRAMES clear but nr_list_frames \(h.nrListFrames) or stream sizes \(h.mapStreamSize)/\(h.decodedSize) imply a frames stream")
            }
        }
        // Rule 13
        let payload = try LZ4Frame.decompress(UnsafeRawBufferPointer(rebasing: d[Int(h.headerSize)...]),
                                              expected: Int(h.decodedSize))
        // Rules are checked in numeric order (§8): rule 14 for both streams, then 15, then 16.
        return try payload.withUnsafeBytes { p in
            // Rule 14, map stream
            let mapPart = UnsafeRawBufferPointer(rebasing: p[0..<Int(h.mapStreamSize)])
            var digester = MapDigester()
            var builder = P2MMap.Builder(nrPfns: h.nrPfns, width: width)
            var records: [DecodedRecord] = []
            var lits: [UInt64] = []
            let n = try decodeStream(mapPart, role: .map(width), entries: h.nrPfns, digester: &digester,
                                     literals: &lits) { rec in
                builder.add(rec)
                if keepRecords { records.append(rec) }
            }
            builder.literals = lits
            // Rule 14, frames stream
            var frames: P2MMap? = nil
            var frameRecords: [DecodedRecord] = []
            if h.hasFrames {
                let fpart = UnsafeRawBufferPointer(rebasing: p[Int(h.mapStreamSize)...])
                var fd = MapDigester()
                var fb = P2MMap.Builder(nrPfns: h.nrListFrames, width: .eight)
                var flits: [UInt64] = []
                _ = try decodeStream(fpart, role: .frames, entries: h.nrListFrames, digester: &fd,
                                     literals: &flits) { rec in
                    fb.add(rec)
                    if keepRecords { frameRecords.append(rec) }
                }
                fb.literals = flits
                frames = fb.build()
            }
            // Rule 15
            guard n == h.nrRecords else {
                throw P2MFormatError.countsDisagree("the map stream has \(n) records, the header says \(h.nrRecords)")
            }
            let digest = digester.finish()
            guard digester.counts == h.counts else {
                throw P2MFormatError.countsDisagree("the map stream's counts per entry kind (\(digester.counts)) ≠ the header's (\(h.counts))")
            }
            guard digest == h.mapDigest else { throw P2MFormatError.digestMismatch(expected: h.mapDigest, computed: digest) }
            // Rule 16
            let map = builder.build()
            try checkSharedPages(h, width: width, map: map, frames: frames)
            return DecodedP2MNote(header: h, map: map, listFrames: frames,
                                  records: records, frameRecords: frameRecords)
        }
    }

    /// Rule 16 (Spec §5.1): the shared p2m_missing and p2m_identity pages are two distinct pages;
    /// a list page backed by one of them says what that page says — INVALID, or IDENTITY of its
    /// own pfn — for each of its pfns below nr_pfns. Costs O(frame segments + constrained map
    /// segments), never O(pfns).
    static func checkSharedPages(_ h: P2MNoteHeader, width: EntryWidth, map: P2MMap, frames: P2MMap?) throws {
        let missing = h.missingPageMFN, identity = h.identityPageMFN
        if missing != .max && identity != .max && missing == identity {
            throw P2MFormatError.sharedPages("missing_page_mfn = identity_page_mfn = 0x\(String(missing, radix: 16))")
        }
        guard let frames else { return }
        let perPage = UInt64(4096 / width.bytes)
        func checkPages(_ page: UInt64, _ count: UInt64, mustBeInvalid: Bool) throws {
            let lo = page * perPage, hi = min((page + count) * perPage, h.nrPfns)   // last page partial
            guard lo < hi else { return }
            try map.forEachSegment(from: lo, count: hi - lo) { p, len, first, step, lits in
                func fault(_ pfn: UInt64) -> P2MFormatError {
                    .sharedPages("pfn \(pfn) is in list page \(pfn / perPage), backed by the shared "
                                 + (mustBeInvalid ? "missing page, but is not INVALID" : "identity page, but is not IDENTITY of its own pfn"))
                }
                if let lits {
                    for (i, v) in lits.enumerated() {
                        let pfn = p + UInt64(i)
                        if v != (mustBeInvalid ? .max : pfn | P2MEntry.identityBit) { throw fault(pfn) }
                    }
                } else if mustBeInvalid {
                    guard first == .max, len == 1 || step == 0 else { throw fault(p) }
                } else {
                    guard first == p | P2MEntry.identityBit, len == 1 || step == 1 else { throw fault(p) }
                }
            }
        }
        try frames.forEachSegment(from: 0, count: frames.nrPfns) { start, length, first, step, lits in
            for (target, mustBeInvalid) in [(missing, true), (identity, false)] where target != .max {
                if let lits {
                    for (i, v) in lits.enumerated() where v == target { try checkPages(start + UInt64(i), 1, mustBeInvalid: mustBeInvalid) }
                } else if step == 0 {
                    if first == target { try checkPages(start, length, mustBeInvalid: mustBeInvalid) }
                } else if step == 1 {
                    if target >= first && target - first < length { try checkPages(start + (target - first), 1, mustBeInvalid: mustBeInvalid) }
                } else if target <= first && first - target < length {
                    try checkPages(start + (first - target), 1, mustBeInvalid: mustBeInvalid)
                }
            }
        }
    }
}

/// A fully checked note.
public struct DecodedP2MNote: Sendable {
    public let header: P2MNoteHeader
    public let map: P2MMap
    /// Frames stream: list page index → MFN (as P2M entries; INVALID = unmapped).
    public let listFrames: P2MMap?
    /// Records, when decoded with `keepRecords`.
    public let records: [DecodedRecord]
    public let frameRecords: [DecodedRecord]
}
