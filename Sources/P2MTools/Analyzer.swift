// The analyzer: a session over one dump, answering crash-like commands.
//
// Kernel virtual reads go through the machine-only page walk (Translation/PageWalker.swift),
// so they never need the p2m; the p2m (note first) serves pseudo-physical reads, pfn
// display, m2p and `check`. No path calls itself: translation is a fixed pipeline.
import DumpIO
import Foundation
import P2MFormat
import Translation

public struct AnalyzerOptions: Sendable {
    public var dump: String
    public var systemMap: String?
    public var vmlinux: String?
    public var cr3: UInt64?
    public var p2mMFN: UInt64?
    public var useNote = true
    public var moduleLayout = ModuleOffsets()
    public init(dump: String) { self.dump = dump }
}

/// struct module offsets (x86_64 Linux 6.1 by default; overridable).
public struct ModuleOffsets: Sendable {
    public var list: UInt64 = 0x8
    public var name: UInt64 = 0x18
    public var nameLength = 56
    // Debian 12's 6.1 kernel (ptype/o struct module on its debug vmlinux): core_layout at 320.
    public var coreBase: UInt64 = 0x140
    public var coreSize: UInt64 = 0x148
    public init() {}
}

public struct CommandOutput {
    public var text: String
    public var json: Any
    public var exitCode: Int32 = 0
}

public struct AnalyzerError: Error, CustomStringConvertible {
    public let message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}

public final class AnalyzerSession {
    public let options: AnalyzerOptions
    public let dump: DumpFile
    public let memory: MachineMemory
    public let symbols: SymbolTable
    private var viewCache: GuestKernelView?
    private var p2mCache: (map: P2MMap, source: String, header: P2MNoteHeader?)?

    public init(_ o: AnalyzerOptions) throws {
        options = o
        dump = try DumpFile.open(path: o.dump)
        memory = try machineMemory(of: dump)
        symbols = try loadSymbols(systemMap: o.systemMap, vmlinux: o.vmlinux, dump: dump)
    }

    /// Machine reads so far (the seed's test counts them to prove boundedness).
    public var machineReads: Int { (memory as? KdumpMemory)?.readCount ?? (memory as? XenCoreMemory)?.readCount ?? 0 }

    public func view() throws -> GuestKernelView {
        if let v = viewCache { return v }
        let v = try GuestKernelView(dump: dump, memory: memory, symbols: symbols, cr3: options.cr3)
        viewCache = v
        return v
    }

    /// The p2m in use: the note; else the frame-list tree; else .xen_p2m; else the linear list.
    public func p2m() throws -> (map: P2MMap, source: String, header: P2MNoteHeader?) {
        if let c = p2mCache { return c }
        var reasons: [String] = []
        if options.useNote, let n = try dump.p2mNote() {
            let d = try P2MNote.decode(descriptor: n.desc)
            p2mCache = (d.map, "p2mnote note at file offset 0x\(String(n.fileOffset, radix: 16))", d.header)
            return p2mCache!
        } else { reasons.append(options.useNote ? "no p2mnote note" : "note disabled (--no-note)") }
        let fll = options.p2mMFN.map(MFN.init) ?? dump.crashInfo?.frameListListMFN
        if let f = fll {
            let enc = P2MEncoder(width: .eight)
            try FrameTreeReader.read(memory: memory, fll: f, size: 1 << 27, sink: EncoderSink(enc))
            let m = try P2MNote.decode(descriptor: enc.finish(metadata: .init(source: .frameListTree)).descriptor).map
            p2mCache = (m, "frame-list tree at mfn \(f) (Xen crash info)", nil)
            return p2mCache!
        } else { reasons.append("no frame-list-list root (no Xen crash info, no --p2m-mfn)") }
        if let x = memory as? XenCoreMemory {
            var size = UInt64(x.pairs.map(\.pfn).max().map { $0 + 1 } ?? 1)
            if let s = try x.sharedInfoArch(), s.maxPfn > size, s.maxPfn <= 1 << 40 { size = s.maxPfn }
            let enc = P2MEncoder(width: .eight)
            try Emitter.streamXenP2M(x, size: size, sink: EncoderSink(enc))
            let m = try P2MNote.decode(descriptor: enc.finish(metadata: .init(source: .xlP2M)).descriptor).map
            p2mCache = (m, ".xen_p2m section", nil)
            return p2mCache!
        }
        do {
            let v = try view()
            let (va, size) = try v.linearList()
            let enc = P2MEncoder(width: .eight)
            try LinearListReader.read(walker: v.walker, root: v.root, vaddr: va, size: size, shared: try v.sharedFrames(), sink: EncoderSink(enc))
            let m = try P2MNote.decode(descriptor: enc.finish(metadata: .init(source: .linearList)).descriptor).map
            p2mCache = (m, "linear list at \(va) read through cr3 (\(v.rootSource))", nil)
            return p2mCache!
        } catch {
            reasons.append("linear list unreadable: \(error)")
        }
        throw AnalyzerError("no p2m source: " + reasons.joined(separator: "; "))
    }

