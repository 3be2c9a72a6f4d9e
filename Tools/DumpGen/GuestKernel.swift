// The guest kernel's memory as a Linux ≥ 3.19 PV kernel leaves it: page tables holding MFNs,
// kernel text/data at __START_KERNEL_map, the direct map, the linear p2m list in vmalloc
// space with shared p2m_missing / p2m_identity pages (and PMD-level shared page tables), the
// 3-level frame-list tree, module space with a `modules` list, and kernel strings.
//
// Everything is kept per pfn (pseudo-physical); the writers place pages in machine memory
// (kdump vmcore) or in `.xen_pages` (xl dump-core) through the layout.
import Foundation
import P2MFormat

public struct KernelOptions: Sendable {
    public var moduleBase: UInt64 = LinuxX86_64.modulesOld
    public var moduleCount: Int = 6
    public var release: String = "6.1.0-56-amd64"
    public var version: String = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-08-01)"
    public var moduleLayout: ModuleStructLayout = .linux61
    /// Pages of guest RAM mapped by the direct map (the generator caps it for huge guests).
    public var directMapLimitPages: UInt64 = 1 << 22     // 16 GiB
    public var sampleCount: Int = 32
    public init() {}
}

public struct ModuleInfo: Codable, Sendable, Equatable {
    public var name: String
    public var structAddress: UInt64
    public var base: UInt64
    public var size: UInt64
}

public struct Sample: Codable, Sendable {
    public var vaddr: UInt64
    public var pfn: UInt64
    public var mfn: UInt64
    public var bytes: String          // hex
    public var what: String
}

/// Kernel pfns (the image at 16 MiB).
enum KPfn {
    static let text: UInt64 = 0x1000
    static let banner: UInt64 = 0x1800
    static let uts: UInt64 = 0x1801
    static let vars: UInt64 = 0x1802
    static let initTopPgt: UInt64 = 0x1c00
    /// The .bss page holding arch/x86/xen/p2m.c's pointer variables (`static unsigned long
    /// *p2m_missing;` and its siblings). The pages they point at are allocated elsewhere
    /// (alloc_p2m_page → memblock_alloc), as on a real kernel: System.map names the variables,
    /// never the pages.
    static let p2mPointers: UInt64 = 0x1d00
    static let imageEnd: UInt64 = 0x2000
    static let allocStart: UInt64 = 0x4000
}

/// Offsets of the pointer variables inside the `p2mPointers` page (the order of their
/// declarations in Linux 6.1's arch/x86/xen/p2m.c).
enum KP2MVar {
    static let midMissingMfn: UInt64 = 0x00
    static let topMfn: UInt64 = 0x08
    static let topMfnP: UInt64 = 0x10
    static let missing: UInt64 = 0x18
    static let identity: UInt64 = 0x20
    static let missingPte: UInt64 = 0x28
    static let identityPte: UInt64 = 0x30
}

/// The pages the p2m pointer variables point at, by pfn.
public struct SharedP2MPages: Sendable {
    public var missing: UInt64
    public var identity: UInt64
    public var missingPte: UInt64
    public var identityPte: UInt64
    public var midMissingMfn: UInt64
    public var topMfn: UInt64
}

/// Offsets of the kernel variables inside the `vars` page.
enum KVar {
    static let xenP2MAddr: UInt64 = 0x00
    static let xenP2MSize: UInt64 = 0x08
    static let xenMaxP2MPfn: UInt64 = 0x10
    static let maxPfn: UInt64 = 0x18
    static let pageOffsetBase: UInt64 = 0x20
    static let vmallocBase: UInt64 = 0x28
    static let vmemmapBase: UInt64 = 0x30
    static let modules: UInt64 = 0x40          // struct list_head
    static let xenStartInfo: UInt64 = 0x50
}

