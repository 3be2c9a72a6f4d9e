// The session's commands (crash's words where crash has one), each a CommandSpec with a
// Codable result: the commands that read the dump's own records (info, notes, p2m, m2p).
import DumpIO
import Foundation
import P2MFormat
import Translation

// MARK: info

enum Info {
    static let spec = CommandSpec("info", abstract: "Dump kind, notes, page-table root, release, p2m source and statistics.") { s, _ in try execute(in: s) }

    struct P2MInfo: Encodable {
        var source: String
        var location: String
        var pfns: UInt64
        var counts: CountsJSON
        var runs: Int
        var digest: Hex64
        var noteSource: String?
        var identityKnown: Bool
        var crossChecked: Bool?
        var error: String?
    }
    struct Result: TextResult {
        var kind: String
        var fileSize: UInt64
        var layout: String
        var notes: [String: Int]
        var xen: XenInfo?
        var cr3: MachAddr?
        var rootSource: String?
        var symbols: String?
        var release: String?
        var p2m: P2MInfo?
        var p2mError: String?
        var unavailable: [UnavailableSource]
        struct XenInfo: Encodable { var major: UInt64; var minor: UInt64; var xenPhysStart: Hex64?; var fllMfn: MFN? }
        var dump: String
        var text: String {
            var t = "dump:       \(dump)\nkind:       \(kind), \(fileSize) bytes, \(layout)\n"
            t += "notes:      " + notes.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", ") + "\n"
            if let x = xen { t += "xen:        \(x.major).\(x.minor), xen_phys_start \(x.xenPhysStart?.description ?? "?"), frame-list-list mfn \(x.fllMfn?.description ?? "none")\n" }
            if let c = cr3 { t += "cr3:        \(c) (\(rootSource ?? "?"))\n" }
            if let y = symbols { t += "symbols:    \(y)\n" }
            if let r = release { t += "release:    \(r)\n" }
            if let p = p2m {
                t += "p2m:        \(p.location)\n            \(p.pfns) pfns: mfn \(p.counts.mfn), invalid \(p.counts.invalid), identity \(p.counts.identity), foreign \(p.counts.foreign); \(p.runs) runs; digest \(p.digest)\n"
                if let ns = p.noteSource { t += "            note: source \(ns), identity \(p.identityKnown ? "known" : "not distinguishable"), \(p.crossChecked == true ? "cross-checked" : "not cross-checked")\n" }
            } else if let e = p2mError { t += "p2m:        unavailable: \(e)\n" }
            // Why each source that could not be read could not (JSON's `unavailable`).
            for u in unavailable { t += "unread:     \(u.source): \(u.reason)\n" }
            return t
        }
    }

    static func execute(in s: GuestSession) throws -> CommandOutput {
        var names: [String: Int] = [:]
        for n in s.dump.notes { names[n.name, default: 0] += 1 }
        var r = Result(kind: s.dump.kind.rawValue, fileSize: s.dump.fileSize, layout: s.dump.layoutDescription, notes: names,
                       unavailable: [], dump: s.dump.path)
        if let ci = s.dump.crashInfo { r.xen = .init(major: ci.major, minor: ci.minor, xenPhysStart: ci.xenPhysStart.map(Hex64.init), fllMfn: ci.frameListListMFN) }
        if let k = try? s.kernel() {
            r.cr3 = k.root; r.rootSource = k.rootSource; r.release = k.release()
        }
        if r.release == nil { r.release = s.dump.vmcoreInfo?.osRelease }
        let files = [s.options.guest.systemMap, s.options.guest.vmlinux].compactMap { $0 }
        r.symbols = !files.isEmpty ? files.joined(separator: " and ") : s.symbolsOrigin ?? (s.symbols.isEmpty ? nil : "the dump's VMCOREINFO")
        do {
            let (m, src) = try s.p2m()
            let c = m.canonical()
            let note = src as? NoteSource
            r.p2m = P2MInfo(source: src.name.rawValue, location: src.location, pfns: m.nrPfns, counts: CountsJSON(c.counts), runs: m.runCount,
                            digest: Hex64(c.digest), noteSource: note?.decoded.header.source?.description,
                            identityKnown: src.coverage.knowsIdentity, crossChecked: note.map { $0.decoded.header.crossChecked })
        } catch { r.p2mError = "\(error)" }
        r.unavailable = s.resolver.unavailable
        return try s.output("info", r)
    }
}

// MARK: notes