    // MARK: addresses

    func parseAddress(_ s: String) throws -> UInt64 {
        if let v = parseNumberArg(s) { return v }
        var name = Substring(s)
        var off: UInt64 = 0
        if let plus = s.firstIndex(of: "+"), let o = parseNumberArg(String(s[s.index(after: plus)...])) {
            name = s[..<plus]; off = o
        }
        guard let a = symbols.address(String(name)) else {
            throw AnalyzerError("\(s): not a number or a known symbol\(symbols.isEmpty ? " (no symbols: pass --system-map or --vmlinux)" : "")")
        }
        return a.rawValue &+ off
    }

    func machine(ofPfn pfn: UInt64) throws -> MFN {
        let (map, src, _) = try p2m()
        guard let e = map.entry(PFN(pfn)) else { throw AnalyzerError("pfn 0x\(String(pfn, radix: 16)) is beyond the p2m (\(map.nrPfns) entries, \(src))") }
        switch e.kind {
        case .mfn, .identity: return e.frame ?? MFN(pfn)
        case .invalid: throw AnalyzerError("pfn 0x\(String(pfn, radix: 16)) has no machine frame (INVALID in the p2m)")
        case .foreign: throw AnalyzerError("pfn 0x\(String(pfn, radix: 16)) maps a foreign frame \(e)")
        }
    }

    func pfnDescription(ofMfn mfn: UInt64) -> String {
        guard let (map, _, _) = try? p2m() else { return "pfn ?" }
        switch map.m2p(MFN(mfn)) {
        case .none: return "pfn none"
        case .unique(let p): return "pfn \(p)"
        case .ambiguous(let ps): return "pfn ambiguous (\(ps.map(\.description).joined(separator: ", ")))"
        }
    }

    // MARK: commands

    public func execute(_ argv: [String]) throws -> CommandOutput {
        guard let cmd = argv.first else { throw AnalyzerError("no command") }
        let args = Array(argv.dropFirst())
        switch cmd {
        case "info": return try info()
        case "notes": return notes()
        case "p2m": return try p2mCommand(args)
        case "m2p": return try m2pCommand(args)
        case "vtop": return try vtop(args)
        case "ptov": return try ptov(args)
        case "rd": return try rd(args)
        case "sym": return try sym(args)
        case "banner": return try banner()
        case "mod": return try mod()
        case "check": return try check()
        case "help": return CommandOutput(text: AnalyzerSession.helpText, json: ["commands": AnalyzerSession.commands])
        default: throw AnalyzerError("unknown command \(cmd); try help")
        }
    }

    static let commands = ["info", "notes", "p2m PFN", "m2p MFN", "vtop VADDR", "ptov PADDR", "rd [-p|-m] ADDR [COUNT]",
                           "sym NAME|ADDR", "banner", "mod", "check", "help"]
    static let helpText = """
    info                    dump kind, notes, p2m source and statistics, kernel release
    notes                   every ELF note of the dump
    p2m PFN                 the p2m entry of a pfn
    m2p MFN                 the pfn that maps a machine frame (no p2m scan)
    vtop VADDR              page walk of a kernel virtual address, level by level
    ptov PADDR              kernel virtual addresses of a pseudo-physical address
    rd [-p|-m] ADDR [N]     N 64-bit words at a kernel virtual (default), pseudo-physical (-p) or machine (-m) address
    sym NAME|ADDR           symbol lookup
    banner                  linux_banner
    mod                     loaded modules (the `modules` list)
    check                   validate the p2mnote note against the Spec and against the dump's own tables
    """

