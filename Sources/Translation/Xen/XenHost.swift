// A crashed Xen host's dump seen through Xen's own tables: its virtual address space (the idle
// page tables), the domain list, the frame table (who owns each machine frame) and the M2P
// (which pseudo-physical frame each machine frame is to its owner). Everything comes from
// VMCOREINFO_XEN and Xen's crash info note; no Xen debug symbols are needed.
//
// Facts, Xen 4.17 (xen/common/kexec.c, xen/arch/x86/machine_kexec.c, asm/config.h, asm/mm.h,
// public/xen.h, public/arch-x86/xen.h), checked on the real host dump made by Tools/real-dump:
//   - Xen's image: machine = va − XEN_VIRT_START + xen_phys_start; XEN_VIRT_START is the 1 GiB
//     slot holding SYMBOL(domain_list) (0xffff82d040000000 since 4.14), as makedumpfile finds it.
//     SYMBOL(pgd_l4) (= idle_pg_table) found that way roots the walk for everything else.
//   - SYMBOL(frame_table) is the address of a pointer to the frame table (0xffff82e000000000);
//     frame_table[pdx] is a page_info of SIZE(page_info) bytes: count_info at OFFSET(count_info)
//     (bit 63 PGC_allocated, 62 PGC_xen_heap, bits 58–59 the state, 0 = in use; on a free page
//     bit 63 means need-scrub and the owner field holds the buddy order), the owner at
//     OFFSET(page_info._domain) as the pdx of the owning struct domain's direct-map address.
//   - The read-write M2P at 0xffff828000000000: one 8-byte gpfn per machine frame, indexed by mfn;
//     ~0 is INVALID, ~0 − 1 SHARED.
//   - The direct map at 0xffff830000000000, indexed by pdx like the frame table. PDX compression
//     (xen/common/pdx.c: one run of address bits that no RAM uses, squeezed out) is set at boot
//     from the SRAT and is not in VMCOREINFO_XEN: it is inferred from Xen's own direct-map page
//     tables instead — every leaf maps a pdx range onto a machine range — by finding the one
//     (bottom bits, hole bits) pair under which pfn_to_pdx maps every leaf's first and last frame
//     where the leaf says (pdx.c's pfn_to_pdx: (p & bottom) | ((p & top) >> hole)). The M2P
//     stays indexed by mfn.
//   - A domain's shared_info is a Xen-heap page it owns; its arch part (offset 3088 on x86_64,
//     public ABI) holds max_pfn, pfn_to_mfn_frame_list_list, p2m_cr3, p2m_vaddr, p2m_generation,
//     which a Linux PV guest fills for dump tools (Xen commit 50bd1f08). It is found by scanning
//     the frame table for the domain's Xen-heap pages and checking the fields against ownership,
//     not by struct domain's layout, which changes between builds.
import DumpIO
import Foundation
import P2MFormat

/// PDX compression: `holeBits` address bits from `bottomBits` up, squeezed out (0: none).
public struct XenPDX: Sendable, Equatable, Codable {
    public var bottomBits: UInt64
    public var holeBits: UInt64
    public static let none = XenPDX(bottomBits: 0, holeBits: 0)
    public init(bottomBits: UInt64, holeBits: UInt64) { self.bottomBits = bottomBits; self.holeBits = holeBits }
    var bottomMask: UInt64 { holeBits == 0 ? .max : (1 << bottomBits) - 1 }
    var topMask: UInt64 { holeBits == 0 ? 0 : ~((1 << (bottomBits + holeBits)) - 1) }
    @inline(__always) public func pdx(ofMfn p: UInt64) -> UInt64 { holeBits == 0 ? p : (p & bottomMask) | ((p & topMask) >> holeBits) }
    @inline(__always) public func mfn(ofPdx x: UInt64) -> UInt64 { holeBits == 0 ? x : (x & bottomMask) | ((x << holeBits) & topMask) }
    /// Whether a frame has a pdx at all (frames in the hole have none).
    public func hasPdx(_ p: UInt64) -> Bool { holeBits == 0 || mfn(ofPdx: pdx(ofMfn: p)) == p }
}

public enum XenLayout {
    public static let m2pStart: UInt64 = 0xffff_8280_0000_0000
    public static let directMapStart: UInt64 = 0xffff_8300_0000_0000
    public static let sharedInfoArchOffset = 3088
    public static let invalidM2P: UInt64 = .max
    public static let sharedM2P: UInt64 = .max - 1
    public static let domidXen: UInt16 = 0x7ff2, domidIO: UInt16 = 0x7ff1
}