enum Notes {
    static let spec = CommandSpec("notes", abstract: "Every ELF note of the dump.") { s, _ in try execute(in: s) }
    struct Row: Encodable { var offset: Hex64; var size: UInt64; var name: String; var type: Hex64; var what: String; var container: String }
    struct Result: TextResult {
        var notes: [Row]
        var text: String {
            "  OFFSET      SIZE  NAME            TYPE\n" + notes.map {
                String(format: "  0x%08llx %6llu  ", $0.offset.value, $0.size) + $0.name.padding(toLength: max(15, $0.name.count), withPad: " ", startingAt: 0) + String(format: " 0x%08llx", $0.type.value) + "  \($0.what)\n"
            }.joined()
        }
    }
    static func execute(in s: GuestSession) throws -> CommandOutput {
        let rows = s.dump.notes.map { n -> Row in
            var what = ""
            if n.name == P2MNote.ownerName && n.type == P2MNote.noteType {
                if let d = try? P2MNote.decode(descriptor: n.desc) { what = "p2mnote v\(d.header.versionMajor).\(d.header.versionMinor): \(d.header.nrPfns) pfns, \(d.header.nrRecords) records" }
                else { what = "p2mnote (does not decode: run check)" }
            } else if n.name == "Xen" && n.type == 0x100_0001 { what = "Xen crash info" }
            else if n.name == "Xen" && n.type == 0x100_0002 { what = "Xen crash regs" }
            else if n.name == "CORE" && n.type == 1 { what = "NT_PRSTATUS" }
            else if n.name == "VMCOREINFO_XEN" { what = "Xen's VMCOREINFO" }
            else if n.name == "VMCOREINFO" { what = "the kernel's VMCOREINFO" }
            return Row(offset: Hex64(n.fileOffset), size: n.size, name: n.name, type: Hex64(UInt64(n.type)), what: what, container: n.container)
        }
        return try s.output("notes", Result(notes: rows))
    }
}

// MARK: p2m, m2p

struct P2MCmd {
    static let spec = CommandSpec("p2m", abstract: "The p2m entry of a pfn.", parameters: [.argument("pfn", "The pfn (hex).")]) { s, w in
        try P2MCmd(pfn: try hexWord(w, "pfn")).execute(in: s)
    }
    let pfn: UInt64
    struct Result: TextResult {
        var pfn: PFN; var kind: String; var entry: Hex64; var mfn: MFN?; var source: String
        var text: String { "pfn \(pfn): \(P2MEntry(raw: entry.value))  (\(source))\n" }
    }
    func execute(in s: GuestSession) throws -> CommandOutput {
        let (map, src) = try s.p2m()
        guard let e = map.entry(PFN(rawValue: pfn)) else { throw SessionError("pfn \(hex(pfn)) is beyond the p2m (\(map.nrPfns) entries, \(src.location))") }
        return try s.output("p2m", Result(pfn: PFN(rawValue: pfn), kind: e.kind.description, entry: Hex64(e.raw), mfn: e.frame, source: src.location))
    }
}

struct M2PCmd {
    static let spec = CommandSpec("m2p", abstract: "The pfn that maps a machine frame (an index, never a p2m scan).", parameters: [.argument("mfn", "The mfn (hex).")]) { s, w in
        try M2PCmd(mfn: try hexWord(w, "mfn")).execute(in: s)
    }
    let mfn: UInt64
    struct Result: TextResult {
        var mfn: MFN; var pfns: [PFN]; var ambiguous: Bool
        var text: String {
            pfns.isEmpty ? "mfn \(mfn): no pfn maps it\n"
                : ambiguous ? "mfn \(mfn): AMBIGUOUS, mapped by pfns \(pfns.map(\.description).joined(separator: ", "))\n" : "mfn \(mfn): pfn \(pfns[0])\n"
        }
        var exitCode: Int32 { pfns.count == 1 ? 0 : 1 }
    }
    func execute(in s: GuestSession) throws -> CommandOutput {
        let (map, _) = try s.p2m()
        let r: Result
        switch map.m2p(MFN(rawValue: mfn)) {
        case .none: r = Result(mfn: MFN(rawValue: mfn), pfns: [], ambiguous: false)
        case .unique(let p): r = Result(mfn: MFN(rawValue: mfn), pfns: [p], ambiguous: false)
        case .ambiguous(let ps): r = Result(mfn: MFN(rawValue: mfn), pfns: ps, ambiguous: true)
        }
        return try s.output("m2p", r)
    }
}

