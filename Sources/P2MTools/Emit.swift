// The emitter: reads a guest's p2m from where it really lives and builds the note.
import DumpIO
import Foundation
import GuestReader
import P2MFormat
import Translation

public enum EmitSourceKind: String, CaseIterable, Sendable {
    case auto, linear, frameList = "frame-list", xlP2M = "xl-p2m", xlPages = "xl-pages", raw, text
}

public struct EmitOptions: Sendable {
    public var input: String
    public var from: EmitSourceKind = .auto
    public var width: EntryWidth = .eight
    /// The guest (a host dump's domain), its symbols and the tables to use.
    public var guest = GuestSelection()
    /// The domain id the note records (--domid; default: the guest's).
    public var domainID: UInt32?
    public var compare = true
    public var progress = false
    public init(input: String) { self.input = input }
}

/// What p2m-emit made (Spec/json.md, "emit").
public struct EmitSummary: Codable, Sendable {
    public var dump: String
    public var output: String?
    public var source: String
    public var sourceCode: UInt8
    public var location: String?
    public var entryWidth: Int
    public var pfns: UInt64
    public var counts: CountsJSON
    public var records: UInt64
    public var rawBytes: UInt64
    public var noteBytes: Int
    public var ratio: Double
    public var identityKnown: Bool
    public var mapDigest: Hex64
    public var listVaddr: KVAddr?
    public var fllMfn: MFN?
    public var missingPageMfn: MFN?
    public var identityPageMfn: MFN?
    public var cr3: MachAddr?
    public var crossCheck: CrossCheckReport?
    /// List pages the dump does not hold (excluded by makedumpfile's dump level, or outside every
    /// segment): their pfns are unknown and the note records them as INVALID. Empty: a whole map.
    public var listPagesNotInDump: [ListPageNotInDump] = []
    public var unknownPfns: UInt64 = 0
    /// More trusted sources that failed to read, before the one used.
    public var fallbacks: [UnavailableSource] = []
    /// How the source used is incomplete (besides list pages), said loudly.
    public var incomplete: [String] = []

    /// The loud line a partial map gets on stderr (nil: the map is whole).
    public var partialWarning: String? {
        guard !listPagesNotInDump.isEmpty else { return nil }
        let shown = listPagesNotInDump.prefix(4).map { "list page \($0.page) (pfns \($0.firstPfn)+\($0.pfns), mfn \($0.mfn))" }
        return "warning: PARTIAL MAP: \(listPagesNotInDump.count) page(s) of the p2m list are not in the dump (\(listPagesNotInDump[0].reason)): "
            + shown.joined(separator: ", ") + (listPagesNotInDump.count > 4 ? ", ..." : "")
            + "; their \(unknownPfns) pfns are unknown and recorded as INVALID in the note"
    }
}

public struct EmitResult: Sendable {
    public var note: P2MNote
    public var summary: EmitSummary
}

func loadSymbols(systemMap: String?, vmlinux: String?, dump: DumpContainer?) throws -> SymbolTable {
    try SymbolTable.forDump(systemMap: systemMap, vmlinux: vmlinux, dump: dump)
}

public enum Emitter {
    public static func emit(_ o: EmitOptions) throws -> EmitResult {
        switch o.from {
        case .raw: return try emitRaw(o)
        case .text: return try emitText(o)
        default: return try emitFromDump(o)
        }
    }

    static func summary(_ note: P2MNote, _ o: EmitOptions, location: String? = nil, check: CrossCheckReport? = nil, cr3: UInt64? = nil) -> EmitSummary {
        let h = note.header
        let raw = h.nrPfns * UInt64(h.entryWidth)
        let noteBytes = note.elfNoteBytes.count
        return EmitSummary(
            dump: o.input, output: nil, source: h.source?.description ?? "unknown", sourceCode: h.sourceCode, location: location,
            entryWidth: Int(h.entryWidth), pfns: h.nrPfns, counts: CountsJSON(h.counts),
            records: h.nrRecords, rawBytes: raw, noteBytes: noteBytes, ratio: Double(raw) / Double(noteBytes),
            identityKnown: h.identityKnown, mapDigest: Hex64(h.mapDigest),
            listVaddr: h.listVAddr == 0 ? nil : KVAddr(rawValue: h.listVAddr),
            fllMfn: h.fllMFN == .max ? nil : MFN(rawValue: h.fllMFN),
            missingPageMfn: h.missingPageMFN == .max ? nil : MFN(rawValue: h.missingPageMFN),
            identityPageMfn: h.identityPageMFN == .max ? nil : MFN(rawValue: h.identityPageMFN),
            cr3: cr3.map(MachAddr.init(rawValue:)), crossCheck: check)
    }

