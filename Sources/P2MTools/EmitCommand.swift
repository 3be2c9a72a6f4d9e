import ArgumentParser
import DumpIO
import Foundation
import GuestReader
import P2MFormat
import Translation

public struct EmitCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "p2m-emit",
        abstract: "Read a Xen PV guest's p2m from a dump or a table and write it as a p2mnote ELF note.",
        discussion: reflow("""
        DUMP is a dom0 kdump vmcore (ELF, kdump-compressed or flattened) or an `xl dump-core` file; with --from raw or --from text,
        a raw table (4- or 8-byte little-endian entries) or a text table (`pfn mfn` lines, hex with or without 0x).
        From a dump, the linear list at xen_p2m_addr is read through the guest's own page tables
        in machine memory (needs xen_p2m_addr from --system-map, --vmlinux or VMCOREINFO) and
        compared with every other copy the dump holds (Xen's frame-list tree, .xen_p2m). Without
        symbols the frame-list tree is used, which cannot tell identity pages from missing ones.
        The output file holds one complete ELF note, ready for p2m-inject.

        A list page the dump does not hold (makedumpfile's dump level excluded it) makes a partial
        map: its 512 pfns are recorded as INVALID, and emit says which pages and pfns, loudly.

        Examples:
          p2m-emit dom0.vmcore --system-map System.map-6.1.0-56-amd64
          p2m-emit domU.xcore --system-map System.map -o domU.note --json
          p2m-emit table.bin --from raw --width 8 -o table.note
          p2m-emit host.vmcore --all-domains --system-map System.map
        """),
        version: p2mnoteVersion)

    @Argument(help: "The dump (or, with --from raw|text, the table) to read.") var source: String
    @Option(name: [.short, .long], help: "Where to write the note (default: DUMP.p2mnote).") var output: String?
    @Flag(help: "Overwrite an existing output file.") var force = false
    @Option(help: "Which table to read: \(EmitSourceKind.allCases.map(\.rawValue).joined(separator: ", ")).") var from: String = "auto"
    @Option(help: "Entry width of a raw/text table: 4 or 8.") var width: Int = 8
    @Option(help: "Machine address of the guest's top page table (default: from the dump's notes).") var cr3: HexNumber?
    @Option(help: "MFN of the frame-list-list page (default: Xen's crash info).") var p2mMfn: HexNumber?
    @Option(help: "System.map of the guest kernel.") var systemMap: String?
    @Option(help: "vmlinux of the guest kernel (its symbols; refused when it is another build).") var vmlinux: String?
    @Option(help: "Domain id to record.") var domid: UInt32?
    @Option(help: "A host dump's domain: its p2m from Xen's tables (frame table and M2P), its shared_info's frame list and linear list (`p2m-analyze HOST domains` lists them).") var domain: UInt16?
    @Flag(help: "A note for every PV guest of a host dump, written to OUT.domN.p2mnote (OUT: -o, default DUMP).") var allDomains = false
    @Option(help: "Xen's symbols (xen-syms or xen-syms.map), optional: checked against the host dump's Xen.") var xenSyms: String?
    @Flag(name: .customLong("no-compare"), help: "Do not compare the map with the dump's other copies of the table (they are compared by default).") var noCompare = false
    var compare: Bool { !noCompare }
    @Flag(help: "Print the summary (and errors, on stderr) as JSON.") var json = false
    @Option(help: "Also write the table as raw 8-byte little-endian entries (for inspection).") var rawOut: String?

    public init() {}

    public func run() throws {
        try reportingErrors(json: json, tool: "p2m-emit") {
            guard let kind = EmitSourceKind(rawValue: from) else { throw ValidationError("unknown --from \(from)") }
            guard let w = EntryWidth(rawValue: UInt8(clamping: width)) else { throw ValidationError("--width must be 4 or 8") }
            var o = EmitOptions(input: source)
            o.from = kind
            o.width = w; o.guest.cr3 = cr3.map { MachAddr(rawValue: $0.value) }; o.guest.p2mMFN = p2mMfn.map { MFN(rawValue: $0.value) }
            o.guest.systemMap = systemMap; o.guest.vmlinux = vmlinux; o.domainID = domid; o.guest.domain = domain; o.guest.xenSyms = xenSyms; o.compare = compare; o.progress = !json
            if allDomains {
                guard domain == nil else { throw ValidationError("--all-domains and --domain exclude each other") }
                let prefix = output ?? source
                var results = try Emitter.emitAllDomains(o)
                for i in results.indices {
                    let out = prefix + ".dom\(results[i].note.header.domainID).p2mnote"
                    try OutputFile.checkWritable(out, force: force, hintFor: source)
                    try OutputFile.write(results[i].note.elfNoteBytes, to: out, force: force)
                    results[i].summary.output = out
                    if !json { print("domain \(results[i].note.header.domainID):"); printSummary(results[i].summary, out); print("") }
                    for w in warnings(results[i].summary) { warn("p2m-emit: domain \(results[i].note.header.domainID): " + w) }
                }
                if json { try printJSON(results.map(\.summary)) }
                return
            }
            let out = output ?? source + ".p2mnote"
            try OutputFile.checkWritable(out, force: force, hintFor: source)
            var r = try Emitter.emit(o)
            try OutputFile.write(r.note.elfNoteBytes, to: out, force: force)
            r.summary.output = out
            if let rawPath = rawOut { try writeRawTable(r.note, to: rawPath) }
            if json { try printJSON(r.summary) } else { printSummary(r.summary, out) }
            for w in warnings(r.summary) { warn("p2m-emit: " + w) }
        }
    }

    func warnings(_ s: EmitSummary) -> [String] {
        var w: [String] = []
        if let p = s.partialWarning { w.append(p) }
        for i in s.incomplete { w.append("warning: PARTIAL MAP: " + i) }
        for f in s.fallbacks { w.append("warning: \(f.source) could not be read (\(f.reason)); used \(s.source) instead") }
        if let c = s.crossCheck, !c.agrees { w.append("warning: the note (\(s.source)) and the dump's other copies disagree; see the cross-check") }
        return w
    }

    func printSummary(_ s: EmitSummary, _ out: String) {
        print("source:      \(s.source)")
        if let l = s.location { print("             \(l)") }
        print("pfns:        \(s.pfns) (\(s.entryWidth)-byte entries)")
        print("entries:     mfn \(s.counts.mfn), invalid \(s.counts.invalid), identity \(s.counts.identity)\(s.identityKnown ? "" : " (identity not distinguishable from missing in this source)"), foreign \(s.counts.foreign)")
        print("records:     \(s.records)")
        print("raw table:   \(s.rawBytes) bytes")
        print("note:        \(s.noteBytes) bytes (ratio \(String(format: "%.0f", s.ratio)):1) → \(out)")
        if let c = s.cr3 { print("cr3:         \(c)") }
        if let v = s.listVaddr { print("list:        \(v)") }
        if let f = s.fllMfn { print("fll mfn:     \(f)") }
        if let m = s.missingPageMfn { print("shared:      p2m_missing mfn \(m), p2m_identity mfn \(s.identityPageMfn?.description ?? "unknown")") }
        if let c = s.crossCheck { print(CrossCheckText.render(c), terminator: "") }
    }
}

/// Expand a note to a raw table file, a chunk at a time.
func writeRawTable(_ note: P2MNote, to path: String) throws {
    let map = try P2MNote.decode(descriptor: note.descriptor).map
    guard FileManager.default.createFile(atPath: path, contents: nil), let fh = FileHandle(forWritingAtPath: path) else {
        throw DumpError(path, "cannot create the raw table file")
    }
    defer { try? fh.close() }
    var buf = [UInt64](repeating: 0, count: 1 << 16)
    var pfn: UInt64 = 0
    while pfn < map.nrPfns {
        let n = buf.withUnsafeMutableBufferPointer { map.entries(from: pfn, into: $0) }
        buf.withUnsafeBytes { fh.write(Data($0.prefix(n * 8))) }
        pfn += UInt64(n)
    }
}
