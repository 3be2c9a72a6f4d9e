// The reader core: one guest of one dump, opened once. Its symbols (checked against the dump),
// its p2m (the note first, else the dump's own tables, through the one resolver), its kernel's
// page tables, and reads in the three address spaces. The tools (P2MTools: command line,
// prompt) and the C library (LibP2MNote) both sit on this; neither imports the other.
//
// Kernel virtual reads go through the machine-only page walk, so they never need the p2m; the
// p2m serves pseudo-physical reads, pfn display, m2p and `check`.
import DumpIO
import Foundation
import P2MFormat
import Translation

/// What a session opens: the dump, which guest of it, and where that guest's symbols and
/// tables are. Addresses and frames are typed (MachAddr, MFN), never raw numbers.
public struct GuestOptions: Sendable {
    /// The dump's path.
    public var dump: String
    /// The guest (--domain), its symbols and the tables to use.
    public var guest = GuestSelection()
    /// struct module's offsets as the user gives them (--module-offsets); nil: from the
    /// kernel's BTF in the dump, else a table of verified builds (GuestSession.moduleLayout).
    public var moduleOffsets: ModuleOffsets?
    /// Options for `dump` with no symbols, the dump's own guest, the note first.
    public init(dump: String) { self.dump = dump }
}

/// The three address spaces a read names (the C library's P2MNOTE_KVIRT, _PPHYS, _MACHINE).
public enum AddressSpace: String, Sendable, Codable, CaseIterable {
    /// Kernel virtual: translated by walking the guest's page tables in machine memory.
    case kernelVirtual = "kvirt"
    /// Pseudo-physical: translated through the p2m.
    case pseudoPhysical = "pphys"
    /// Machine: the dump's own addresses.
    case machine
}

/// A read that failed, typed so that a front end can tell the caller why (the C library
/// turns each kind into its status).
public struct ReadError: Error, CustomStringConvertible {
    /// unmapped: no translation; beyondP2M: past the p2m's end; notInDump: the frame is not in
    /// the dump (excluded or outside every segment); pastEnd: the range runs past 2^64.
    public enum Kind: Sendable { case unmapped, beyondP2M, notInDump, pastEnd }
    /// Why the read failed.
    public let kind: Kind
    /// What failed, with the file and the address.
    public let message: String
    public var description: String { message }
}

/// One guest of one dump, opened once.
public final class GuestSession {
    /// What the session was opened with.
    public let options: GuestOptions
    /// The dump, opened once.
    public let dump: DumpContainer
    /// The guest kernel's symbols (System.map, vmlinux, VMCOREINFO), KASLR applied.
    public let symbols: SymbolTable
    /// Every source of the guest's p2m and page-table root, in the order they are trusted.
    public let resolver: P2MResolver
    private var p2mCache: (map: P2MMap, source: P2MTableSource)?
    private var pseudoCache: PseudoPhysicalMemory?
    var registersCache: Result<[GuestRegisters], Error>?
    private var moduleLayoutCache: Result<ModuleLayout, Error>?

    /// Open the dump (once) and the guest's symbols; with a domain, find it in Xen's tables.
    /// Throws the dump's own error (a file that cannot be read, or is no dump) as it is.
    public convenience init(_ o: GuestOptions) throws {
        try self.init(dump: try openDump(path: o.dump), options: o)
    }

    /// A session over a dump already open (the C library opens the file once and looks at it
    /// before it knows which guest is asked for).
    public init(dump: DumpContainer, options o: GuestOptions) throws {
        options = o
        self.dump = dump
        var symbols = try SymbolTable.forDump(systemMap: o.guest.systemMap, vmlinux: o.guest.vmlinux, dump: dump)
        if o.guest.systemMap == nil, o.guest.vmlinux == nil, symbols.address("linux_banner") == nil,
           let k = Self.kallsymsSymbols(dump: dump, base: symbols, options: o.guest) {
            symbols = k.table; symbolsOrigin = k.origin
        }
        self.symbols = symbols
        resolver = P2MResolver(dump: dump, symbols: symbols, options: o.guest)
        if o.guest.domain != nil { _ = try resolver.domain() }
    }

    /// Where the symbols came from when neither a System.map nor a vmlinux was given and the
    /// guest's own kallsyms served (nil otherwise).
    public private(set) var symbolsOrigin: String?