/// One page_info, as read.
public struct XenPageInfo: Sendable {
    public var countInfo: UInt64
    public var owner: UInt32
    /// PGC_allocated (bit 63) and PGC_state (bits 58–59, 0 = in use); PGC_xen_heap is bit 62.
    static let allocatedMask: UInt64 = 1 << 63 | 0b11 << 58
    static let xenHeapBit: UInt64 = 1 << 62
    public var allocated: Bool { countInfo & Self.allocatedMask == 1 << 63 }
    public var xenHeap: Bool { countInfo & Self.xenHeapBit != 0 }
    /// Allocated, in use and not Xen-heap: one of a guest's own frames (the M2P rebuild's hot test).
    @inline(__always) static func isGuestFrame(_ countInfo: UInt64) -> Bool { countInfo & (allocatedMask | xenHeapBit) == 1 << 63 }
}

/// arch_shared_info of a guest.
public struct XenArchSharedInfo: Sendable, Codable, Equatable {
    public var maxPfn: UInt64
    public var fllMfn: UInt64
    public var p2mCr3: UInt64
    public var p2mVaddr: UInt64
    public var p2mGeneration: UInt64
}

/// A domain found in Xen's tables.
public struct XenDomain: Sendable {
    public var id: UInt16
    /// struct domain's direct-map address.
    public var address: UInt64
    /// pdx of that address (what page_info._domain holds for its pages).
    public var ownerPdx: UInt32
    public var system: Bool
    public var pages: UInt64 = 0
    public var xenHeapPages: UInt64 = 0
    public var sharedInfoMfn: MFN?
    public var arch: XenArchSharedInfo?
    /// A Linux PV guest: its shared_info names a frame-list-list or a p2m root that it owns.
    public var looksPV: Bool { arch.map { $0.p2mCr3 != 0 || $0.fllMfn != 0 } ?? false }
    var xenHeapFrames: [UInt64] = []
}

public final class XenHost {
    public let dump: DumpContainer
    public let info: VMCoreInfo
    public let xenPhysStart: UInt64
    public let xenVirtStart: UInt64
    public let pageTables: KernelPageTables
    public let frameTable: UInt64
    public let maxPage: UInt64
    /// PDX compression as inferred from the direct map; frame table entries and direct-map pages
    /// are indexed by pdx, up to `maxPdx`.
    public private(set) var pdx = XenPDX.none
    public private(set) var maxPdx: UInt64 = 0
    let pageInfoSize: UInt64, countInfoOffset: UInt64, ownerOffset: UInt64, domainIdOffset: UInt64, nextOffset: UInt64
    private var scanned: [XenDomain]?
    /// Allocated frames whose owner is no domain of the list (a domain being destroyed, or a
    /// damaged frame table): counted, never given to anyone.
    public private(set) var orphanPages: UInt64 = 0

    /// Xen's own symbols (`--xen-syms`: xen-syms or its .map), when given: checked against
    /// VMCOREINFO_XEN (the same build) and used to confirm the inferred PDX compression from
    /// Xen's variables. Nothing needs them.
    public let xenSymbols: SymbolTable?
    /// What the symbols confirmed, for people (nil: none given).
    public private(set) var symbolCheck: String?

    /// Xen's symbols from xen-syms (an ELF) or its .map.
    public static func loadSymbols(_ path: String) throws -> SymbolTable {
        isELF(path) ? try SymbolTable.vmlinux(path: path) : try SymbolTable.systemMap(path: path)
    }

    static func isELF(_ path: String) -> Bool { ((try? OpenFile(path: path).read(offset: 0, count: 4)) ?? []) == [0x7f, 0x45, 0x4c, 0x46] }

    /// The host of a dump with `--xen-syms` (optional): its symbols, and where it is an ELF with
    /// DWARF (Debian's 4.20 xen-syms; 4.17's -dbg has a symbol map only), its struct layouts.
    public static func open(dump: DumpContainer, xenSyms: String?) throws -> XenHost {
        guard let path = xenSyms else { return try XenHost(dump: dump) }
        let elf = isELF(path)
        let symbols = elf ? try SymbolTable.vmlinux(path: path) : try SymbolTable.systemMap(path: path)
        var types: DWARFTypes? = nil
        var why: String? = nil
        if elf {
            do { types = try DWARFTypes(path: path) } catch { why = "\(error)" }
        } else { why = "\(path) is a symbol map, without types" }
        return try XenHost(dump: dump, xenSymbols: symbols, xenTypes: types, xenTypesWhy: why)
    }

