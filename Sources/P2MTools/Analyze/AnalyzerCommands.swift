// The analyzer's commands (crash's words where crash has one), each an ArgumentParser command
// with a Codable result.
import ArgumentParser
import DumpIO
import Foundation
import P2MFormat
import Translation

protocol SessionCommand: ParsableCommand {
    func execute(in s: AnalyzerSession) throws -> CommandOutput
}

struct HexArg: ExpressibleByArgument {
    let text: String
    init?(argument: String) { text = argument }
}

/// The root the prompt and scripts parse each line with.
struct AnalyzerCommands: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "",
        abstract: "Commands of p2m-analyze. Addresses, pfns and mfns are hex (0x optional); counts are decimal.",
        subcommands: [Info.self, Notes.self, P2MCmd.self, M2PCmd.self, Vtop.self, Ptov.self, Rd.self, Sym.self, Banner.self, Mod.self, Check.self, Domains.self])
    static let names: Set<String> = Set(configuration.subcommands.map { $0._commandName })

    static var summary: String {
        configuration.subcommands.map { "  " + $0._commandName.padding(toLength: 8, withPad: " ", startingAt: 0) + $0.configuration.abstract }.joined(separator: "\n")
    }
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

// MARK: info

struct Info: SessionCommand {
    static let configuration = CommandConfiguration(abstract: "Dump kind, notes, page-table root, release, p2m source and statistics.")

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

    func execute(in s: AnalyzerSession) throws -> CommandOutput {
        var names: [String: Int] = [:]
        for n in s.dump.notes { names[n.name, default: 0] += 1 }
        var r = Result(kind: s.dump.kind.rawValue, fileSize: s.dump.fileSize, layout: s.dump.layoutDescription, notes: names,
                       unavailable: [], dump: s.dump.path)
        if let ci = s.dump.crashInfo { r.xen = .init(major: ci.major, minor: ci.minor, xenPhysStart: ci.xenPhysStart.map(Hex64.init), fllMfn: ci.frameListListMFN) }
        if let k = try? s.kernel() {
            r.cr3 = k.root; r.rootSource = k.rootSource; r.release = k.release()
        }
        if r.release == nil { r.release = s.dump.vmcoreInfo?.osRelease }
        do {
            let (m, src) = try s.p2m()
            let c = m.canonical()
            let note = src as? NoteSource
            r.p2m = P2MInfo(source: src.name, location: src.location, pfns: m.nrPfns, counts: CountsJSON(c.counts), runs: m.runCount,
                            digest: Hex64(c.digest), noteSource: note?.decoded.header.source?.description,
                            identityKnown: src.coverage.knowsIdentity, crossChecked: note.map { $0.decoded.header.crossChecked })
        } catch { r.p2mError = "\(error)" }
        r.unavailable = s.resolver.unavailable
        return try s.output("info", r)
    }
}

// MARK: notes