    // MARK: raw and text tables

    static func emitRaw(_ o: EmitOptions) throws -> EmitResult {
        guard let fh = FileHandle(forReadingAtPath: o.input) else { throw DumpError(o.input, "cannot open the raw table") }
        defer { try? fh.close() }
        let enc = P2MEncoder(width: o.width)
        var offset: UInt64 = 0
        while true {
            let chunk = fh.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            guard chunk.count % o.width.bytes == 0 || chunk.count < 1 << 20 else { throw DumpError(o.input, offset: offset, "short read") }
            guard chunk.count % o.width.bytes == 0 else {
                throw DumpError(o.input, offset: offset + UInt64(chunk.count), "the raw table ends with a partial \(o.width.bytes)-byte entry (truncated file?)")
            }
            try chunk.withUnsafeBytes { try enc.append(stored: $0) }
            offset += UInt64(chunk.count)
        }
        guard offset > 0 else { throw DumpError(o.input, "the raw table is empty") }
        let note = try enc.finish(metadata: P2MNoteMetadata(source: .rawTable, domainID: o.domainID))
        return EmitResult(note: note, summary: summary(note, o))
    }


    /// `pfn mfn` lines, both hex with or without 0x (as crash reads numbers, and as every other
    /// pfn and mfn of these tools), `#` comments; `invalid` / `identity` words.
    static func emitText(_ o: EmitOptions) throws -> EmitResult {
        guard let text = try? String(contentsOfFile: o.input, encoding: .utf8) else { throw DumpError(o.input, "cannot read the text table") }
        var pairs: [(UInt64, UInt64)] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if f.isEmpty { continue }
            guard f.count == 2, let pfn = parseHexArg(String(f[0])) else {
                throw DumpError(o.input, "line \(i + 1): expected `PFN MFN` (or `PFN invalid|identity`), got \(raw.prefix(60))")
            }
            let v: UInt64
            switch f[1] {
            case "invalid": v = .max
            case "identity": v = pfn | P2MEntry.identityBit
            default:
                guard let m = parseHexArg(String(f[1])) else { throw DumpError(o.input, "line \(i + 1): bad mfn \(f[1]) (hex)") }
                v = m
            }
            guard pfn < 1 << 40 else { throw DumpError(o.input, "line \(i + 1): pfn 0x\(String(pfn, radix: 16)) out of range") }
            pairs.append((pfn, v))
        }
        guard !pairs.isEmpty else { throw DumpError(o.input, "no entries") }
        pairs.sort { $0.0 < $1.0 }
        let enc = P2MEncoder(width: o.width)
        var next: UInt64 = 0
        for (i, (pfn, v)) in pairs.enumerated() {
            if i > 0 && pairs[i - 1].0 == pfn { throw DumpError(o.input, "pfn 0x\(String(pfn, radix: 16)) listed twice") }
            if pfn > next { try enc.appendInvalid(count: pfn - next) }
            try enc.append(entries: [v])
            next = pfn + 1
        }
        let note = try enc.finish(metadata: P2MNoteMetadata(source: .textTable, domainID: o.domainID))
        return EmitResult(note: note, summary: summary(note, o))
    }

    // MARK: dumps

    /// The source a note is made from: --from, else the linear list where the kernel's symbols
    /// are known (it alone tells identity pages), else the frame tree, else .xen_p2m.
    static func primarySource(_ from: EmitSourceKind, _ r: P2MResolver, input: String) throws -> P2MTableSource {
        func need<T>(_ s: T?, _ name: P2MSourceName) throws -> T {
            guard let v = s else {
                let why = r.unavailable.first { $0.source == name }?.reason ?? "not available in this dump"
                throw DumpError(input, "--from \(from.rawValue): \(why)")
            }
            return v
        }
        switch from {
        case .linear, .xlPages: return try need(r.linearList(), .linearList)
        case .frameList: return try need(r.frameTree(), .frameTree)
        case .xlP2M: return try need(r.xenP2M(), .xenP2M)
        case .auto:
            if let s = r.dumpSources().first { return s }
            throw DumpError(input, "no p2m source: " + r.unavailable.map { "\($0.source): \($0.reason)" }.joined(separator: "; "))
        case .raw, .text: throw DumpError(input, "--from \(from.rawValue) does not apply to a dump")
        }
    }

    /// One note per PV guest of a host dump, every map rebuilt from Xen's tables in one pass
    /// and each checked against the guest's own copies. The System.map, if given, is used for
    /// every guest (the same kernel), else each guest's shared_info tells where its list is.
    public static func emitAllDomains(_ o: EmitOptions, dump given: DumpContainer? = nil) throws -> [EmitResult] {
        let dump = try given ?? openDump(path: o.input)
        let host = try XenHost.open(dump: dump, xenSyms: o.guest.xenSyms)
        let guests = try host.domains().filter { !$0.system && $0.looksPV }
        guard !guests.isEmpty else { throw DumpError(o.input, "Xen's domain list holds no PV guest") }
        let m2ps = try XenM2PSource.rebuild(host: host, domains: guests)
        return try zip(guests, m2ps).map { g, m in
            var e = o; e.guest.domain = g.id
            return try emitFromDump(e, dump: dump, preset: m)
        }
    }

    static func emitFromDump(_ o: EmitOptions, dump given: DumpContainer? = nil, preset: XenM2PSource? = nil) throws -> EmitResult {
        let dump = try given ?? openDump(path: o.input)
        let symbols = try loadSymbols(systemMap: o.guest.systemMap, vmlinux: o.guest.vmlinux, dump: dump)
        let ro = o.guest
        let resolver = P2MResolver(dump: dump, symbols: symbols, options: ro)
        if let p = preset { resolver.preset(m2p: p) }
        if o.guest.domain != nil { _ = try resolver.domain() }   // an unknown domain is an error, not "no source"
        let progress: ((UInt64, UInt64) -> Void)? = o.progress && isatty(2) != 0 ? { done, total in
            let pct = total == 0 ? 100 : Int(done * 100 / total)
            let bar = String(repeating: "#", count: pct / 4) + String(repeating: " ", count: 25 - pct / 4)
            FileHandle.standardError.write(Data("\rreading p2m list [\(bar)] \(pct)%".utf8))
            if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
        } : nil
        // --from auto: the most trusted source that can be read to the end; one that fails
        // half-way (its pages filtered out of the dump) gives way to the next, and is said.
        let candidates = o.from == .auto ? resolver.dumpSources() : [try primarySource(o.from, resolver, input: o.input)]
        if candidates.isEmpty { _ = try primarySource(o.from, resolver, input: o.input) }
        var fallbacks: [UnavailableSource] = []
        var made: (note: P2MNote, source: P2MTableSource, cr3: UInt64?)? = nil
        for (i, source) in candidates.enumerated() where made == nil {
            let enc = P2MEncoder(width: .eight)
            var meta = P2MNoteMetadata(source: source.sourceCode, domainID: o.domainID ?? o.guest.domain.map(UInt32.init) ?? (dump.kind == .xenDumpCore ? nil : 0),
                                       fllMFN: resolver.frameListRoot?.mfn)
            var cr3: UInt64? = nil
            if let l = source as? LinearListSource {
                meta.listVAddr = l.vaddr
                meta.missingPageMFN = l.shared.missing
                meta.identityPageMFN = l.shared.identity
                meta.identityKnown = l.shared.identityKnown
                cr3 = l.kernel.root.rawValue
            }
            do {
                try source.stream(into: EncoderSink(enc, keepFrames: source is LinearListSource), progress: progress)
                made = (try enc.finish(metadata: meta), source, cr3)
            } catch let e where i + 1 < candidates.count && (e as? TranslationError)?.kind != .interrupted {
                fallbacks.append(UnavailableSource(source: source.name, reason: "\(e)"))
            }
        }
        guard let (firstNote, source, cr3) = made else { throw DumpError(o.input, "no p2m source could be read") }
        // Symbols were given for the linear list, yet it was not even a candidate: say why.
        if o.from == .auto, o.guest.systemMap != nil || o.guest.vmlinux != nil, !(source is LinearListSource),
           let why = resolver.unavailable.first(where: { $0.source == .linearList }), !fallbacks.contains(where: { $0.source == .linearList }) {
            fallbacks.insert(why, at: 0)
        }
        var note = firstNote
        var check: CrossCheckReport? = nil
        let notInDump = source.pagesNotInDump
        if o.compare {
            let decoded = try P2MNote.decode(descriptor: note.descriptor)
            let c = resolver.crossCheck(decoded.map, identityKnown: decoded.header.identityKnown, skip: source.name)
            if c.compared && c.agrees { note = note.settingInformationalFlags(P2MNoteHeader.flagCrossChecked) }
            check = c
        }
        var sum = summary(note, o, location: source.location, check: check, cr3: cr3)
        sum.listPagesNotInDump = notInDump
        sum.fallbacks = fallbacks
        sum.incomplete = source.incomplete
        sum.unknownPfns = notInDump.reduce(0) { $0 + $1.pfns }
        return EmitResult(note: note, summary: sum)
    }
}