    /// struct domain's and struct vcpu's layout for this build (nil: not known; `structLayoutWhy` says why).
    public private(set) var structLayout: XenStructLayout?
    public private(set) var structLayoutWhy = ""

    /// `table`: the builds whose struct layouts are known (tests pass another to see a build
    /// the table lacks refused).
    public init(dump: DumpContainer, xenSymbols: SymbolTable? = nil, xenTypes: (any TypeLayouts)? = nil, xenTypesWhy: String? = nil,
                table: [(build: XenStructLayout.Build, layout: XenStructLayout)] = XenStructLayout.verified) throws {
        self.dump = dump
        self.xenSymbols = xenSymbols
        let p = dump.path
        guard let i = dump.vmcoreInfoXen else {
            throw TranslationError("\(p): no VMCOREINFO_XEN note: not the dump of a crashed Xen host (Xen's tables are what finds its domains)", kind: .noDomain)
        }
        info = i
        func need(_ key: String) throws -> UInt64 {
            guard let s = i.values[key] else { throw TranslationError("\(p): VMCOREINFO_XEN has no \(key)") }
            let v = key.hasPrefix("SYMBOL(") ? UInt64(s, radix: 16) : UInt64(s)
            guard let v else { throw TranslationError("\(p): VMCOREINFO_XEN \(key)=\(s) is not a number") }
            return v
        }
        guard let start = dump.crashInfo?.xenPhysStart else {
            throw TranslationError("\(p): Xen's crash info note (type 0x1000001) is missing or too short for xen_phys_start")
        }
        xenPhysStart = start
        let domainList = try need("SYMBOL(domain_list)")
        xenVirtStart = domainList & ~((1 << 30) - 1)
        let l4 = try need("SYMBOL(pgd_l4)")
        guard l4 >= xenVirtStart, l4 - xenVirtStart < 1 << 30, PageGeometry.x86.offset(l4) == 0 else {
            throw TranslationError("\(p): VMCOREINFO_XEN SYMBOL(pgd_l4)=\(String(l4, radix: 16)) is not a page of Xen's image slot at 0x\(String(xenVirtStart, radix: 16))")
        }
        let (root, o) = (l4 - xenVirtStart).addingReportingOverflow(start)
        guard !o, root < 1 << 52 else { throw TranslationError("\(p): idle page table's machine address overflows (xen_phys_start 0x\(String(start, radix: 16)))") }
        pageTables = KernelPageTables(walker: PageTableWalker(memory: dump.memory), root: MachAddr(rawValue: root))
        pageInfoSize = try need("SIZE(page_info)")
        countInfoOffset = try need("OFFSET(page_info.count_info)")
        ownerOffset = try need("OFFSET(page_info._domain)")
        domainIdOffset = try need("OFFSET(domain.domain_id)")
        nextOffset = try need("OFFSET(domain.next_in_list)")
        guard (16...256).contains(pageInfoSize), countInfoOffset + 8 <= pageInfoSize, ownerOffset + 4 <= pageInfoSize,
              domainIdOffset < 4096, nextOffset < 4096 else {
            throw TranslationError("\(p): VMCOREINFO_XEN sizes and offsets are implausible (page_info \(pageInfoSize), count_info \(countInfoOffset), _domain \(ownerOffset))")
        }
        let ft = try need("SYMBOL(frame_table)"), mp = try need("SYMBOL(max_page)")
        do {
            frameTable = try pageTables.readU64(KVAddr(rawValue: ft))
            maxPage = try pageTables.readU64(KVAddr(rawValue: mp))
        } catch { throw TranslationError("\(p): cannot read frame_table/max_page through Xen's idle page tables at machine 0x\(String(root, radix: 16)): \(error)") }
        guard maxPage > 0, maxPage < 1 << 40 else { throw TranslationError("\(p): Xen's max_page 0x\(String(maxPage, radix: 16)) is implausible") }
        pdx = try inferPDX()
        maxPdx = pdx.pdx(ofMfn: maxPage - 1) + 1
        if let xs = xenSymbols { try checkSymbols(xs) }
        // struct domain's layout: the build's own types (checked the same build as the dump by
        // checkSymbols above), else the table of builds verified on real dumps, else none.
        let build = XenStructLayout.Build(dump: dump)
        if let t = xenTypes {
            structLayout = try XenStructLayout(types: t)
        } else if let b = build, let l = XenStructLayout.verified(for: b, in: table) {
            structLayout = l
        } else {
            structLayoutWhy = "struct domain's layout is not known for \(build?.description ?? "this Xen (no crash info)"): the table of builds checked on real dumps has \(table.map(\.build.description).joined(separator: " and ")), not this one\(xenTypesWhy.map { "; --xen-syms gave none (\($0))" } ?? "; xen-syms with DWARF (--xen-syms) would give it")"
        }
        // The direct map spans 5 TiB (non-BIGMEM): no more pdx than that.
        guard maxPdx <= 0x5000_0000 else { throw TranslationError("\(p): Xen's max_page 0x\(String(maxPage, radix: 16)) needs pdx 0x\(String(maxPdx, radix: 16)), beyond the 5 TiB direct map") }
    }