struct Notes: SessionCommand {
    static let configuration = CommandConfiguration(abstract: "Every ELF note of the dump.")
    struct Row: Encodable { var offset: Hex64; var size: UInt64; var name: String; var type: Hex64; var what: String; var container: String }
    struct Result: TextResult {
        var notes: [Row]
        var text: String {
            "  OFFSET      SIZE  NAME            TYPE\n" + notes.map {
                String(format: "  0x%08llx %6llu  ", $0.offset.value, $0.size) + $0.name.padding(toLength: max(15, $0.name.count), withPad: " ", startingAt: 0) + String(format: " 0x%08llx", $0.type.value) + "  \($0.what)\n"
            }.joined()
        }
    }
    func execute(in s: AnalyzerSession) throws -> CommandOutput {
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

struct P2MCmd: SessionCommand {
    static let configuration = CommandConfiguration(commandName: "p2m", abstract: "The p2m entry of a pfn.")
    @Argument(help: "The pfn (hex).") var pfn: HexNumber
    struct Result: TextResult {
        var pfn: PFN; var kind: String; var entry: Hex64; var mfn: MFN?; var source: String
        var text: String { "pfn \(pfn): \(P2MEntry(raw: entry.value))  (\(source))\n" }
    }
    func execute(in s: AnalyzerSession) throws -> CommandOutput {
        let (map, src) = try s.p2m()
        guard let e = map.entry(PFN(pfn.value)) else { throw AnalyzerError("pfn \(hex(pfn.value)) is beyond the p2m (\(map.nrPfns) entries, \(src.location))") }
        return try s.output("p2m", Result(pfn: PFN(pfn.value), kind: e.kind.description, entry: Hex64(e.raw), mfn: e.frame, source: src.location))
    }
}

struct M2PCmd: SessionCommand {
    static let configuration = CommandConfiguration(commandName: "m2p", abstract: "The pfn that maps a machine frame (an index, never a p2m scan).")
    @Argument(help: "The mfn (hex).") var mfn: HexNumber
    struct Result: TextResult {
        var mfn: MFN; var pfns: [PFN]; var ambiguous: Bool
        var text: String {
            pfns.isEmpty ? "mfn \(mfn): no pfn maps it\n"
                : ambiguous ? "mfn \(mfn): AMBIGUOUS, mapped by pfns \(pfns.map(\.description).joined(separator: ", "))\n" : "mfn \(mfn): pfn \(pfns[0])\n"
        }
        var exitCode: Int32 { pfns.count == 1 ? 0 : 1 }
    }
    func execute(in s: AnalyzerSession) throws -> CommandOutput {
        let (map, _) = try s.p2m()
        let r: Result
        switch map.m2p(MFN(mfn.value)) {
        case .none: r = Result(mfn: MFN(mfn.value), pfns: [], ambiguous: false)
        case .unique(let p): r = Result(mfn: MFN(mfn.value), pfns: [p], ambiguous: false)
        case .ambiguous(let ps): r = Result(mfn: MFN(mfn.value), pfns: ps, ambiguous: true)
        }
        return try s.output("m2p", r)
    }
}

// MARK: vtop, ptov

struct Vtop: SessionCommand {
    static let configuration = CommandConfiguration(abstract: "Page walk of a kernel virtual address, level by level (machine memory only).")
    @Argument(help: "Address (hex) or symbol[+offset].") var address: String
    struct Step: Encodable { var level: String; var tableMfn: MFN; var index: Int; var entry: Hex64; var flags: String }
    struct Result: TextResult {
        var vaddr: KVAddr; var region: String; var steps: [Step]; var machine: MachAddr; var mfn: MFN
        /// The pfn whose p2m entry is the mfn ("0x…"; null when none, ambiguous or no p2m: see pfnStatus).
        var pfn: PFN?; var pfnStatus: String; var pfnCandidates: [PFN]; var pageSize: UInt64
        private var pfnText: String { AnalyzerSession.PfnOfMfn(pfn: pfn, status: pfnStatus, candidates: pfnCandidates).text }
        var text: String {
            var t = "VIRTUAL           \(vaddr)  (\(region))\n"
            for s in steps { t += String(format: "  %@  table mfn 0x%llx [%3d] = 0x%016llx  %@\n", s.level as NSString, s.tableMfn.rawValue, s.index, s.entry.value, s.flags as NSString) }
            return t + "  MACHINE         \(machine)  (mfn \(mfn), \(pfnText), page \(pageSize >> 10) KiB)\n"
        }
    }
    func execute(in s: AnalyzerSession) throws -> CommandOutput {
        let va = KVAddr(try s.parseAddress(address))
        let r = try s.kernel().pageTables.walk(va)
        let p = s.pfn(ofMfn: r.address.mfn())
        let names = ["", "PTE", "PMD", "PUD", "PGD"]
        return try s.output("vtop", Result(vaddr: va, region: KernelRegion.of(va).rawValue,
                                           steps: r.steps.map { Step(level: names[$0.level], tableMfn: $0.tableMFN, index: $0.index, entry: Hex64($0.entry), flags: PTE.flagString($0.entry)) },
                                           machine: r.address, mfn: r.address.mfn(), pfn: p.pfn, pfnStatus: p.status, pfnCandidates: p.candidates, pageSize: r.pageSize))
    }
}

struct Ptov: SessionCommand {
    static let configuration = CommandConfiguration(abstract: "Kernel virtual addresses of a pseudo-physical address, and its machine address.")
    @Argument(help: "Pseudo-physical address (hex).") var address: HexNumber
    struct Result: TextResult {
        var paddr: PhysAddr; var directMap: KVAddr; var kernelImage: KVAddr?; var machine: MachAddr?
        var text: String {
            "PHYSICAL \(paddr) → direct map \(directMap)" + (kernelImage.map { ", kernel image \($0)" } ?? "") + (machine.map { "; machine \($0)" } ?? "") + "\n"
        }
    }
    func execute(in s: AnalyzerSession) throws -> CommandOutput {
        let p = address.value
        let (map, src) = try s.p2m()
        guard p >> 12 < map.nrPfns else { throw AnalyzerError("\(hex(p)) is beyond the p2m (\(map.nrPfns) pfns, \(src.location))") }
        var base: UInt64 = 0xffff_8880_0000_0000
        if let a = s.symbols.address("page_offset_base"), let k = try? s.kernel(), let v = try? k.pageTables.readU64(a) { base = v }
        let (dm, o) = base.addingReportingOverflow(p)
        guard !o else { throw AnalyzerError("\(hex(p)) + page_offset_base \(hex(base)) passes 2^64") }
        let kt: KVAddr? = p < 0x4000_0000 ? KVAddr(0xffff_ffff_8000_0000 + p) : nil
        let m = try? s.pseudoPhysical().translate(PhysAddr(p))
        return try s.output("ptov", Result(paddr: PhysAddr(p), directMap: KVAddr(dm), kernelImage: kt, machine: m))
    }
}

// MARK: rd

struct Rd: SessionCommand {
    static let configuration = CommandConfiguration(abstract: "64-bit words at a kernel virtual (default), pseudo-physical (-p) or machine (-m) address.")
    @Flag(name: .customShort("p"), help: "The address is pseudo-physical (translated through the p2m).") var physical = false
    @Flag(name: .customShort("m"), help: "The address is a machine address.") var machine = false
    @Argument(help: "Address (hex) or symbol[+offset].") var address: String
    @Argument(help: "Number of 64-bit words (decimal, 1 … 65536).") var count: String = "1"
    struct Result: TextResult {
        var address: Hex64; var space: AddressSpaceName; var words: [Hex64]; var hex: String
        /// The bytes read, which `hex` and `words` render for JSON; the text is made from them
        /// (decoding `hex` back, by String offsets, was quadratic: 65,536 words never finished).
        let bytes: [UInt8]
        enum CodingKeys: String, CodingKey { case address, space, words, hex }
        var text: String {
            var t = ""
            for line in stride(from: 0, to: bytes.count, by: 16) {
                let chunk = Array(bytes[line..<min(line + 16, bytes.count)])
                let ws = words[(line / 8)..<min(words.count, line / 8 + 2)].map { String(format: "%016llx", $0.value) }
                let ascii = String(chunk.map { (0x20..<0x7f).contains($0) ? Character(UnicodeScalar($0)) : "." })
                t += String(format: "%016llx:  ", address.value &+ UInt64(line)) + ws.joined(separator: " ").padding(toLength: 34, withPad: " ", startingAt: 0) + "  " + ascii + "\n"
            }
            return t
        }
    }
    /// The space's name as the library and the Python package say it (KVIRT, PPHYS, MACHINE).
    enum AddressSpaceName: String, Encodable { case kvaddr = "kvirt", physical = "pphys", machine }

    func validate() throws {
        if physical && machine { throw ValidationError("give -p or -m, not both") }
    }

    func execute(in s: AnalyzerSession) throws -> CommandOutput {
        let addr = try s.parseAddress(address)
        guard let n = parseCountArg(count), n >= 1, n <= 1 << 16 else { throw AnalyzerError("COUNT must be 1 … 65536 (decimal), got \(count)") }
        var bytes = [UInt8](repeating: 0, count: Int(n) * 8)
        let space: AddressSpaceName = physical ? .physical : (machine ? .machine : .kvaddr)
        // In 64 KiB pieces, Ctrl-C honoured between them (the prompt's handler sets the flag).
        let piece = 1 << 16
        try bytes.withUnsafeMutableBytes { all in
            var done = 0
            while done < all.count {
                try Interrupt.check()
                let buf = UnsafeMutableRawBufferPointer(rebasing: all[done..<min(all.count, done + piece)])
                let (at, o) = addr.addingReportingOverflow(UInt64(done))
                guard !o else { throw AnalyzerError("\(hex(addr)) + \(done) bytes: past 2^64") }
                switch space {
                case .machine: try s.dump.memory.read(MachAddr(at), into: buf)
                case .physical: try s.pseudoPhysical().read(PhysAddr(at), into: buf)
                case .kvaddr: try s.kernel().pageTables.read(KVAddr(at), into: buf)
                }
                done += buf.count
            }
        }
        let words = stride(from: 0, to: bytes.count, by: 8).map { w in Hex64((0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[w + $1]) << (8 * UInt64($1)) }) }
        return try s.output("rd", Result(address: Hex64(addr), space: space, words: words, hex: bytes.map { String(format: "%02x", $0) }.joined(), bytes: bytes))
    }
}

// MARK: sym

struct Sym: SessionCommand {
    static let configuration = CommandConfiguration(abstract: "Symbol lookup: a name's address, or what an address is (kernel symbol or module).")
    @Argument(help: "A symbol name or an address (hex).") var what: String
    struct Result: TextResult {
        var address: KVAddr; var symbol: String?; var offset: Hex64?; var type: String?; var region: String; var module: String?
        var text: String {
            if let m = module { return "\(address) = \(m)+\(offset?.description ?? "0x0")  (module)\n" }
            guard let s = symbol else { return "\(address): no symbol  (\(region))\n" }
            let off = (offset?.value ?? 0) > 0 ? "+\(offset!)" : ""
            return "\(address) = \(s)\(off)  (\(type.map { SymbolTypeName.describe($0) } ?? "symbol"), \(region))\n"
        }
    }
    func execute(in s: AnalyzerSession) throws -> CommandOutput {
        if let sym = s.symbols.lookup(what) {
            return try s.output("sym", Result(address: sym.address, symbol: sym.name, offset: Hex64(0), type: String(sym.type), region: KernelRegion.of(sym.address).rawValue))
        }
        // An address, or symbol+offset as rd and vtop take it: described as the address it names.
        guard let v = parseHexArg(what) ?? (what.contains("+") ? try? s.parseAddress(what) : nil) else {
            throw AnalyzerError("symbol \(what) not found\(s.symbols.isEmpty ? " (no symbols: pass --system-map or --vmlinux)" : "")")
        }
        let va = KVAddr(v)
        let region = KernelRegion.of(va)
        // A module's address: name it by its module, never by the last kernel symbol below it.
        if region == .modules {
            if let k = try? s.kernel(), let mods = try? k.modules(s.options.moduleLayout), let m = mods.first(where: { $0.contains(va) }) {
                return try s.output("sym", Result(address: va, symbol: nil, offset: Hex64(v - m.base.rawValue), type: nil, region: region.rawValue, module: m.name))
            }
            return try s.output("sym", Result(address: va, symbol: nil, offset: nil, type: nil, region: region.rawValue, module: nil))
        }
        guard region == .kernelText, let (sym, off) = s.symbols.symbol(at: va), sym.name != "_end" else {
            return try s.output("sym", Result(address: va, symbol: nil, offset: nil, type: nil, region: region.rawValue, module: nil))
        }
        return try s.output("sym", Result(address: va, symbol: sym.name, offset: Hex64(off), type: String(sym.type), region: region.rawValue))
    }
}

enum SymbolTypeName {
    static func describe(_ t: String) -> String {
        switch t.lowercased() {
        case "t": return "text"
        case "d": return "data"
        case "b": return "bss"
        case "r": return "read-only data"
        case "a": return "absolute"
        case "w", "v": return "weak"
        default: return "symbol"
        }
    }
}

// MARK: banner, mod

struct Banner: SessionCommand {
    static let configuration = CommandConfiguration(abstract: "linux_banner.")
    struct Result: TextResult {
        var banner: String
        var text: String { banner.hasSuffix("\n") ? banner : banner + "\n" }
    }
    func execute(in s: AnalyzerSession) throws -> CommandOutput {
        try s.output("banner", Result(banner: try s.kernel().banner()))
    }
}

struct Mod: SessionCommand {
    static let configuration = CommandConfiguration(abstract: "Loaded modules (the kernel's `modules` list).")
    struct Result: TextResult {
        var modules: [LoadedModule]
        var text: String {
            "      MODULE        NAME                      BASE              SIZE\n" + modules.map {
                "  " + String(format: "%016llx", $0.module.rawValue) + "  " + $0.name.padding(toLength: max(24, $0.name.count), withPad: " ", startingAt: 0) + "  " + String(format: "%016llx  %llu", $0.base.rawValue, $0.size) + "\n"
            }.joined()
        }
    }
    func execute(in s: AnalyzerSession) throws -> CommandOutput {
        try s.output("mod", Result(modules: try s.kernel().modules(s.options.moduleLayout)))
    }
}

// MARK: check

struct Check: SessionCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate every p2mnote note against the Spec, then against each of the dump's own tables over what both cover.",
        discussion: "A crashed host's dump carries one note per guest: each is checked against that guest's own tables (--domain: that guest's only). Exit 2 when any note fails.")
    struct Result: TextResult {
        /// The domain the note records (nil: none).
        var domain: UInt32?
        var format: String
        var rule: Int?
        var error: String?
        var version: String?
        var pfns: UInt64?
        var records: UInt64?
        var crossCheck: CrossCheckReport?
        var ok: Bool
        var text: String {
            var t: String
            if let e = error { t = "format:      INVALID (rule \(rule.map(String.init) ?? "?")): \(e)\n" }
            else { t = "format:      OK (Spec v\(version ?? "?"), every decoder rule holds): \(pfns ?? 0) pfns, \(records ?? 0) records\n" }
            if let c = crossCheck {
                t += CrossCheckText.render(c)
                if !c.compared { t += "compared:    nothing: no other copy of the table is readable in this dump\n" }
            }
            return t + (ok ? "result:      OK\n" : "result:      MISMATCH\n")
        }
        var exitCode: Int32 { ok ? 0 : 2 }
    }
    /// Several notes (a host dump's, no --domain): each one's result, under its domain.
    struct Results: TextResult {
        var notes: [Result]
        var ok: Bool
        var text: String {
            notes.map { "domain \($0.domain.map { $0 == .max ? "(none)" : String($0) } ?? "?"):\n" + $0.text.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n" }.joined()
                + "result:      \(ok ? "OK" : "MISMATCH") (\(notes.filter(\.ok).count) of \(notes.count) notes agree)\n"
        }
        var exitCode: Int32 { ok ? 0 : 2 }
    }

    func execute(in s: AnalyzerSession) throws -> CommandOutput {
        if s.options.domain == nil, s.dump.p2mNotes.count > 1 {
            var results: [Result] = []
            let ids = s.dump.p2mNotes.map { P2MNote.domainID(ofElfNoteDescriptor: $0.desc) }
            for n in s.dump.p2mNotes {
                let d = P2MNote.domainID(ofElfNoteDescriptor: n.desc)
                if ids.filter({ $0 == d }).count > 1 {
                    results.append(Result(domain: d, format: "invalid", error: "note at 0x\(String(n.fileOffset, radix: 16)): another note records the same domain; a dump carries at most one per domain", ok: false))
                    continue
                }
                var ro = s.resolver.options
                ro.domain = d <= UInt32(UInt16.max) ? UInt16(d) : nil
                // --cr3 and --p2m-mfn name the session's own guest's tables, not the others'.
                if d != 0 && d != .max { ro.cr3 = nil; ro.p2mMFN = nil }
                // The System.map or vmlinux given is the session's own guest's (dom0's here); the
                // other guests are checked from Xen's tables and their own shared_info only.
                let own = d == 0 || d == .max
                results.append(check(n.desc, domain: d, resolver: P2MResolver(dump: s.dump, symbols: own ? s.symbols : SymbolTable(), options: ro)))
            }
            return try s.output("check", Results(notes: results, ok: results.allSatisfy(\.ok)))
        }
        guard let n = try s.dump.p2mNote(domain: s.options.domain.map(UInt32.init)) else {
            throw AnalyzerError("\(s.dump.path): no p2mnote note to check\(s.options.domain.map { " for domain \($0)" } ?? "")")
        }
        return try s.output("check", check(n.desc, domain: P2MNote.domainID(ofElfNoteDescriptor: n.desc), resolver: s.resolver))
    }

    private func check(_ desc: [UInt8], domain: UInt32, resolver: P2MResolver) -> Result {
        let dec: DecodedP2MNote
        do { dec = try P2MNote.decode(descriptor: desc) } catch let e as P2MFormatError {
            return Result(domain: domain, format: "invalid", rule: e.rule, error: e.description, ok: false)
        } catch {
            return Result(domain: domain, format: "invalid", error: "\(error)", ok: false)
        }
        let c = resolver.crossCheck(dec.map, identityKnown: dec.header.identityKnown)
        return Result(domain: domain, format: "ok", version: "\(dec.header.versionMajor).\(dec.header.versionMinor)", pfns: dec.header.nrPfns,
                      records: dec.header.nrRecords, crossCheck: c, ok: c.agrees)
    }
}