public final class GuestKernel {
    public let layout: P2MLayout
    public let options: KernelOptions
    public let ramPages: UInt64
    /// Content pages by pfn.
    var pages: [UInt64: [UInt8]] = [:]
    /// Private pages of the linear p2m list: pfn → list page index (written from the layout).
    var listPages: [(pfn: UInt64, index: UInt64)] = []
    private var nextAlloc: UInt64 = KPfn.allocStart
    public private(set) var symbols: [(name: String, type: Character, addr: UInt64)] = []
    public private(set) var modules: [ModuleInfo] = []
    public private(set) var samples: [Sample] = []
    /// Module-space virtual page → pfn (to place module bytes).
    private var moduleVPages: [UInt64: UInt64] = [:]
    public let listVAddr: UInt64 = LinuxX86_64.vmallocBase
    public private(set) var hasFrameTree = false
    var rng: SplitMix64

    public var pml4Pfn: UInt64 { KPfn.initTopPgt }
    /// Allocated in `build()` before anything reads them.
    public private(set) var shared = SharedP2MPages(missing: 0, identity: 0, missingPte: 0, identityPte: 0, midMissingMfn: 0, topMfn: 0)
    public var p2mMissingPfn: UInt64 { shared.missing }
    public var p2mIdentityPfn: UInt64 { shared.identity }
    public var frameTreeTopPfn: UInt64 { shared.topMfn }

    public init(layout: P2MLayout, ramPages: UInt64, options: KernelOptions, seed: UInt64) throws {
        self.layout = layout
        self.options = options
        self.ramPages = ramPages
        self.rng = SplitMix64(seed: seed ^ 0x6b65726e656c)
        for p in [KPfn.text, KPfn.vars, KPfn.initTopPgt, KPfn.p2mPointers] where mfn(p) == nil {
            throw GenError.parameter("pfn 0x\(String(p, radix: 16)) of the kernel image has no machine frame in this layout (guest too small?)")
        }
        try build()
    }

    /// The machine frame of a pfn, when it has one (class MFN).
    public func mfn(_ pfn: UInt64) -> UInt64? {
        let e = layout.entry(at: pfn)
        return e.kind == .mfn ? e.raw : nil
    }

    private func mustMfn(_ pfn: UInt64) throws -> UInt64 {
        guard let m = mfn(pfn) else { throw GenError.parameter("pfn 0x\(String(pfn, radix: 16)) has no machine frame") }
        return m
    }

    /// Next free pfn backed by a machine frame.
    func allocPfn() throws -> UInt64 {
        while true {
            let p = nextAlloc
            nextAlloc += 1
            guard p < layout.nrPfns else { throw GenError.parameter("guest RAM exhausted while allocating kernel pages") }
            if mfn(p) != nil { return p }
        }
    }

    func page(_ pfn: UInt64) -> [UInt8] { pages[pfn] ?? [UInt8](repeating: 0, count: 4096) }

    func write(pfn: UInt64, offset: Int, _ bytes: [UInt8]) {
        var pg = page(pfn)
        pg.replaceSubrange(offset..<offset + bytes.count, with: bytes)
        pages[pfn] = pg
    }

    func write64(pfn: UInt64, offset: Int, _ v: UInt64) {
        write(pfn: pfn, offset: offset, withUnsafeBytes(of: v.littleEndian) { Array($0) })
    }

    // MARK: page tables (entries hold MFNs)