    /// The guest's symbols from its own kallsyms tables, found through the VMCOREINFO text in its
    /// memory (Kallsyms); nil when the dump does not tell (a kernel before 6.0, the page not in
    /// the dump, tables that do not decode). The one that decodes and whose linux_banner carries
    /// the VMCOREINFO's release is taken.
    static func kallsymsSymbols(dump: DumpContainer, base: SymbolTable, options: GuestSelection) -> (table: SymbolTable, origin: String)? {
        guard let (map, _) = try? P2MResolver(dump: dump, symbols: base, options: options).resolve() else { return nil }
        for (pfn, info) in Kallsyms.vmcoreInfoPages(map: map, machine: dump.memory) {
            var withInfo = base
            withInfo.merge(SymbolTable.vmcoreInfo(info))
            guard let k = try? P2MResolver(dump: dump, symbols: withInfo, options: options).kernel(),
                  let table = try? Kallsyms.symbols(info, read: { try k.pageTables.readBytes(KVAddr(rawValue: $0), count: $1) }),
                  let banner = table.address("linux_banner"), let bytes = try? k.pageTables.readBytes(banner, count: 160),
                  let release = info.osRelease, KernelIdentity.osRelease(fromBanner: KernelIdentity.bannerText(bytes)) == release else { continue }
            var all = table            // the large table first: merge adds the few VMCOREINFO names to it
            all.merge(withInfo)
            return (all, "the kernel's kallsyms in the dump (its VMCOREINFO at pfn 0x\(String(pfn, radix: 16)), release \(release))")
        }
        return nil
    }

    /// Machine reads so far (tests count them to prove boundedness).
    public var machineReads: Int { dump.memory.readCount }

    /// The guest kernel, its symbols checked once against the dump: a System.map or vmlinux of
    /// another build put linux_banner where the dump holds something else, and banner printed
    /// that and exited 0. A vmlinux is judged by its build ID or banner (KernelIdentity), a
    /// System.map by the banner it points at.
    public func kernel() throws -> GuestKernel {
        let k: GuestKernel
        do { k = try resolver.kernel() } catch let e as TranslationError where e.kind == .mismatch {
            // The symbols map under no recorded root: name the build they come from.
            guard let v = options.guest.vmlinux, let image = try? vmlinuxImage() else { throw e }
            let what = [image.banner.map { "banner \"\($0)\"" }, image.buildID.map { "build ID \(KernelIdentity.hex($0))" }].compactMap { $0 }.joined(separator: ", ")
            throw TranslationError("\(v): not the kernel of \(dump.path): its symbols do not translate under any page-table root the dump records (the vmlinux has \(what.isEmpty ? "no banner or build ID" : what)); \(e.message)", kind: .mismatch)
        }
        if symbolsChecked == nil { symbolsChecked = Result { try checkSymbols(k) } }
        try symbolsChecked?.get()
        return k
    }
    private var symbolsChecked: Result<Void, Error>?

    /// The --vmlinux file's identity (banner at linux_banner's link address, build ID), read once
    /// for the symbol check, the mismatch message and the library's handle; nil without one.
    public func vmlinuxImage() throws -> VmlinuxImage? {
        guard let v = options.guest.vmlinux else { return nil }
        if imageResult == nil {
            let banner = symbols.address("linux_banner").map { $0.rawValue &- (dump.vmcoreInfo?.kernelOffset ?? 0) }
            imageResult = Result { try VmlinuxImage(path: v, bannerAddress: banner) }
        }
        return try imageResult?.get()
    }
    private var imageResult: Result<VmlinuxImage, Error>?

    /// Refuse another build's System.map or vmlinux before any command runs (any other reason
    /// the kernel cannot be read is left to the commands that need it, which say it).
    public func refuseForeignSymbols() throws {
        guard options.guest.systemMap != nil || options.guest.vmlinux != nil else { return }
        do { _ = try kernel() } catch let e as TranslationError where e.kind == .mismatch { throw e } catch {}
    }

    private func checkSymbols(_ k: GuestKernel) throws {
        let g = options.guest
        guard g.systemMap != nil || g.vmlinux != nil, let at = symbols.address("linux_banner") else { return }
        let source = [g.systemMap, g.vmlinux].compactMap { $0 }.joined(separator: " and ")
        let ownRelease = { self.dumpKernelRelease().map { "the dump's kernel is \($0) (the VMCOREINFO in its memory)" } ?? "the dump's kernel is another build" }
        if let image = try vmlinuxImage() {
            do { try KernelIdentity.check(image, against: k) } catch let e as TranslationError where e.kind == .mismatch {
                let theirs = image.banner.flatMap(KernelIdentity.osRelease(fromBanner:)).map { "Linux \($0) (its banner)" } ?? "another build"
                throw TranslationError("\(image.path) is \(theirs), \(ownRelease()): \(e.message)", kind: .mismatch)
            }
        }
        // Bytes that cannot be read (a page the dump lacks) blame the dump, not the map: the
        // commands that need them say so.
        guard let bytes = try? k.pageTables.readBytes(at, count: 160) else { return }
        let text = KernelIdentity.bannerText(bytes)
        guard text.hasPrefix("Linux version ") else {
            let shown = String(text.prefix(60).map { $0.isASCII && !$0.isNewline && $0 >= " " ? $0 : "." })
            throw TranslationError("\(source) is not this dump's kernel's (\(ownRelease())): its linux_banner, \(at), reads \"\(shown)\" in \(dump.path), not \"Linux version …\"; give the System.map or vmlinux of the kernel that crashed", kind: .mismatch)
        }
    }