    func info() throws -> CommandOutput {
        var t = "dump:       \(dump.path)\nkind:       \(dump.kind.rawValue), \(dump.fileSize) bytes, "
        t += dump.kind == .kdumpELF ? "\(dump.loads.count) PT_LOAD segments\n" : "\(dump.sections.count) sections\n"
        var names: [String: Int] = [:]
        for n in dump.notes { names["\(n.name)", default: 0] += 1 }
        t += "notes:      " + names.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", ") + "\n"
        var j: [String: Any] = ["dump": dump.path, "kind": dump.kind.rawValue, "size": dump.fileSize, "notes": names]
        if let ci = dump.crashInfo {
            t += "xen:        \(ci.major).\(ci.minor), xen_phys_start \(ci.xenPhysStart.map { "0x" + String($0, radix: 16) } ?? "?"), frame-list-list mfn \(ci.frameListListMFN?.description ?? "none")\n"
            j["xen"] = ["major": ci.major, "minor": ci.minor]
        }
        if let v = try? view() {
            t += "cr3:        \(v.root) (\(v.rootSource))\n"
            j["cr3"] = "0x" + String(v.root.rawValue, radix: 16)
            if let uts = symbols.address("init_uts_ns"), let b = try? v.walker.readBytes(KVAddr(uts.rawValue + 130), root: v.root, count: 65) {
                let rel = String(decoding: b.prefix { $0 != 0 }, as: UTF8.self)
                t += "release:    \(rel)\n"; j["release"] = rel
            }
        } else if let r = dump.vmcoreInfo?.osRelease {
            t += "release:    \(r)\n"; j["release"] = r
        }
        do {
            let (m, src, h) = try p2m()
            let c = m.canonical()
            t += "p2m:        \(src)\n            \(m.nrPfns) pfns: \(c.counts); \(m.runCount) runs; digest 0x\(String(c.digest, radix: 16))\n"
            if let h = h { t += "            note: source \(h.source?.description ?? "?"), identity \(h.identityKnown ? "known" : "not distinguishable"), \(h.crossChecked ? "cross-checked" : "not cross-checked")\n" }
            j["p2m"] = ["source": src, "pfns": m.nrPfns, "mfn": c.counts.mfn, "invalid": c.counts.invalid, "identity": c.counts.identity, "foreign": c.counts.foreign, "runs": m.runCount]
        } catch {
            t += "p2m:        unavailable: \(error)\n"; j["p2m"] = ["error": "\(error)"]
        }
        return CommandOutput(text: t, json: j)
    }

    func notes() -> CommandOutput {
        var t = "  OFFSET      SIZE  NAME            TYPE\n"
        var j: [[String: Any]] = []
        for n in dump.notes {
            t += String(format: "  0x%08llx %6llu  ", n.fileOffset, n.size) + n.name.padding(toLength: max(15, n.name.count), withPad: " ", startingAt: 0) + String(format: " 0x%08x", n.type)
            var what = ""
            if n.name == P2MNote.ownerName && n.type == P2MNote.noteType {
                if let d = try? P2MNote.decode(descriptor: n.desc) { what = "p2mnote v\(d.header.versionMajor).\(d.header.versionMinor): \(d.header.nrPfns) pfns, \(d.header.nrRecords) records" }
                else { what = "p2mnote (does not decode: run check)" }
            } else if n.name == "Xen" && n.type == 0x100_0001 { what = "Xen crash info" }
            else if n.name == "Xen" && n.type == 0x100_0002 { what = "Xen crash regs" }
            else if n.name == "CORE" && n.type == 1 { what = "NT_PRSTATUS" }
            t += "  \(what)\n"
            j.append(["offset": n.fileOffset, "size": n.size, "name": n.name, "type": n.type, "what": what, "container": n.container])
        }
        return CommandOutput(text: t, json: j)
    }

    func p2mCommand(_ a: [String]) throws -> CommandOutput {
        guard a.count == 1, let pfn = parseNumberArg(a[0]) else { throw AnalyzerError("usage: p2m PFN") }
        let (map, src, _) = try p2m()
        guard let e = map.entry(PFN(pfn)) else { throw AnalyzerError("pfn 0x\(String(pfn, radix: 16)) is beyond the p2m (\(map.nrPfns) entries)") }
        return CommandOutput(text: "pfn 0x\(String(pfn, radix: 16)): \(e)  (\(src))\n",
                             json: ["pfn": pfn, "kind": e.kind.description, "raw": "0x" + String(e.raw, radix: 16), "mfn": e.frame.map { $0.rawValue } as Any, "source": src])
    }

    func m2pCommand(_ a: [String]) throws -> CommandOutput {
        guard a.count == 1, let mfn = parseNumberArg(a[0]) else { throw AnalyzerError("usage: m2p MFN") }
        let (map, _, _) = try p2m()
        switch map.m2p(MFN(mfn)) {
        case .none: return CommandOutput(text: "mfn 0x\(String(mfn, radix: 16)): no pfn maps it\n", json: ["mfn": mfn, "pfns": [UInt64]()], exitCode: 1)
        case .unique(let p): return CommandOutput(text: "mfn 0x\(String(mfn, radix: 16)): pfn \(p)\n", json: ["mfn": mfn, "pfns": [p.rawValue]])
        case .ambiguous(let ps): return CommandOutput(text: "mfn 0x\(String(mfn, radix: 16)): AMBIGUOUS, mapped by pfns \(ps.map(\.description).joined(separator: ", "))\n", json: ["mfn": mfn, "pfns": ps.map(\.rawValue), "ambiguous": true], exitCode: 1)
        }
    }

    func vtop(_ a: [String]) throws -> CommandOutput {
        guard a.count == 1 else { throw AnalyzerError("usage: vtop VADDR") }
        let va = KVAddr(try parseAddress(a[0]))
        let v = try view()
        let r = try v.walker.walk(va, root: v.root)
        var t = "VIRTUAL           \(va)  (\(KernelRegion.of(va).rawValue))\n"
        var steps: [[String: Any]] = []
        let names = ["", "PTE", "PMD", "PUD", "PGD"]
        for s in r.steps {
            t += String(format: "  %@  table mfn 0x%llx [%3d] = 0x%016llx  %@\n", names[s.level] as NSString, s.tableMFN.rawValue, s.index, s.entry, PTE.flagString(s.entry) as NSString)
            steps.append(["level": names[s.level], "tableMfn": s.tableMFN.rawValue, "index": s.index, "entry": "0x" + String(s.entry, radix: 16), "flags": PTE.flagString(s.entry)])
        }
        let pfnText = pfnDescription(ofMfn: r.address.rawValue >> 12)
        t += "  MACHINE         \(r.address)  (mfn 0x\(String(r.address.rawValue >> 12, radix: 16)), \(pfnText), page \(r.pageSize >> 10) KiB)\n"
        return CommandOutput(text: t, json: ["vaddr": "0x" + String(va.rawValue, radix: 16), "steps": steps, "machine": "0x" + String(r.address.rawValue, radix: 16), "pageSize": r.pageSize, "pfn": pfnText])
    }

    func ptov(_ a: [String]) throws -> CommandOutput {
        guard a.count == 1, let p = parseNumberArg(a[0]) else { throw AnalyzerError("usage: ptov PADDR") }
        let base: UInt64 = symbols.address("page_offset_base").flatMap { try? view().walker.readU64($0, root: view().root) } ?? 0xffff_8880_0000_0000
        let dm = base &+ p
        var t = "PHYSICAL 0x\(String(p, radix: 16)) → direct map 0x\(String(dm, radix: 16))"
        var j: [String: Any] = ["paddr": p, "directMap": "0x" + String(dm, radix: 16)]
        if p < 0x4000_0000 { let kt = 0xffff_ffff_8000_0000 &+ p; t += ", kernel text 0x\(String(kt, radix: 16))"; j["kernelText"] = "0x" + String(kt, radix: 16) }
        if let m = try? machine(ofPfn: p >> 12) { t += "; machine 0x\(String((m.rawValue << 12) | (p & 0xfff), radix: 16))"; j["machine"] = (m.rawValue << 12) | (p & 0xfff) }
        return CommandOutput(text: t + "\n", json: j)
    }

    func rd(_ a: [String]) throws -> CommandOutput {
        var space = "v"
        var rest = a
        if let f = rest.first, f == "-p" || f == "-m" { space = String(f.dropFirst()); rest.removeFirst() }
        guard rest.count == 1 || rest.count == 2 else { throw AnalyzerError("usage: rd [-p|-m] ADDR [COUNT]") }
        let addr = try parseAddress(rest[0])
        let count = rest.count == 2 ? Int(parseNumberArg(rest[1]) ?? 0) : 1
        guard count >= 1, count <= 1 << 16 else { throw AnalyzerError("COUNT must be 1 … 65536") }
        var bytes = [UInt8](repeating: 0, count: count * 8)
        try bytes.withUnsafeMutableBytes { buf in
            switch space {
            case "m": try memory.read(MachAddr(addr), into: buf)
            case "p":
                var done = 0
                while done < buf.count {
                    let pa = addr &+ UInt64(done)
                    let n = min(buf.count - done, Int(4096 - (pa & 0xfff)))
                    let m = try machine(ofPfn: pa >> 12)
                    try memory.read(MachAddr((m.rawValue << 12) | (pa & 0xfff)), into: UnsafeMutableRawBufferPointer(rebasing: buf[done..<done + n]))
                    done += n
                }
            default:
                let v = try view()
                try v.walker.read(KVAddr(addr), root: v.root, into: buf)
            }
        }
        var t = ""
        var words: [String] = []
        for line in stride(from: 0, to: bytes.count, by: 16) {
            let chunk = Array(bytes[line..<min(line + 16, bytes.count)])
            var ws: [String] = []
            for w in stride(from: 0, to: chunk.count, by: 8) {
                let v = (0..<8).reduce(UInt64(0)) { $0 | UInt64(chunk[w + $1]) << (8 * UInt64($1)) }
                ws.append(String(format: "%016llx", v)); words.append("0x" + String(v, radix: 16))
            }
            let ascii = String(chunk.map { (0x20..<0x7f).contains($0) ? Character(UnicodeScalar($0)) : "." })
            t += String(format: "%016llx:  ", addr &+ UInt64(line)) + ws.joined(separator: " ").padding(toLength: 34, withPad: " ", startingAt: 0) + "  " + ascii + "\n"
        }
        return CommandOutput(text: t, json: ["address": "0x" + String(addr, radix: 16), "space": space == "v" ? "kvaddr" : (space == "p" ? "physical" : "machine"), "words": words, "hex": bytes.map { String(format: "%02x", $0) }.joined()])
    }

    func sym(_ a: [String]) throws -> CommandOutput {
        guard a.count == 1 else { throw AnalyzerError("usage: sym NAME|ADDR") }
        if let v = parseNumberArg(a[0]) {
            guard let s = symbols.symbol(at: KVAddr(v)) else { throw AnalyzerError("no symbol at or below 0x\(String(v, radix: 16))") }
            return CommandOutput(text: "0x\(String(v, radix: 16)) = \(s.name)\(s.offset > 0 ? "+0x" + String(s.offset, radix: 16) : "")\n", json: ["address": v, "symbol": s.name, "offset": s.offset])
        }
        guard let addr = symbols.address(a[0]) else { throw AnalyzerError("symbol \(a[0]) not found") }
        return CommandOutput(text: "\(addr) \(a[0])  (\(KernelRegion.of(addr).rawValue))\n", json: ["symbol": a[0], "address": addr.rawValue])
    }

    func banner() throws -> CommandOutput {
        let v = try view()
        let a = try v.symbol("linux_banner")
        let b = try v.walker.readBytes(a, root: v.root, count: 512)
        let s = String(decoding: b.prefix { $0 != 0 }, as: UTF8.self)
        return CommandOutput(text: s.hasSuffix("\n") ? s : s + "\n", json: ["banner": s.trimmingCharacters(in: .newlines)])
    }

    func mod() throws -> CommandOutput {
        let v = try view()
        let head = try v.symbol("modules")
        let ml = options.moduleLayout
        var t = "      MODULE        NAME                      BASE              SIZE\n"
        var j: [[String: Any]] = []
        var node = try v.walker.readU64(head, root: v.root)
        var seen = Set<UInt64>()
        while node != head.rawValue {
            guard seen.insert(node).inserted, seen.count <= 65536 else { throw AnalyzerError("the modules list loops at 0x\(String(node, radix: 16))") }
            let m = node &- ml.list
            let nameBytes = try v.walker.readBytes(KVAddr(m &+ ml.name), root: v.root, count: ml.nameLength)
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            let base = try v.walker.readU64(KVAddr(m &+ ml.coreBase), root: v.root)
            let size = try v.walker.readU64(KVAddr(m &+ ml.coreSize), root: v.root) & 0xffff_ffff
            t += "  " + String(format: "%016llx", m) + "  " + name.padding(toLength: max(24, name.count), withPad: " ", startingAt: 0) + "  " + String(format: "%016llx  %llu", base, size) + "\n"
            j.append(["module": "0x" + String(m, radix: 16), "name": name, "base": "0x" + String(base, radix: 16), "size": size])
            node = try v.walker.readU64(KVAddr(node), root: v.root)
        }
        return CommandOutput(text: t, json: j)
    }

    /// Validate the note (Spec §8), then compare it with the dump's own tables.
    func check() throws -> CommandOutput {
        var t = ""
        var ok = true
        var j: [String: Any] = [:]
        guard let n = try dump.p2mNote() else { throw AnalyzerError("\(dump.path): no p2mnote note to check") }
        let dec: DecodedP2MNote
        do {
            dec = try P2MNote.decode(descriptor: n.desc)
            t += "format:      OK (Spec v\(dec.header.versionMajor).\(dec.header.versionMinor), every decoder rule holds): \(dec.header.nrPfns) pfns, \(dec.header.nrRecords) records\n"
            j["format"] = "ok"
        } catch let e as P2MFormatError {
            return CommandOutput(text: "format:      INVALID: \(e)\n", json: ["format": "invalid", "rule": e.rule, "error": e.description], exitCode: 2)
        }
        let blind = !dec.header.identityKnown
        // The guest's own linear list, through the machine walk.
        do {
            let v = try view()
            let (va, size) = try v.linearList()
            let c = CompareSink(map: dec.map, identityBlind: blind)
            try LinearListReader.read(walker: v.walker, root: v.root, vaddr: va, size: size, shared: try v.sharedFrames(), sink: c)
            let sizeOK = size == dec.header.nrPfns
            if c.differenceCount == 0 && sizeOK { t += "linear list: agrees (\(size) entries at \(va))\n" }
            else {
                ok = false
                t += "linear list: DIFFERS: \(c.differenceCount) entries\(sizeOK ? "" : ", size \(size) vs note \(dec.header.nrPfns)")\n"
                for d in c.differences { t += "             pfn 0x\(String(d.pfn, radix: 16)): note \(P2MEntry(raw: d.expected)), memory \(P2MEntry(raw: d.found))\n" }
            }
            j["linearList"] = ["differences": c.differenceCount, "first": c.differences.map { $0.pfn }]
        } catch {
            t += "linear list: not compared (\(error))\n"
            j["linearList"] = ["skipped": "\(error)"]
        }
        if let f = options.p2mMFN.map(MFN.init) ?? dump.crashInfo?.frameListListMFN, dec.header.nrPfns <= 1 << 27 {
            let c = CompareSink(map: dec.map, identityBlind: true)
            do {
                try FrameTreeReader.read(memory: memory, fll: f, size: dec.header.nrPfns, sink: c)
                if c.differenceCount == 0 { t += "frame tree:  agrees (root mfn \(f); identity read as missing there)\n" }
                else {
                    ok = false
                    t += "frame tree:  DIFFERS: \(c.differenceCount) entries\n"
                    for d in c.differences { t += "             pfn 0x\(String(d.pfn, radix: 16)): note \(P2MEntry(raw: d.expected)), tree \(P2MEntry(raw: d.found))\n" }
                }
                j["frameTree"] = ["differences": c.differenceCount, "first": c.differences.map { $0.pfn }]
            } catch {
                ok = false
                t += "frame tree:  unreadable: \(error)\n"
                j["frameTree"] = ["error": "\(error)"]
            }
        }
        if let x = memory as? XenCoreMemory {
            let c = CompareSink(map: dec.map, identityBlind: true)
            try Emitter.streamXenP2M(x, size: dec.header.nrPfns, sink: c)
            // .xen_p2m leaves out every pfn without a plain mfn: only its listed pairs count.
            let listedDiffs = c.differences.filter { $0.found != .max }
            if listedDiffs.isEmpty { t += ".xen_p2m:    agrees on every listed pfn\n" } else {
                ok = false
                t += ".xen_p2m:    DIFFERS\n"
                for d in listedDiffs { t += "             pfn 0x\(String(d.pfn, radix: 16)): note \(P2MEntry(raw: d.expected)), .xen_p2m \(P2MEntry(raw: d.found))\n" }
            }
        }
        t += ok ? "result:      OK\n" : "result:      MISMATCH\n"
        j["ok"] = ok
        return CommandOutput(text: t, json: j, exitCode: ok ? 0 : 2)
    }
}