    /// The direct map's leaves as (pdx, mfn, frames) runs, from Xen's idle page tables.
    func directMapRuns() throws -> [(pdx: UInt64, mfn: UInt64, count: UInt64)] {
        var runs: [(pdx: UInt64, mfn: UInt64, count: UInt64)] = []
        let mem = dump.memory
        func table(_ mfn: UInt64) throws -> [UInt64] {
            let b = try mem.readBytes(MachAddr(rawValue: PageGeometry.x86.base(mfn)), count: Int(PageGeometry.x86.size))
            return b.withUnsafeBytes { r in (0..<512).map { UInt64(littleEndian: r.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) } }
        }
        func add(_ pdx: UInt64, _ mfn: UInt64, _ n: UInt64) {
            if let l = runs.last, l.pdx + l.count == pdx, l.mfn + l.count == mfn { runs[runs.count - 1].count += n } else { runs.append((pdx, mfn, n)) }
        }
        let present = PTE.present, pse = PTE.pse, mask = PTE.addressMask
        let l4 = try table(PageGeometry.x86.frame(pageTables.root.rawValue))
        var leaves = 0
        for s4 in 262..<272 where l4[s4] & present != 0 {             // 5 TiB of direct map
            let base4 = UInt64(s4 - 262) << 27                          // pdx of the slot's start
            let l3 = try table(PageGeometry.x86.frame(l4[s4] & mask))
            for i3 in 0..<512 where l3[i3] & present != 0 {
                let p3 = base4 + UInt64(i3) << 18
                if l3[i3] & pse != 0 { add(p3, PageGeometry.x86.frame(l3[i3] & mask & ~0x3fff_ffff), 1 << 18); leaves += 1; continue }
                let l2 = try table(PageGeometry.x86.frame(l3[i3] & mask))
                for i2 in 0..<512 where l2[i2] & present != 0 {
                    let p2 = p3 + UInt64(i2) << 9
                    if l2[i2] & pse != 0 { add(p2, PageGeometry.x86.frame(l2[i2] & mask & ~0x1f_ffff), 512); leaves += 1; continue }
                    let l1 = try table(PageGeometry.x86.frame(l2[i2] & mask))
                    for i1 in 0..<512 where l1[i1] & present != 0 { add(p2 + UInt64(i1), PageGeometry.x86.frame(l1[i1] & mask), 1); leaves += 1 }
                }
                guard leaves < 1 << 24 else { throw TranslationError("\(dump.path): Xen's direct map has more than 2^24 leaves") }
            }
        }
        return runs
    }

