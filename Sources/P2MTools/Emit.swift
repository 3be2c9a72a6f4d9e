// The emitter: reads a guest's p2m from where it really lives and builds the note.
import DumpIO
import Foundation
import P2MFormat
import Translation

public enum EmitSourceKind: String, CaseIterable, Sendable {
    case auto, linear, frameList = "frame-list", xlP2M = "xl-p2m", xlPages = "xl-pages", raw, text
}

public struct EmitOptions: Sendable {
    public var input: String
    public var from: EmitSourceKind = .auto
    public var width: EntryWidth = .eight
    public var cr3: UInt64?
    public var p2mMFN: UInt64?
    public var systemMap: String?
    public var vmlinux: String?
    public var domainID: UInt32?
    public var compare = true
    public var progress = false
    public init(input: String) { self.input = input }
}

public struct EmitSummary: Codable, Sendable {
    public var input: String
    public var source: String
    public var sourceCode: UInt8
    public var entryWidth: Int
    public var pfns: UInt64
    public var counts: [String: UInt64]
    public var records: UInt64
    public var rawBytes: UInt64
    public var noteBytes: Int
    public var ratio: Double
    public var identityKnown: Bool
    public var listVAddr: String?
    public var fllMFN: String?
    public var comparedWith: String?
    public var differences: UInt64?
    public var firstDifferences: [String]
    public var cr3: String?
}

public struct EmitResult: Sendable {
    public var note: P2MNote
    public var summary: EmitSummary
}

/// Symbols from the options and the dump's own VMCOREINFO.
/// Link-time addresses (System.map, vmlinux) move by VMCOREINFO's KERNELOFFSET under KASLR;
/// VMCOREINFO's own SYMBOL() values are already the running ones and win.
func loadSymbols(systemMap: String?, vmlinux: String?, dump: DumpFile?) throws -> SymbolTable {
    var linked = SymbolTable()
    if let m = systemMap { linked.merge(try SymbolTable.systemMap(path: m)) }
    if let v = vmlinux { linked.merge(try SymbolTable.vmlinux(path: v)) }
    var t = SymbolTable()
    if let vi = dump?.vmcoreInfo { t.merge(SymbolTable.vmcoreInfo(vi)) }
    t.merge(linked.relocated(by: dump?.vmcoreInfo?.kernelOffset ?? 0))
    return t
}

public enum Emitter {
    public static func emit(_ o: EmitOptions) throws -> EmitResult {
        switch o.from {
        case .raw: return try emitRaw(o)
        case .text: return try emitText(o)
        default: return try emitFromDump(o)
        }
    }

    static func summary(_ note: P2MNote, _ o: EmitOptions, compared: String? = nil, diffs: CompareSink? = nil, cr3: UInt64? = nil) -> EmitSummary {
        let h = note.header
        let raw = h.nrPfns * UInt64(h.entryWidth)
        let noteBytes = note.elfNoteBytes.count
        return EmitSummary(
            input: o.input, source: h.source?.description ?? "unknown", sourceCode: h.sourceCode,
            entryWidth: Int(h.entryWidth), pfns: h.nrPfns,
            counts: ["mfn": h.counts.mfn, "invalid": h.counts.invalid, "identity": h.counts.identity, "foreign": h.counts.foreign],
            records: h.nrRecords, rawBytes: raw, noteBytes: noteBytes, ratio: Double(raw) / Double(noteBytes),
            identityKnown: h.identityKnown, listVAddr: h.listVAddr == 0 ? nil : "0x" + String(h.listVAddr, radix: 16),
            fllMFN: h.fllMFN == .max ? nil : "0x" + String(h.fllMFN, radix: 16),
            comparedWith: compared, differences: diffs?.differenceCount,
            firstDifferences: diffs?.differences.map { "pfn 0x\(String($0.pfn, radix: 16)): note \(P2MEntry(raw: $0.expected)), \(compared ?? "other") \(P2MEntry(raw: $0.found))" } ?? [],
            cr3: cr3.map { "0x" + String($0, radix: 16) })
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

    static func parseNumber(_ s: Substring) -> UInt64? {
        s.hasPrefix("0x") || s.hasPrefix("0X") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s)
    }