    /// The release the dump's kernel records itself (OSRELEASE of the VMCOREINFO text in its own
    /// memory), for messages that name the dump's build beside another; nil when it cannot tell.
    public func dumpKernelRelease() -> String? {
        guard let (map, _) = try? p2m() else { return nil }
        return Kallsyms.vmcoreInfoPages(map: map, machine: dump.memory, limit: 1).first?.info.osRelease
    }

    /// The p2m in use, through the resolver (the note first), found once.
    public func p2m() throws -> (map: P2MMap, source: P2MTableSource) {
        if let c = p2mCache { return c }
        let r = try resolver.resolve()
        p2mCache = r
        return r
    }

    /// Pseudo-physical memory: machine memory seen through the p2m.
    public func pseudoPhysical() throws -> PseudoPhysicalMemory {
        if let p = pseudoCache { return p }
        let (m, s) = try p2m()
        let p = PseudoPhysicalMemory(map: m, machine: dump.memory, origin: s.location)
        pseudoCache = p
        return p
    }

    /// struct module's layout for this kernel: --module-offsets; else the --vmlinux's DWARF; else
    /// the kernel's own BTF in the dump; else a build whose layout was checked on a real dump of
    /// it. Never another build's offsets: without any of these the command says so and fails.
    public func moduleLayout() throws -> ModuleLayout {
        if let r = moduleLayoutCache { return try r.get() }
        let r = Result { () throws -> ModuleLayout in
            if let o = options.moduleOffsets { return ModuleLayout(o, source: "--module-offsets") }
            let k = try kernel()   // a vmlinux of another build is refused here, naming both
            if let v = options.guest.vmlinux {
                return try ModuleLayout(types: try DWARFTypes(path: v))
            }
            var why = "no __start_BTF/__stop_BTF symbols"
            if symbols.address("__start_BTF") != nil {
                do { return try ModuleLayout(types: try k.btf()) } catch { why = "\(error)" }
            }
            if let l = Self.verifiedModuleLayout(k) { return l }
            let release = k.release() ?? "an unknown release"
            throw TranslationError("\(dump.path): struct module's layout is not known for \(release) (\(why); not a build whose layout was checked on a real dump); pass --module-offsets list,name,core_base,core_size", kind: .noLayout)
        }
        moduleLayoutCache = r
        return try r.get()
    }

    /// Builds whose struct module layout was checked against their BTF on a real dump
    /// (LayoutTests): Debian 12's Linux 6.1.0-N-amd64 and Debian 13's 6.12.N+deb13-amd64.
    public static func verifiedModuleLayout(_ k: GuestKernel) -> ModuleLayout? {
        guard let r = k.release(), let banner = try? k.banner() else { return nil }
        if r.hasPrefix("6.1.0-"), r.hasSuffix("-amd64"), banner.contains("Debian 6.1.") {
            return ModuleLayout(ModuleOffsets(), source: "the layout of Debian 12's Linux 6.1.0-N-amd64 (checked against the BTF of a real dump of that build)")
        }
        // gdb's ptype of linux-image-6.12.118+deb13-amd64-dbg's vmlinux: list 0x8, name[56] 0x18,
        // mem[7] of struct module_memory (72 bytes: base 0, size 8) at 0x140.
        if r.hasPrefix("6.12."), r.hasSuffix("+deb13-amd64"), banner.contains("Debian 6.12.") {
            return ModuleLayout(list: 8, name: 24, nameLength: 56, memory: .regions(array: 0x140, stride: 72, count: 7, base: 0, size: 8),
                                source: "the layout of Debian 13's Linux 6.12.N+deb13-amd64 (checked against the BTF of a real dump of that build)")
        }
        return nil
    }

    /// A hex number (0x optional, as crash reads it), a symbol, or symbol+offset.
    public func parseAddress(_ s: String) throws -> UInt64 {
        if let v = parseHexArg(s) { return v }
        var name = Substring(s)
        var off: UInt64 = 0
        if let plus = s.firstIndex(of: "+"), let o = parseHexArg(String(s[s.index(after: plus)...])) {
            name = s[..<plus]; off = o
        }
        guard let a = symbols.address(String(name)) else {
            throw SessionError("\(s): not a hex number or a known symbol\(symbols.isEmpty ? " (no symbols: pass --system-map or --vmlinux)" : "")")
        }
        let (v, o) = a.rawValue.addingReportingOverflow(off)
        guard !o else { throw SessionError("\(s): past 2^64") }
        return v
    }