    /// PDX compression from the direct map: none when every leaf maps pdx onto the same mfn, else
    /// the one (bottom, hole) pair consistent with every leaf's ends.
    private func inferPDX() throws -> XenPDX {
        let runs: [(pdx: UInt64, mfn: UInt64, count: UInt64)]
        do { runs = try directMapRuns() } catch {
            throw TranslationError("\(dump.path): Xen's direct map (0xffff830000000000, for PDX compression) cannot be read through its idle page tables: \(error)")
        }
        guard !runs.isEmpty else { throw TranslationError("\(dump.path): Xen's idle page tables map no direct map") }
        if runs.allSatisfy({ $0.pdx == $0.mfn }) { return .none }
        for b in UInt64(18)..<52 {
            for h in UInt64(1)..<(52 - b) {
                let x = XenPDX(bottomBits: b, holeBits: h)
                if runs.allSatisfy({ x.pdx(ofMfn: $0.mfn) == $0.pdx && x.pdx(ofMfn: $0.mfn + $0.count - 1) == $0.pdx + $0.count - 1 }) { return x }
            }
        }
        let r = runs.first { $0.pdx != $0.mfn }!
        throw TranslationError("\(dump.path): Xen's direct map puts machine frame 0x\(String(r.mfn, radix: 16)) at pdx 0x\(String(r.pdx, radix: 16)), and no PDX compression (one hole of address bits, xen/common/pdx.c) explains all \(runs.count) of its ranges")
    }

    /// The symbols must be this Xen's (VMCOREINFO_XEN's addresses), and Xen's own PDX variables
    /// (xen/common/pdx.c: pfn_pdx_hole_shift, pfn_pdx_bottom_mask) must say what the direct map said.
    private func checkSymbols(_ xs: SymbolTable) throws {
        for name in ["domain_list", "frame_table", "max_page", "pgd_l4"] {
            guard let want = info.symbol(name) else { continue }
            let sym = name == "pgd_l4" ? "idle_pg_table" : name
            guard let got = xs.address(sym) else { continue }
            guard got.rawValue == want else {
                let mine = XenStructLayout.Build(dump: dump).map { "Xen \($0.major).\($0.minor)" } ?? "this dump's Xen"
                throw TranslationError("\(dump.path): --xen-syms is another Xen build's: \(sym) is at \(got) there, and \(mine) (its crash info and VMCOREINFO_XEN) has it at 0x\(String(want, radix: 16))", kind: .mismatch)
            }
        }
        guard let sh = xs.address("pfn_pdx_hole_shift"), let bm = xs.address("pfn_pdx_bottom_mask") else {
            symbolCheck = "Xen's symbols agree with VMCOREINFO_XEN (no PDX variables among them)"; return
        }
        let shift = try readU64(sh.rawValue) & 0xffff_ffff, mask = try readU64(bm.rawValue)
        let fromVars = shift == 0 ? XenPDX.none : XenPDX(bottomBits: UInt64(mask.nonzeroBitCount), holeBits: shift)
        guard fromVars == pdx else {
            throw TranslationError("\(dump.path): Xen's pfn_pdx_hole_shift \(shift) and pfn_pdx_bottom_mask 0x\(String(mask, radix: 16)) say \(fromVars), the direct map says \(pdx)", kind: .mismatch)
        }
        symbolCheck = "Xen's pfn_pdx_hole_shift (\(shift)) and pfn_pdx_bottom_mask (0x\(String(mask, radix: 16))) agree with the direct map (--xen-syms)"
    }

    /// The direct-map address of a machine frame.
    @inline(__always) func directMap(_ mfn: UInt64) -> UInt64 { XenLayout.directMapStart &+ PageGeometry.x86.base(pdx.pdx(ofMfn: mfn)) }

    public func readU64(_ va: UInt64) throws -> UInt64 { try pageTables.readU64(KVAddr(rawValue: va)) }

    /// Whether an address lies in Xen's direct map of this machine.
    func inDirectMap(_ a: UInt64) -> Bool { a >= XenLayout.directMapStart && a < XenLayout.directMapStart + PageGeometry.x86.base(maxPdx) }

    /// The domain list, in Xen's order (sorted by id), then dom_xen and dom_io (not in the list);
    /// each with the owner value its frames carry (the pdx of its struct domain).
    public func domainList() throws -> [XenDomain] {
        var out: [XenDomain] = []
        func domain(_ id: UInt64, _ a: UInt64, system: Bool) -> XenDomain {
            XenDomain(id: UInt16(id & 0xffff), address: a, ownerPdx: UInt32(truncatingIfNeeded: PageGeometry.x86.frame(a - XenLayout.directMapStart)), system: system)
        }
        var seen = Set<UInt64>()
        guard let head = info.symbol("domain_list") else { throw TranslationError("\(dump.path): no SYMBOL(domain_list)") }
        var d = try readU64(head)
        while d != 0 {
            guard inDirectMap(d), d & 0x7 == 0, seen.count < 32768 else {
                throw TranslationError("\(dump.path): the domain list reaches 0x\(String(d, radix: 16)) after \(seen.count) domains: outside Xen's direct map or too long")
            }
            guard seen.insert(d).inserted else {
                throw TranslationError("\(dump.path): the domain list loops back to 0x\(String(d, radix: 16)) after \(seen.count) domains")
            }
            out.append(domain(try readU64(d &+ domainIdOffset), d, system: false))
            d = try readU64(d &+ nextOffset)
        }
        for name in ["dom_xen", "dom_io"] {
            if let s = info.symbol(name), let a = try? readU64(s), inDirectMap(a), !seen.contains(a),
               let id = try? readU64(a &+ domainIdOffset) { out.append(domain(id, a, system: true)) }
        }
        return out
    }