    private func index(_ va: UInt64, _ level: Int) -> Int { Int((va >> (12 + 9 * UInt64(level))) & 511) }
    private func entry(_ table: UInt64, _ i: Int) -> UInt64 {
        guard let pg = pages[table] else { return 0 }
        return pg.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) }
    }
    /// mfn → pfn for the tables we allocated (tables are reached by MFN in entries).
    private var tableByMfn: [UInt64: UInt64] = [:]

    private func child(_ table: UInt64, _ i: Int) throws -> UInt64 {
        let e = entry(table, i)
        if e & LinuxX86_64.present != 0 {
            let m = (e & 0x000f_ffff_ffff_f000) >> 12
            guard let p = tableByMfn[m] else { throw GenError.parameter("shared table reached while mapping") }
            return p
        }
        let p = try allocPfn()
        let m = try mustMfn(p)
        tableByMfn[m] = p
        pages[p] = [UInt8](repeating: 0, count: 4096)
        write64(pfn: table, offset: i * 8, (m << 12) | LinuxX86_64.tableFlags)
        return p
    }

    /// Map one 4 KiB page at `va` to machine frame `targetMfn`.
    func map(_ va: UInt64, mfn targetMfn: UInt64, flags: UInt64 = LinuxX86_64.dataFlags) throws {
        let pud = try child(KPfn.initTopPgt, index(va, 3))
        let pmd = try child(pud, index(va, 2))
        let pt = try child(pmd, index(va, 1))
        write64(pfn: pt, offset: index(va, 0) * 8, (targetMfn << 12) | flags)
    }

    /// Point the PMD entry covering `va` at an existing page-table page (shared p2m ptes).
    func mapPMD(_ va: UInt64, tableMfn: UInt64) throws {
        let pud = try child(KPfn.initTopPgt, index(va, 3))
        let pmd = try child(pud, index(va, 2))
        write64(pfn: pmd, offset: index(va, 1) * 8, (tableMfn << 12) | (LinuxX86_64.tableFlags & ~LinuxX86_64.rw))
    }

    // MARK: the build

    private func kva(_ pfn: UInt64, _ off: UInt64 = 0) -> UInt64 { LinuxX86_64.startKernelMap + (pfn << 12) + off }

    private func build() throws {
        pages[KPfn.initTopPgt] = [UInt8](repeating: 0, count: 4096)
        tableByMfn[try mustMfn(KPfn.initTopPgt)] = KPfn.initTopPgt
        // Kernel image: map [0, imageEnd) at __START_KERNEL_map.
        for p in 0..<KPfn.imageEnd {
            if let m = mfn(p) { try map(kva(p), mfn: m, flags: p < KPfn.banner ? LinuxX86_64.present | LinuxX86_64.accessed | LinuxX86_64.global : LinuxX86_64.dataFlags) }
        }
        write(pfn: KPfn.text, offset: 0, Array("p2mnote synthetic kernel text".utf8))
        // Direct map of guest RAM.
        let dmLimit = min(layout.nrPfns, options.directMapLimitPages)
        var p: UInt64 = 0
        while p < dmLimit {
            if let m = mfn(p) { try map(LinuxX86_64.pageOffsetBase + (p << 12), mfn: m) }
            p += 1
        }
        try buildStrings()
        try allocateSharedP2MPages()
        try buildP2MList()
        try buildFrameTree()
        try buildModules()
        try buildVariables()
        buildSymbols()
        try buildSamples()
    }

    /// Allocate the shared p2m pages and point the .bss variables at them through the direct
    /// map (alloc_p2m_page returns a direct-map address), as xen_rebuild_p2m_list and
    /// xen_build_mfn_list_list do.
    private func allocateSharedP2MPages() throws {
        shared = SharedP2MPages(missing: try allocPfn(), identity: try allocPfn(), missingPte: try allocPfn(),
                                identityPte: try allocPfn(), midMissingMfn: try allocPfn(), topMfn: try allocPfn())
        guard [shared.missing, shared.identity, shared.missingPte, shared.identityPte, shared.midMissingMfn, shared.topMfn]
            .allSatisfy({ $0 < min(layout.nrPfns, options.directMapLimitPages) }) else {
            throw GenError.parameter("shared p2m pages fall outside the direct map")
        }
        func dm(_ pfn: UInt64) -> UInt64 { LinuxX86_64.pageOffsetBase + (pfn << 12) }
        let v = KPfn.p2mPointers
        write64(pfn: v, offset: Int(KP2MVar.midMissingMfn), dm(shared.midMissingMfn))
        write64(pfn: v, offset: Int(KP2MVar.topMfn), dm(shared.topMfn))
        write64(pfn: v, offset: Int(KP2MVar.missing), dm(shared.missing))
        write64(pfn: v, offset: Int(KP2MVar.identity), dm(shared.identity))
        write64(pfn: v, offset: Int(KP2MVar.missingPte), dm(shared.missingPte))
        write64(pfn: v, offset: Int(KP2MVar.identityPte), dm(shared.identityPte))
    }

    private func buildStrings() throws {
        let banner = "Linux version \(options.release) (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) \(options.version)\n"
        write(pfn: KPfn.banner, offset: 0, Array(banner.utf8) + [0])
        // init_uts_ns: struct new_utsname first (6 × 65 chars).
        let fields = ["Linux", "dom0", options.release, options.version, "x86_64", "(none)"]
        for (i, f) in fields.enumerated() { write(pfn: KPfn.uts, offset: i * 65, Array(f.utf8.prefix(64)) + [0]) }
    }

    public var bannerString: String {
        let pg = page(KPfn.banner)
        return String(decoding: pg.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Classify list page k: 0 missing, 1 identity, 2 private.
    private func classify(listPage k: UInt64, buffer: UnsafeMutableBufferPointer<UInt64>) -> Int {
        layout.fill(from: k * 512, into: buffer)
        var allMissing = true, allIdentity = true
        for i in 0..<512 {
            let e = buffer[i]
            if e != .max { allMissing = false }
            if e != (k * 512 + UInt64(i)) | P2MEntry.identityBit { allIdentity = false }
            if !allMissing && !allIdentity { return 2 }
        }
        return allMissing ? 0 : 1
    }

    /// Kind of each list page: 0 missing, 1 identity, 2 private (kept for the frame tree).
    private var listKinds: [UInt8] = []
    private var listPfnOfPage: [UInt64: UInt64] = [:]

    private func buildP2MList() throws {
        let nrListPages = (layout.nrPfns * 8 + 4095) / 4096
        // Pages beyond the last non-INVALID segment are all missing: skip classifying them.
        var lastUsed: UInt64 = 0
        var pos: UInt64 = 0
        for s in layout.segments { if case .invalid = s {} else { lastUsed = pos + s.count }; pos += s.count }
        let mMissing = try mustMfn(shared.missing), mIdentity = try mustMfn(shared.identity)
        let mMissingPte = try mustMfn(shared.missingPte), mIdentityPte = try mustMfn(shared.identityPte)
        // Both shared pages read as all ~0 (p2m_init); the shared ptes map them read-only 512 times.
        pages[shared.missing] = [UInt8](repeating: 0xff, count: 4096)
        pages[shared.identity] = [UInt8](repeating: 0xff, count: 4096)
        for i in 0..<512 {
            write64(pfn: shared.missingPte, offset: i * 8, (mMissing << 12) | LinuxX86_64.roFlags)
            write64(pfn: shared.identityPte, offset: i * 8, (mIdentity << 12) | LinuxX86_64.roFlags)
        }
        listKinds = [UInt8](repeating: 0, count: Int(nrListPages))
        var buf = [UInt64](repeating: 0, count: 512)
        try buf.withUnsafeMutableBufferPointer { b in
            var k: UInt64 = 0
            while k < nrListPages {
                let groupEnd = min(nrListPages, (k / 512 + 1) * 512)
                if k * 512 >= lastUsed && k % 512 == 0 && groupEnd - k == 512 {
                    // A whole 2 MiB of the list is missing: share p2m_missing_pte at PMD level.
                    try mapPMD(listVAddr + k * 4096, tableMfn: mMissingPte)
                    k = groupEnd
                    continue
                }
                var kinds: [Int] = []
                for j in k..<groupEnd { kinds.append(j * 512 >= lastUsed ? 0 : classify(listPage: j, buffer: b)) }
                if groupEnd - k == 512 && kinds.allSatisfy({ $0 == 1 }) {
                    try mapPMD(listVAddr + k * 4096, tableMfn: mIdentityPte)
                    for j in k..<groupEnd { listKinds[Int(j)] = 1 }
                    k = groupEnd
                    continue
                }
                for (o, kind) in kinds.enumerated() {
                    let j = k + UInt64(o)
                    listKinds[Int(j)] = UInt8(kind)
                    let va = listVAddr + j * 4096
                    switch kind {
                    case 0: try map(va, mfn: mMissing, flags: LinuxX86_64.roFlags)
                    case 1: try map(va, mfn: mIdentity, flags: LinuxX86_64.roFlags)
                    default:
                        let pfn = try allocPfn()
                        listPages.append((pfn, j))
                        listPfnOfPage[j] = pfn
                        try map(va, mfn: try mustMfn(pfn))
                    }
                }
                k = groupEnd
            }
        }
    }

    /// The 3-level mfn tree Linux still publishes (p2m_top_mfn → mid pages → leaf frames).
    /// Identity leaves are recorded with the identity page's frame, so through the tree they
    /// read like missing ones (Linux arch/x86/xen/p2m.c: p2m_mid_identity_mfn is built from
    /// p2m_identity's frame, as p2m_mid_missing_mfn from p2m_missing's).
    private func buildFrameTree() throws {
        guard layout.nrPfns <= 1 << 27 else { return }   // beyond MAX_P2M_PFN: linear list only
        hasFrameTree = true
        let mMissing = try mustMfn(shared.missing), mIdentity = try mustMfn(shared.identity)
        let mMidMissing = try mustMfn(shared.midMissingMfn)
        for i in 0..<512 { write64(pfn: shared.midMissingMfn, offset: i * 8, mMissing) }
        for top in 0..<512 {
            let first = UInt64(top) * 512
            let pagesHere = (first..<first + 512).filter { Int($0) < listKinds.count }
            if pagesHere.allSatisfy({ listKinds[Int($0)] != 2 }) {
                write64(pfn: shared.topMfn, offset: top * 8, mMidMissing)
                continue
            }
            let mid = try allocPfn()
            pages[mid] = [UInt8](repeating: 0, count: 4096)
            for (i, j) in (first..<first + 512).enumerated() {
                let leaf: UInt64
                if Int(j) >= listKinds.count || listKinds[Int(j)] == 0 { leaf = mMissing }
                else if listKinds[Int(j)] == 1 { leaf = mIdentity }
                else { leaf = try mustMfn(listPfnOfPage[j] ?? 0) }
                write64(pfn: mid, offset: i * 8, leaf)
            }
            write64(pfn: shared.topMfn, offset: top * 8, try mustMfn(mid))
        }
    }

    private static let moduleNames = ["xen_blkback", "xen_netback", "ext4", "dm_mod", "virtio_blk", "crc32c_generic",
                                      "xen_gntdev", "mbcache", "jbd2", "loop", "fuse", "xen_evtchn"]

    private func buildModules() throws {
        let ml = options.moduleLayout
        var infos: [ModuleInfo] = []
        for i in 0..<options.moduleCount {
            let base = options.moduleBase + UInt64(i) * 0x18000
            let size: UInt64 = 0x10000 + (rng.below(8) << 12)
            // Map the module's pages (scattered pfns, like vmalloc'ed module memory).
            for off in stride(from: UInt64(0), to: size, by: 4096) {
                let pfn = try allocPfn()
                moduleVPages[base + off] = pfn
                try map(base + off, mfn: try mustMfn(pfn))
            }
            let name = GuestKernel.moduleNames[i % GuestKernel.moduleNames.count] + (i >= GuestKernel.moduleNames.count ? "\(i)" : "")
            infos.append(ModuleInfo(name: name, structAddress: base + 0xa040, base: base, size: size))
        }
        let head = kva(KPfn.vars, KVar.modules)
        for (i, m) in infos.enumerated() {
            let next = i + 1 < infos.count ? infos[i + 1].structAddress + ml.list : head
            let prev = i > 0 ? infos[i - 1].structAddress + ml.list : head
            try writeModuleBytes(m.structAddress + ml.state, u64le(0))
            try writeModuleBytes(m.structAddress + ml.list, u64le(next) + u64le(prev))
            try writeModuleBytes(m.structAddress + ml.name, Array(m.name.utf8) + [0])
            try writeModuleBytes(m.structAddress + ml.coreBase, u64le(m.base))
            try writeModuleBytes(m.structAddress + ml.coreSize, u32le(UInt32(m.size)))
        }
        let first = infos.first.map { $0.structAddress + ml.list } ?? head
        let last = infos.last.map { $0.structAddress + ml.list } ?? head
        write(pfn: KPfn.vars, offset: Int(KVar.modules), u64le(first) + u64le(last))
        modules = infos
    }

    private func writeModuleBytes(_ va: UInt64, _ bytes: [UInt8]) throws {
        guard let pfn = moduleVPages[va & ~4095] else { throw GenError.parameter("module address 0x\(String(va, radix: 16)) unmapped") }
        write(pfn: pfn, offset: Int(va & 4095), bytes)
    }

    private func buildVariables() throws {
        let v = KPfn.vars
        write64(pfn: v, offset: Int(KVar.xenP2MAddr), listVAddr)
        write64(pfn: v, offset: Int(KVar.xenP2MSize), layout.nrPfns)
        write64(pfn: v, offset: Int(KVar.xenMaxP2MPfn), layout.nrPfns)
        write64(pfn: v, offset: Int(KVar.maxPfn), ramPages)
        write64(pfn: v, offset: Int(KVar.pageOffsetBase), LinuxX86_64.pageOffsetBase)
        write64(pfn: v, offset: Int(KVar.vmallocBase), LinuxX86_64.vmallocBase)
        write64(pfn: v, offset: Int(KVar.vmemmapBase), LinuxX86_64.vmemmapBase)
        write64(pfn: v, offset: Int(KVar.xenStartInfo), kva(KPfn.vars, 0x800))
    }

    private func buildSymbols() {
        var s: [(String, Character, UInt64)] = [
            ("_text", "T", kva(KPfn.text)), ("_stext", "T", kva(KPfn.text)),
            ("linux_banner", "R", kva(KPfn.banner)), ("init_uts_ns", "D", kva(KPfn.uts)),
            ("xen_p2m_addr", "D", kva(KPfn.vars, KVar.xenP2MAddr)), ("xen_p2m_size", "D", kva(KPfn.vars, KVar.xenP2MSize)),
            ("xen_max_p2m_pfn", "D", kva(KPfn.vars, KVar.xenMaxP2MPfn)), ("max_pfn", "B", kva(KPfn.vars, KVar.maxPfn)),
            ("page_offset_base", "D", kva(KPfn.vars, KVar.pageOffsetBase)), ("vmalloc_base", "D", kva(KPfn.vars, KVar.vmallocBase)),
            ("vmemmap_base", "D", kva(KPfn.vars, KVar.vmemmapBase)), ("modules", "D", kva(KPfn.vars, KVar.modules)),
            ("xen_start_info", "D", kva(KPfn.vars, KVar.xenStartInfo)),
            ("init_top_pgt", "D", kva(KPfn.initTopPgt)), ("swapper_pg_dir", "D", kva(KPfn.initTopPgt)),
            ("p2m_mid_missing_mfn", "b", kva(KPfn.p2mPointers, KP2MVar.midMissingMfn)),
            ("p2m_top_mfn", "b", kva(KPfn.p2mPointers, KP2MVar.topMfn)), ("p2m_top_mfn_p", "b", kva(KPfn.p2mPointers, KP2MVar.topMfnP)),
            ("p2m_missing", "b", kva(KPfn.p2mPointers, KP2MVar.missing)), ("p2m_identity", "b", kva(KPfn.p2mPointers, KP2MVar.identity)),
            ("p2m_missing_pte", "b", kva(KPfn.p2mPointers, KP2MVar.missingPte)), ("p2m_identity_pte", "b", kva(KPfn.p2mPointers, KP2MVar.identityPte)),
            ("_end", "B", kva(KPfn.imageEnd)),
        ]
        s.sort { $0.2 < $1.2 }
        symbols = s.map { (name: $0.0, type: $0.1, addr: $0.2) }
    }

    public func symbol(_ name: String) -> UInt64? { symbols.first { $0.name == name }?.addr }

    public var systemMap: String {
        symbols.map { String(format: "%016llx %@ %@", $0.addr, String($0.type), $0.name) }.joined(separator: "\n") + "\n"
    }

    /// Stamp a few direct-mapped pages and record samples (with the kernel data's own addresses).
    private func buildSamples() throws {
        var out: [Sample] = []
        func sample(_ va: UInt64, pfn: UInt64, off: Int, count: Int, _ what: String, bytes: [UInt8]? = nil) throws {
            let b = bytes ?? Array(page(pfn)[off..<off + count])
            out.append(Sample(vaddr: va, pfn: pfn, mfn: try mustMfn(pfn), bytes: b.map { String(format: "%02x", $0) }.joined(), what: what))
        }
        try sample(kva(KPfn.banner), pfn: KPfn.banner, off: 0, count: 32, "linux_banner")
        try sample(kva(KPfn.uts, 130), pfn: KPfn.uts, off: 130, count: 16, "init_uts_ns.name.release")
        for m in modules {
            let va = m.structAddress + options.moduleLayout.name
            guard let pfn = moduleVPages[va & ~4095] else { continue }
            try sample(va, pfn: pfn, off: Int(va & 4095), count: 16, "module name \(m.name)")
        }
        if let (pfn, idx) = listPages.first {
            var e = [UInt64](repeating: 0, count: 4)
            e.withUnsafeMutableBufferPointer { layout.fill(from: idx * 512, into: $0) }
            let b = e.flatMap { u64le($0) }
            out.append(Sample(vaddr: listVAddr + idx * 4096, pfn: pfn, mfn: try mustMfn(pfn),
                              bytes: b.map { String(format: "%02x", $0) }.joined(), what: "p2m list page \(idx)"))
        }
        let dmLimit = min(layout.nrPfns, options.directMapLimitPages)
        var tries = 0
        let listPfns = Set(listPages.map(\.pfn))
        while out.count < options.sampleCount + 4 && tries < 100_000 {
            tries += 1
            let p = rng.below(dmLimit)
            guard let m = mfn(p), pages[p] == nil, !listPfns.contains(p), p >= KPfn.imageEnd else { continue }
            let stamp = Array("p2mnote sample pfn=\(String(p, radix: 16)) mfn=\(String(m, radix: 16))".utf8)
            write(pfn: p, offset: 0x100, stamp)
            try sample(LinuxX86_64.pageOffsetBase + (p << 12) + 0x100, pfn: p, off: 0x100, count: min(24, stamp.count), "direct map stamp")
        }
        samples = out
    }

    /// Bytes of every content page, by pfn (the list pages are generated from the layout).
    public func forEachPage(_ body: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        for (pfn, pg) in pages.sorted(by: { $0.key < $1.key }) { try pg.withUnsafeBytes { try body(pfn, $0) } }
        var buf = [UInt64](repeating: 0, count: 512)
        for (pfn, idx) in listPages {
            try buf.withUnsafeMutableBufferPointer { b in
                layout.fill(from: idx * 512, into: b)
                try body(pfn, UnsafeRawBufferPointer(b))
            }
        }
    }
}

func u64le(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
func u32le(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
func u16le(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