// MARK: domains

struct Domains: SessionCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every domain of a crashed Xen host's dump, from Xen's own tables: id, pages, PV or not, the p2m sources each has.",
        discussion: "Needs the dump's VMCOREINFO_XEN and Xen crash info notes (no Xen debug symbols). fll_mfn is what `crash --p2m_mfn` takes for that guest. Page counts come from struct domain where Xen's build is recognised (each checked against the frame table), else from a pass over the whole frame table; --scan forces that pass, which also counts frames whose owner is in no domain list.")
    @Flag(help: "Count every frame's owner in the frame table instead of reading struct domain.") var scan = false
    struct Row: Encodable {
        var id: UInt16
        var system: Bool
        var address: Hex64
        var pages: UInt64
        var xenHeapPages: UInt64
        var pv: Bool
        var sharedInfoMfn: MFN?
        var maxPfn: Hex64?
        var fllMfn: MFN?
        var p2mCr3: MachAddr?
        var p2mVaddr: KVAddr?
        var sources: [String]
        var note: Bool
    }
    struct Result: TextResult {
        var xen: String
        var maxPage: Hex64
        var method: String
        var pdx: XenPDX
        var xenSymbols: String?
        var orphanPages: UInt64
        var domains: [Row]
        var text: String {
            var t = "xen:        \(xen), max_page \(maxPage); counts from \(method)\n"
            t += "pdx:        " + (pdx.holeBits == 0 ? "no compression (pdx = mfn)" : "address bits \(pdx.bottomBits + 12)–\(pdx.bottomBits + pdx.holeBits + 11) squeezed out (pfn bits \(pdx.bottomBits)–\(pdx.bottomBits + pdx.holeBits - 1))") + ", from Xen's direct map\n"
            if let x = xenSymbols { t += "xen-syms:   \(x)\n" }
            if orphanPages > 0 { t += "warning:    \(orphanPages) allocated frames name an owner that is in no domain list (a dying domain, or a damaged frame table)\n" }
            t += "  ID  PAGES      PV  MAX_PFN    FLL_MFN    P2M_CR3        SOURCES\n"
            for d in domains {
                let id = d.system ? (d.id == XenLayout.domidXen ? "xen" : d.id == XenLayout.domidIO ? "io" : String(d.id)) : String(d.id)
                func col(_ s: String, _ n: Int) -> String { s.padding(toLength: max(n, s.count), withPad: " ", startingAt: 0) }
                t += col(id.count < 4 ? String(repeating: " ", count: 4 - id.count) + id : id, 4) + "  " + col(String(d.pages), 10) + " "
                    + col(d.system ? "-" : d.pv ? "yes" : "no", 3) + " " + col(d.maxPfn?.description ?? "-", 10) + " " + col(d.fllMfn?.description ?? "-", 10) + " "
                    + col(d.p2mCr3?.description ?? "-", 14) + " " + (d.system ? "(system domain)" : d.sources.joined(separator: ", ") + (d.note ? "; note in dump" : "")) + "\n"
            }
            return t
        }
    }
    func execute(in s: AnalyzerSession) throws -> CommandOutput {
        let host = try s.resolver.host()
        let notes = Set(s.dump.p2mNotes.compactMap { try? P2MNote.decode(descriptor: $0.desc).header.domainID })
        var rows: [Row] = []
        for d in try host.domains(scan: scan) {
            let a = d.arch
            var src: [String] = []
            if !d.system { src.append("xen-m2p") }
            if let a, a.p2mVaddr != 0, a.p2mCr3 != 0 { src.append("linear-list") }
            if let a, a.fllMfn != 0 { src.append("frame-tree") }
            rows.append(Row(id: d.id, system: d.system, address: Hex64(d.address), pages: d.pages, xenHeapPages: d.xenHeapPages, pv: d.looksPV,
                            sharedInfoMfn: d.sharedInfoMfn, maxPfn: a.map { Hex64($0.maxPfn) }, fllMfn: a.flatMap { $0.fllMfn == 0 ? nil : MFN($0.fllMfn) },
                            p2mCr3: a.flatMap { $0.p2mCr3 == 0 ? nil : MachAddr($0.p2mCr3) }, p2mVaddr: a.flatMap { $0.p2mVaddr == 0 ? nil : KVAddr($0.p2mVaddr) },
                            sources: src, note: !d.system && notes.contains(UInt32(d.id))))
        }
        let ci = s.dump.crashInfo
        return try s.output("domains", Result(xen: ci.map { "Xen \($0.major).\($0.minor)" } ?? "Xen", maxPage: Hex64(host.maxPage), method: host.domainsMethod, pdx: host.pdx, xenSymbols: host.symbolCheck, orphanPages: host.orphanPages, domains: rows))
    }
}