    /// `pfn mfn` lines (hex with 0x or decimal), `#` comments; `invalid` / `identity` words.
    static func emitText(_ o: EmitOptions) throws -> EmitResult {
        guard let text = try? String(contentsOfFile: o.input, encoding: .utf8) else { throw DumpError(o.input, "cannot read the text table") }
        var pairs: [(UInt64, UInt64)] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if f.isEmpty { continue }
            guard f.count == 2, let pfn = parseNumber(f[0]) else {
                throw DumpError(o.input, "line \(i + 1): expected `PFN MFN` (or `PFN invalid|identity`), got \(raw.prefix(60))")
            }
            let v: UInt64
            switch f[1] {
            case "invalid": v = .max
            case "identity": v = pfn | P2MEntry.identityBit
            default:
                guard let m = parseNumber(f[1]) else { throw DumpError(o.input, "line \(i + 1): bad mfn \(f[1])") }
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

    static func emitFromDump(_ o: EmitOptions) throws -> EmitResult {
        let dump = try DumpFile.open(path: o.input)
        let memory = try machineMemory(of: dump)
        let symbols = try loadSymbols(systemMap: o.systemMap, vmlinux: o.vmlinux, dump: dump)
        let fll: MFN? = o.p2mMFN.map(MFN.init) ?? dump.crashInfo?.frameListListMFN
        var from = o.from
        if from == .auto {
            if dump.kind == .xenDumpCore {
                from = symbols.address("xen_p2m_addr") != nil ? .xlPages : .xlP2M
            } else if symbols.address("xen_p2m_addr") != nil {
                from = .linear
            } else if fll != nil {
                from = .frameList
            } else {
                throw DumpError(o.input, "no p2m source: no xen_p2m_addr symbol (pass --system-map or --vmlinux) and no frame-list-list root (the dump has no Xen crash-info note; pass --p2m-mfn)")
            }
        }
        let progress: ((UInt64, UInt64) -> Void)? = o.progress && isatty(2) != 0 ? { done, total in
            let pct = total == 0 ? 100 : Int(done * 100 / total)
            let bar = String(repeating: "#", count: pct / 4) + String(repeating: " ", count: 25 - pct / 4)
            FileHandle.standardError.write(Data("\rreading p2m list [\(bar)] \(pct)%".utf8))
            if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
        } : nil

        switch from {
        case .linear, .xlPages:
            let view = try GuestKernelView(dump: dump, memory: memory, symbols: symbols, cr3: o.cr3)
            let (va, size) = try view.linearList()
            let shared = try view.sharedFrames()
            let enc = P2MEncoder(width: .eight)
            let sink = EncoderSink(enc, keepFrames: true)
            try LinearListReader.read(walker: view.walker, root: view.root, vaddr: va, size: size, shared: shared, sink: sink, progress: progress)
            let meta = P2MNoteMetadata(source: from == .linear ? .linearList : .xlPagesLinear,
                                       domainID: o.domainID ?? (dump.kind == .kdumpELF ? 0 : nil),
                                       listVAddr: va, fllMFN: fll, missingPageMFN: shared.missing,
                                       identityPageMFN: shared.identity, identityKnown: shared.identityKnown)
            var note = try enc.finish(metadata: meta)
            // Cross-check against the second copy the dump holds.
            var compared: String? = nil
            var cmp: CompareSink? = nil
            if o.compare {
                let decoded = try P2MNote.decode(descriptor: note.descriptor)
                if dump.kind == .kdumpELF, let f = fll, size <= 1 << 27 {
                    let c = CompareSink(map: decoded.map, identityBlind: true)
                    try FrameTreeReader.read(memory: memory, fll: f, size: size, sink: c)
                    compared = "frame-list tree"; cmp = c
                } else if let x = memory as? XenCoreMemory {
                    let c = CompareSink(map: decoded.map, identityBlind: true)
                    try streamXenP2M(x, size: size, sink: c)
                    compared = ".xen_p2m"; cmp = c
                }
                if let c = cmp, c.differenceCount == 0 { note = note.settingInformationalFlags(P2MNoteHeader.flagCrossChecked) }
            }
            return EmitResult(note: note, summary: summary(note, o, compared: compared, diffs: cmp, cr3: view.root.rawValue))
        case .frameList:
            guard let f = fll else { throw DumpError(o.input, "no frame-list-list root: the dump has no Xen crash-info note; pass --p2m-mfn") }
            var size: UInt64 = 1 << 27
            if let view = try? GuestKernelView(dump: dump, memory: memory, symbols: symbols, cr3: o.cr3),
               let s = try? view.readU64(symbol: "xen_p2m_size"), s > 0, s <= 1 << 27 { size = s }
            let enc = P2MEncoder(width: .eight)
            try FrameTreeReader.read(memory: memory, fll: f, size: size, sink: EncoderSink(enc))
            let note = try enc.finish(metadata: P2MNoteMetadata(source: .frameListTree, domainID: o.domainID ?? 0, fllMFN: f))
            return EmitResult(note: note, summary: summary(note, o))
        case .xlP2M:
            guard let x = memory as? XenCoreMemory else { throw DumpError(o.input, "--from xl-p2m needs an xl dump-core file") }
            var size = UInt64(x.pairs.map(\.pfn).max().map { $0 + 1 } ?? 0)
            if let s = try x.sharedInfoArch(), s.maxPfn > size, s.maxPfn <= 1 << 40 { size = s.maxPfn }
            let enc = P2MEncoder(width: .eight)
            try streamXenP2M(x, size: size, sink: EncoderSink(enc))
            let note = try enc.finish(metadata: P2MNoteMetadata(source: .xlP2M, domainID: o.domainID))
            return EmitResult(note: note, summary: summary(note, o))
        default:
            throw DumpError(o.input, "--from \(from.rawValue) does not apply to a dump")
        }
    }

    /// `.xen_p2m` pairs as a table: pfns not listed are INVALID.
    static func streamXenP2M(_ x: XenCoreMemory, size: UInt64, sink: P2MSink) throws {
        let sorted = x.pairs.sorted { $0.pfn < $1.pfn }
        var next: UInt64 = 0
        var batch: [UInt64] = []
        batch.reserveCapacity(4096)
        func flush() throws { if !batch.isEmpty { try batch.withUnsafeBufferPointer { try sink.entries($0) }; batch.removeAll(keepingCapacity: true) } }
        for (pfn, mfn) in sorted where pfn < size {
            if pfn < next { throw DumpError(x.dump.path, "pfn 0x\(String(pfn, radix: 16)) appears twice in .xen_p2m") }
            if pfn > next { try flush(); try sink.invalid(pfn - next) }
            batch.append(mfn)
            if batch.count == 4096 { try flush() }
            next = pfn + 1
        }
        try flush()
        if next < size { try sink.invalid(size - next) }
    }
}