    /// Reads the frame table and the M2P in chunks (`chunk` frames), calling `body` per chunk
    /// with the frames' page_info and M2P words. Unreadable chunks (filtered out of the dump)
    /// are reported through `missing`, never skipped silently.
    func scanFrames(chunk: Int = 65536, missing: (UInt64, UInt64, Error) -> Void,
                    _ body: (_ first: UInt64, _ pageInfo: UnsafeRawBufferPointer, _ m2p: UnsafeBufferPointer<UInt64>?) throws -> Void) throws {
        var pi = [UInt8](repeating: 0, count: chunk * Int(pageInfoSize))
        var m2p = [UInt64](repeating: 0, count: chunk)
        // The frame table goes by pdx, the M2P by mfn; a chunk of 65536 pdx never straddles the
        // hole (it starts at bit 18 or above), so its frames are consecutive mfns.
        var x: UInt64 = 0
        while x < maxPdx {
            try Interrupt.check()
            let n = Int(min(UInt64(chunk), maxPdx - x))
            let f = pdx.mfn(ofPdx: x)
            defer { x += UInt64(n) }
            do {
                try pi.withUnsafeMutableBytes { try pageTables.read(KVAddr(rawValue: frameTable &+ x &* pageInfoSize), into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<(n * Int(pageInfoSize))])) }
            } catch { missing(f, UInt64(n), error); continue }
            var m2pOK = true
            do {
                try m2p.withUnsafeMutableBytes { try pageTables.read(KVAddr(rawValue: XenLayout.m2pStart &+ f &* 8), into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<(n * 8)])) }
            } catch { m2pOK = false }
            try pi.withUnsafeBytes { p in
                try m2p.withUnsafeBufferPointer { m in
                    try body(f, UnsafeRawBufferPointer(rebasing: p[0..<(n * Int(pageInfoSize))]), m2pOK ? UnsafeBufferPointer(rebasing: m[0..<n]) : nil)
                }
            }
        }
    }

    @inline(__always) func pageInfo(_ p: UnsafeRawBufferPointer, _ k: Int) -> XenPageInfo {
        let o = k * Int(pageInfoSize)
        return XenPageInfo(countInfo: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o + Int(countInfoOffset), as: UInt64.self)),
                           owner: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o + Int(ownerOffset), as: UInt32.self)))
    }

    /// Whether the cached domains came from a pass over the frame table (else from struct domain).
    private var scannedFrameTable = false
    /// How `domains` found the counts, for people.
    public var domainsMethod: String {
        scanned == nil ? "" : scannedFrameTable ? "frame table scan\(structLayout == nil ? " (\(structLayoutWhy))" : "")"
            : "struct domain (layout from \(structLayout?.source ?? "?")), each checked against the frame table"
    }

    /// Every domain with its page counts and shared_info: from struct domain where the layout is
    /// known and checks out (O(domains)), else from one pass over the frame table.
    public func domains(scan: Bool = false) throws -> [XenDomain] {
        if let s = scanned, !scan || scannedFrameTable { return s }
        if !scan, let l = structLayout, let fast = try? domainsFromStructs(l) {
            scanned = fast
            return fast
        }
        var doms = try domainList()
        var byOwner: [UInt32: Int] = [:]
        for (k, d) in doms.enumerated() { byOwner[d.ownerPdx] = k }
        var holes: [(UInt64, UInt64)] = []
        var orphans: UInt64 = 0
        try scanFrames(missing: { f, n, _ in holes.append((f, n)) }) { first, p, _ in
            for k in 0..<(p.count / Int(pageInfoSize)) {
                let pg = pageInfo(p, k)
                guard pg.allocated else { continue }
                guard let i = byOwner[pg.owner] else { if pg.owner != 0 { orphans += 1 }; continue }
                if pg.xenHeap {
                    doms[i].xenHeapPages += 1
                    if doms[i].xenHeapFrames.count < 64 { doms[i].xenHeapFrames.append(first + UInt64(k)) }
                } else { doms[i].pages += 1 }
            }
        }
        if !holes.isEmpty {
            throw TranslationError("\(dump.path): Xen's frame table is not all in the dump (frames 0x\(String(holes[0].0, radix: 16))+\(holes[0].1)\(holes.count > 1 ? " and \(holes.count - 1) more chunks" : "")): page ownership would be incomplete")
        }
        orphanPages = orphans
        for i in doms.indices where !doms[i].system {
            for f in doms[i].xenHeapFrames {
                guard let a = try? readArch(mfn: f) else { continue }
                // The guest's own frames: the frame-list-list and the p2m root must be owned by it.
                func owned(_ m: UInt64) -> Bool {
                    guard m != 0, m < maxPage, let pg = try? frameInfo(m) else { return false }
                    return pg.allocated && pg.owner == doms[i].ownerPdx
                }
                let plausible = (a.fllMfn == 0 || owned(a.fllMfn)) && (a.p2mCr3 == 0 || owned(PageGeometry.x86.frame(a.p2mCr3))) && a.maxPfn < 1 << 40
                if plausible && (a.fllMfn != 0 || a.p2mCr3 != 0 || a.maxPfn != 0) {
                    doms[i].sharedInfoMfn = MFN(rawValue: f); doms[i].arch = a; break
                }
            }
        }
        scanned = doms; scannedFrameTable = true
        return doms
    }

    /// The fast path: nil (or a throw) as soon as anything does not check out.
    private func domainsFromStructs(_ l: XenStructLayout) throws -> [XenDomain]? {
        var out: [XenDomain] = []
        for var x in try domainList() {
            let counts = try readU64(x.address &+ l.totPages)
            x.pages = counts & 0xffff_ffff
            x.xenHeapPages = try readU64(x.address &+ l.xenHeapPages) & 0xffff_ffff
            guard x.pages <= maxPage else { return nil }
            if !x.system {
                let si = try readU64(x.address &+ l.sharedInfo)
                guard si >= XenLayout.directMapStart, PageGeometry.x86.offset(si) == 0 else { return nil }
                let mfn = pdx.mfn(ofPdx: PageGeometry.x86.frame(si - XenLayout.directMapStart))
                guard mfn < maxPage else { return nil }
                let pg = try frameInfo(mfn)
                guard pg.allocated, pg.xenHeap, pg.owner == x.ownerPdx else { return nil }   // shared_info is its own Xen-heap page
                let a = try readArch(mfn: mfn)
                if a.fllMfn != 0 || a.p2mCr3 != 0 { x.sharedInfoMfn = MFN(rawValue: mfn); x.arch = a }
            }
            out.append(x)
        }
        return out
    }

    func readArch(mfn: UInt64) throws -> XenArchSharedInfo {
        let a = directMap(mfn) &+ UInt64(XenLayout.sharedInfoArchOffset)
        return XenArchSharedInfo(maxPfn: try readU64(a), fllMfn: try readU64(a &+ 8), p2mCr3: try readU64(a &+ 24),
                                 p2mVaddr: try readU64(a &+ 32), p2mGeneration: try readU64(a &+ 40))
    }

    public func frameInfo(_ mfn: UInt64) throws -> XenPageInfo {
        guard pdx.hasPdx(mfn) else { throw TranslationError("machine frame 0x\(String(mfn, radix: 16)) lies in the PDX hole: no RAM there") }
        let b = try pageTables.readBytes(KVAddr(rawValue: frameTable &+ pdx.pdx(ofMfn: mfn) &* pageInfoSize), count: Int(pageInfoSize))
        return b.withUnsafeBytes { pageInfo($0, 0) }
    }

    public func domain(_ id: UInt16) throws -> XenDomain {
        let all = try domains()
        guard let d = all.first(where: { $0.id == id && !$0.system }) else {
            throw TranslationError("\(dump.path): no domain \(id) in Xen's domain list (domains: \(all.filter { !$0.system }.map { String($0.id) }.joined(separator: ", ")))", kind: .noDomain)
        }
        return d
    }
}