    /// The pfn whose p2m entry is `mfn`, with how it stands.
    public func pfn(ofMfn mfn: MFN) -> PfnOfMfn {
        guard let (map, _) = try? p2m() else { return PfnOfMfn(pfn: nil, status: .unknown, candidates: []) }
        switch map.m2p(mfn) {
        case .none: return PfnOfMfn(pfn: nil, status: .none, candidates: [])
        case .unique(let p): return PfnOfMfn(pfn: p, status: .unique, candidates: [p])
        case .ambiguous(let ps): return PfnOfMfn(pfn: nil, status: .ambiguous, candidates: ps)
        }
    }

    /// Read `buffer.count` bytes at `address` in `space`, page by page, so that a failure says
    /// which page; `done` counts the bytes read before it. Ctrl-C (Interrupt) is honoured before
    /// each page (a flag read: a slow disk or a network file must not hold the prompt).
    public func read(_ space: AddressSpace, at address: UInt64, into buffer: UnsafeMutableRawBufferPointer, done: inout Int) throws {
        let memory = dump.memory
        let path = dump.path
        func h(_ a: UInt64) -> String { "0x" + String(a, radix: 16) }
        // Each space is a translation to machine addresses; machine is the identity.
        let toMachine: (UInt64) throws -> MachAddr
        switch space {
        case .kernelVirtual:
            let tables = try kernel().pageTables
            toMachine = { a in
                do { return try tables.translate(KVAddr(rawValue: a)) } catch {
                    throw ReadError(kind: .unmapped, message: "\(path): kernel virtual address \(h(a)) does not translate: \(error)")
                }
            }
        case .pseudoPhysical:
            let pp = try pseudoPhysical()
            toMachine = { a in
                do { return try pp.translate(PhysAddr(rawValue: a)) } catch let e as TranslationError {
                    throw ReadError(kind: e.kind == .beyondTable ? .beyondP2M : .unmapped, message: "\(path): pseudo-physical address \(h(a)): \(e.message)")
                }
            }
        case .machine:
            toMachine = { MachAddr(rawValue: $0) }
        }
        let page = Int(PageGeometry.x86.size)
        while done < buffer.count {
            try Interrupt.check()
            let (a, over) = address.addingReportingOverflow(UInt64(done))
            guard !over else { throw ReadError(kind: .pastEnd, message: "read of \(buffer.count) bytes at \(h(address)) runs past 2^64") }
            let n = min(page - Int(a & PageGeometry.x86.mask), buffer.count - done)
            let machine = try toMachine(a)
            do { try memory.read(machine, into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + n])) } catch {
                let what = space == .machine ? "" : " (\(space == .kernelVirtual ? "kernel virtual" : "pseudo-physical") \(h(a)))"
                throw ReadError(kind: .notInDump, message: "machine address \(machine)\(what): \(error)")
            }
            done += n
        }
    }

    func output<R: TextResult>(_ command: String, _ r: R, lines: Bool = false) throws -> CommandOutput {
        let data = try (lines ? jsonLineEncoder : jsonEncoder).encode(Envelope(dump: dump.path, command: command, result: r))
        return CommandOutput(command: command, text: r.text, jsonData: data, exitCode: r.exitCode)
    }
}

/// The pfn whose p2m entry is an mfn: its value for JSON (a pfn, or nil), how it stands, with
/// every candidate, and the text.
public struct PfnOfMfn: Encodable, Sendable {
    /// How the pfns naming an mfn stand.
    public enum Status: String, Encodable, Sendable {
        /// One pfn maps it.
        case unique
        /// No pfn maps it.
        case none
        /// Several pfns map it (a shared frame, or a damaged p2m).
        case ambiguous
        /// No p2m to ask.
        case unknown
    }
    /// The one pfn (unique), else nil.
    public var pfn: PFN?
    public var status: Status
    /// Every pfn whose entry is the mfn.
    public var candidates: [PFN]
    /// "pfn 0x…", "pfn ambiguous (…)", "pfn none", "pfn ?".
    public var text: String {
        switch status {
        case .unique: return "pfn \(pfn.map(\.description) ?? "?")"
        case .ambiguous: return "pfn ambiguous (\(candidates.map(\.description).joined(separator: ", ")))"
        case .none: return "pfn none"
        case .unknown: return "pfn ?"
        }
    }
}
