import ArgumentParser
import DumpIO
import Foundation
import P2MFormat

/// Parses 0x-hex or decimal numbers on the command line.
func parseNumberArg(_ s: String) -> UInt64? {
    s.hasPrefix("0x") || s.hasPrefix("0X") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s)
}

struct HexNumber: ExpressibleByArgument {
    let value: UInt64
    init?(argument: String) { guard let v = parseNumberArg(argument) else { return nil }; value = v }
}

public struct EmitCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "p2m-emit",
        abstract: "Read a Xen PV guest's p2m from a dump or a table and write it as a p2mnote ELF note.",
        discussion: """
        SOURCE is a dom0 kdump vmcore, an `xl dump-core` file, a raw table (4- or 8-byte
        little-endian entries) or a text table (`pfn mfn` lines). From a vmcore the linear list
        at xen_p2m_addr is read through dom0's own page tables in machine memory (needs
        xen_p2m_addr from --system-map, --vmlinux or VMCOREINFO) and compared with the
        frame-list tree of Xen's crash info. The output file holds one complete ELF note, ready
        for p2m-inject.
        """)

    @Argument(help: "The dump or table to read.") var source: String
    @Option(name: [.short, .long], help: "Where to write the note (default: SOURCE.p2mnote).") var output: String?
    @Option(help: "Which table to read: \(EmitSourceKind.allCases.map(\.rawValue).joined(separator: ", ")).") var from: String = "auto"
    @Option(help: "Entry width of a raw/text table: 4 or 8.") var width: Int = 8
    @Option(help: "Machine address of the guest's top page table (default: from the dump's notes).") var cr3: HexNumber?
    @Option(help: "MFN of the frame-list-list page (default: Xen's crash info).") var p2mMfn: HexNumber?
    @Option(help: "System.map of the guest kernel.") var systemMap: String?
    @Option(help: "vmlinux of the guest kernel (its symbol table is used).") var vmlinux: String?
    @Option(help: "Domain id to record.") var domid: UInt32?
    @Flag(inversion: .prefixedNo, help: "Compare with the dump's second copy of the table.") var compare = true
    @Flag(help: "Print the summary as JSON.") var json = false
    @Option(help: "Also write the table as raw 8-byte little-endian entries (for inspection).") var rawOut: String?

    public init() {}

    public func run() throws {
        guard let kind = EmitSourceKind(rawValue: from) else { throw ValidationError("unknown --from \(from)") }
        guard let w = EntryWidth(rawValue: UInt8(clamping: width)) else { throw ValidationError("--width must be 4 or 8") }
        var o = EmitOptions(input: source)
        o.from = kind
        if kind == .auto, !looksLikeELF(source) { o.from = source.hasSuffix(".txt") ? .text : .raw }
        o.width = w; o.cr3 = cr3?.value; o.p2mMFN = p2mMfn?.value
        o.systemMap = systemMap; o.vmlinux = vmlinux; o.domainID = domid; o.compare = compare; o.progress = true
        let r = try Emitter.emit(o)
        let out = output ?? source + ".p2mnote"
        try Data(r.note.elfNoteBytes).write(to: URL(fileURLWithPath: out))
        if let rawPath = rawOut { try writeRawTable(r.note, to: rawPath) }
        if json {
            let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try e.encode(r.summary), as: UTF8.self))
        } else {
            printSummary(r.summary, out)
        }
        if let d = r.summary.differences, d > 0 {
            FileHandle.standardError.write(Data("p2m-emit: warning: \(d) entries differ between the note (\(r.summary.source)) and the \(r.summary.comparedWith ?? "other copy")\n".utf8))
        }
    }

    func printSummary(_ s: EmitSummary, _ out: String) {
        print("source:      \(s.source)")
        print("pfns:        \(s.pfns) (\(s.entryWidth)-byte entries)")
        print("entries:     mfn \(s.counts["mfn"] ?? 0), invalid \(s.counts["invalid"] ?? 0), identity \(s.counts["identity"] ?? 0)\(s.identityKnown ? "" : " (identity not distinguishable from missing in this source)"), foreign \(s.counts["foreign"] ?? 0)")
        print("records:     \(s.records)")
        print("raw table:   \(s.rawBytes) bytes")
        print("note:        \(s.noteBytes) bytes (ratio \(String(format: "%.0f", s.ratio)):1) → \(out)")
        if let c = s.cr3 { print("cr3:         \(c)") }
        if let v = s.listVAddr { print("list:        \(v)") }
        if let f = s.fllMFN { print("fll mfn:     \(f)") }
        if let c = s.comparedWith {
            print("compared:    with the \(c): \(s.differences == 0 ? "identical" : "\(s.differences ?? 0) entries differ")")
            for d in s.firstDifferences { print("             \(d)") }
        }
    }
}

func looksLikeELF(_ path: String) -> Bool {
    guard let h = FileHandle(forReadingAtPath: path) else { return false }
    defer { try? h.close() }
    return h.readData(ofLength: 4) == Data([0x7f, 0x45, 0x4c, 0x46])
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
