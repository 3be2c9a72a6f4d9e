// A crashed Xen host's kdump vmcore with several PV guests in it, laid out as Xen 4.17 keeps
// its own tables (facts checked on the real host dump of Tools/real-dump stage 4 and in Xen
// 4.17's source: xen/arch/x86/include/asm/config.h, asm/mm.h, common/kexec.c,
// arch/x86/machine_kexec.c, public/xen.h, public/arch-x86/xen.h):
//   - Xen's image at xen_phys_start, mapped at XEN_VIRT_START 0xffff82d040000000; pgd_l4
//     (idle_pg_table) in it roots Xen's page tables: L4 slot 261 holds the read-write M2P
//     (0xffff828000000000), the image and the frame table (0xffff82e000000000) through 2 MiB
//     pages, slots 262… the direct map (0xffff830000000000 = machine 0) through 1 GiB pages.
//   - VMCOREINFO_XEN with the real note's keys and Xen 4.17's values (SIZE(page_info)=32,
//     SIZE(domain)=2304, count_info at 8, _domain at 24, domain_id at 0, next_in_list at 136);
//     SYMBOL(frame_table), SYMBOL(max_page), SYMBOL(domain_list), SYMBOL(dom_xen/dom_io) name
//     variables in the image that hold the values (frame_table holds FRAMETABLE_VIRT_START).
//   - The frame table: one page_info per frame (pdx = mfn: PDX compression off). Free frames
//     have state "free" (count_info 3 << 58); a guest's frames PGC_allocated (bit 63) with the
//     owner as the pdx of its struct domain; each guest's shared_info and one grant frame are
//     Xen-heap pages (bit 62) it owns; dom_xen owns the M2P's pages, dom_io frames 0–0xff.
//   - The M2P: the guest's pfn for each of its frames, INVALID (~0) everywhere else.
//   - Each guest's shared_info holds arch_shared_info at 3088: max_pfn, the frame-list-list mfn,
//     p2m_cr3 (its kernel's top page table), p2m_vaddr (its linear list), p2m_generation.
//   - struct domain: domain_id (u16) at 0, shared_info pointer at 16, tot_pages/xenheap_pages/
//     max_pages (u32) at 88/92/100, next_in_list at 136 (the 4.17 layout); domain_list is sorted
//     by id; dom_xen (0x7ff2) and dom_io (0x7ff1) are not in it.
// Each guest is a complete generated Linux PV kernel (GuestKernel) over its own machine frames.
import Foundation
import P2MFormat

public struct HostGuestSpec: Sendable, Codable {
    public var domainID: UInt16
    public var mib: UInt64
    public var profile: LayoutProfile
    public init(domainID: UInt16, mib: UInt64, profile: LayoutProfile) { self.domainID = domainID; self.mib = mib; self.profile = profile }
}

extension LayoutProfile: Codable {}

public struct HostDumpOptions: Sendable {
    public var machineMiB: UInt64 = 2048
    /// dom0 first; ids must be distinct.
    public var guests: [HostGuestSpec] = [HostGuestSpec(domainID: 0, mib: 512, profile: .dom0),
                                          HostGuestSpec(domainID: 1, mib: 160, profile: .ballooned),
                                          HostGuestSpec(domainID: 2, mib: 256, profile: .fragmented)]
    public var seed: UInt64 = 1
    public var cpus = 2
    /// xen_p2m_size of every guest (default: what its RAM needs, 2^27 for dom0).
    public var nrPfns: UInt64? = nil
    /// PDX compression on: RAM above 3 GiB starts at pfn 2^(bottom + hole) instead of 4 GiB, so
    /// pfn bits bottom..bottom+hole−1 are zero in every RAM frame and Xen squeezes them out
    /// (xen/common/pdx.c); the frame table and the direct map are indexed by the compressed pdx.
    /// Needs a machine of more than 3 GiB.
    public var pdxHole: (bottom: UInt64, bits: UInt64)? = nil
    public var kernel = KernelOptions()
    public init() {}
}

public struct HostManifest: Codable, Sendable {
    public struct Guest: Codable, Sendable {
        public var domainID: UInt16
        public var profile: String
        public var pages: UInt64
        public var maxPfn: UInt64
        public var fllMfn: UInt64?
        public var cr3: UInt64
        public var sharedInfoMfn: UInt64
        public var domainAddress: UInt64
        public var p2mDigest: UInt64
        public var systemMap: String
        public var manifest: String
    }
    public var kind = "xen-host-kdump"
    public var machinePages: UInt64
    public var maxPage: UInt64
    public var xenPhysStart: UInt64
    public var frameTableMfn: UInt64
    public var m2pMfn: UInt64
    /// PDX compression laid out: pfn bits pdxBottom… (pdxBits of them) squeezed out; 0: none.
    public var pdxBottom: UInt64 = 0
    public var pdxBits: UInt64 = 0
    public var maxPdx: UInt64 = 0
    public var guests: [Guest]
}

public struct GeneratedHost: Sendable {
    public var path: String
    public var manifestPath: String
    public var manifest: HostManifest
    public var guests: [GeneratedDump]
}

enum XenVA {
    static let virtStart: UInt64 = 0xffff_82d0_4000_0000
    static let m2p: UInt64 = 0xffff_8280_0000_0000
    static let frameTable: UInt64 = 0xffff_82e0_0000_0000
    static let directMap: UInt64 = 0xffff_8300_0000_0000
    static func l4(_ va: UInt64) -> Int { Int((va >> 39) & 511) }
    static func l3(_ va: UInt64) -> Int { Int((va >> 30) & 511) }
    static func l2(_ va: UInt64) -> Int { Int((va >> 21) & 511) }
}

extension DumpGenerator {
    public static func generateHost(_ o: HostDumpOptions, to path: String) throws -> GeneratedHost {
        guard let first = o.guests.first, first.domainID == 0 else { throw GenError.parameter("the first guest must be dom0 (domain 0)") }
        guard Set(o.guests.map(\.domainID)).count == o.guests.count else { throw GenError.parameter("domain ids must be distinct") }
        let machinePages = o.machineMiB << 8
        var pdxBottom: UInt64 = 0, pdxBits: UInt64 = 0
        if let h = o.pdxHole {
            guard machinePages > 0xC0000, h.bottom >= 20, h.bits >= 1, h.bottom + h.bits < 40 else {
                throw GenError.parameter("PDX compression needs a machine above 3 GiB and a hole of pfn bits from 20 up")
            }
            pdxBottom = h.bottom; pdxBits = h.bits
        }
        // pfn_to_pdx of xen/common/pdx.c with those bits squeezed out (identity without a hole).
        func pdx(_ p: UInt64) -> UInt64 {
            guard pdxBits > 0 else { return p }
            let bottom = (UInt64(1) << pdxBottom) - 1, top = ~((UInt64(1) << (pdxBottom + pdxBits)) - 1)
            return (p & bottom) | ((p & top) >> pdxBits)
        }
        func pfnOfPdx(_ x: UInt64) -> UInt64 {
            guard pdxBits > 0 else { return x }
            let bottom = (UInt64(1) << pdxBottom) - 1, top = ~((UInt64(1) << (pdxBottom + pdxBits)) - 1)
            return (x & bottom) | ((x << pdxBits) & top)
        }
        let machine = MachineLayout(machinePages: machinePages, highStart: pdxBits > 0 ? 1 << (pdxBottom + pdxBits) : 0x100000)
        let maxPage = machine.ram.map(\.end).max() ?? 0
        let maxPdx = pdx(maxPage - 1) + 1
        let xenPhysStart = machine.xen.start << 12
        // Xen's heap: the frame table and the M2P (2 MiB aligned, for 2 MiB mappings), then
        // a page per struct domain, shared_info and grant frame. Carved from the top of free RAM.
        let ftPages = roundUp(maxPdx * 32, 1 << 21) >> 12, m2pPages = roundUp(maxPage * 8, 1 << 21) >> 12
        let heapPages = ftPages + m2pPages + 512
        var free = machine.free
        guard let bigIndex = free.indices.max(by: { free[$0].count < free[$1].count }), free[bigIndex].count > heapPages + 1024 else {
            throw GenError.parameter("the machine is too small for Xen's tables")
        }
        let big = free[bigIndex]
        let heapStart = (big.end - heapPages) & ~0x1ff
        guard heapStart >= big.start else { throw GenError.parameter("no 2 MiB-aligned room for Xen's tables") }
        free[bigIndex] = FrameRange(start: big.start, count: heapStart - big.start)
        let ftMfn = heapStart, m2pMfn = heapStart + ftPages
        var nextHeap = m2pMfn + m2pPages
        func heapPage() -> UInt64 { defer { nextHeap += 1 }; return nextHeap }

        // Guests over disjoint slices of the rest.
        var pool = FramePool(free)
        var kernels: [(HostGuestSpec, GuestKernel)] = []
        for (i, g) in o.guests.enumerated() {
            let pages = g.mib << 8
            let slice = try pool.take(pages + pages / 4 + 4096)
            // A ballooned layout can take the kernel image's own pfns away: the next seed then.
            var made: GuestKernel? = nil
            var lastError: Error? = nil
            for attempt in 0..<16 where made == nil {
                do {
                    made = try guest(guestPages: pages, nrPfns: o.nrPfns, free: slice, profile: g.profile,
                                     seed: o.seed &+ UInt64(i) &* 0x9e37 &+ UInt64(attempt) &* 0x10001, kernel: o.kernel)
                } catch { lastError = error }
            }
            guard let k = made else { throw lastError ?? GenError.parameter("guest \(g.domainID) could not be laid out") }
            kernels.append((g, k))
        }
        // Per guest: its struct domain, shared_info and grant pages; runs (mfn, pfn, count) of its frames.
        struct Placed { var spec: HostGuestSpec; var k: GuestKernel; var dom: UInt64; var shinfo: UInt64; var grant: UInt64
                        var runs: [(mfn: UInt64, pfn: UInt64, count: UInt64, down: Bool)]; var maxPfn: UInt64; var fll: UInt64?; var cr3: UInt64 }
        var placed: [Placed] = []
        for (g, k) in kernels {
            var runs: [(UInt64, UInt64, UInt64, Bool)] = []
            var p: UInt64 = 0, lastRAM: UInt64 = 0
            for s in k.layout.segments {
                switch s {
                case .ascending(let f, let n): runs.append((f, p, n, false)); lastRAM = p + n
                case .descending(let f, let n): runs.append((f - (n - 1), p, n, true)); lastRAM = p + n
                case .literal(let v): for (i, m) in v.enumerated() { runs.append((m, p + UInt64(i), 1, false)) }; lastRAM = p + UInt64(v.count)
                default: break
                }
                p += s.count
            }
            guard let pml4 = k.mfn(k.pml4Pfn) else { throw GenError.parameter("guest \(g.domainID): no top page table") }
            let fll = k.hasFrameTree ? k.mfn(k.frameTreeTopPfn) : nil
            placed.append(Placed(spec: g, k: k, dom: heapPage(), shinfo: heapPage(), grant: heapPage(), runs: runs,
                                 maxPfn: min(roundUp(lastRAM, 512), k.layout.nrPfns), fll: fll, cr3: pml4 << 12))
        }
        let domXen = heapPage(), domIO = heapPage()
        // Xen's page tables and variables, in its image.
        let img = machine.xen.start
        let l4 = img + 0x200, l3x = img + 0x201, l2img = img + 0x202
        var nextTable = img + 0x203
        let vars = img + 0x300                      // a data page of the image
        let varsVA = XenVA.virtStart + 0x300000
        let domainListVar: UInt64 = 0x380, frameTableVar: UInt64 = 0x858, maxPageVar: UInt64 = 0x2f0, domXenVar: UInt64 = 0x848, domIOVar: UInt64 = 0x840

        // Notes.
        let dom0 = placed[0]
        var notes: [UInt8] = []
        for cpu in 0..<o.cpus {
            var prstatus = [UInt8](repeating: 0, count: 336)
            prstatus.replaceSubrange(32..<36, with: u32le(UInt32(cpu)))
            notes += elfNote(name: "CORE", type: 1, desc: prstatus)
            notes += elfNote(name: "Xen", type: 0x100_0002, desc: u64le(cr0) + u64le(0) + u64le(cpu == 0 ? dom0.cr3 : l4 << 12) + u64le(cr4))
            if cpu == 0 {
                var info = u64le(4) + u64le(17)
                for i in 0..<5 { info += u64le(xenPhysStart + 0x10000 + UInt64(i) * 0x40) }
                info += u64le(0) + u64le(xenPhysStart) + u64le(dom0.fll ?? .max)
                notes += elfNote(name: "Xen", type: 0x100_0001, desc: info)
            }
        }
        notes += xenVMCoreInfoNote(domainList: varsVA + domainListVar, frameTable: varsVA + frameTableVar, maxPage: varsVA + maxPageVar,
                                   domXen: varsVA + domXenVar, domIO: varsVA + domIOVar, pgdL4: XenVA.virtStart + 0x200000)

        let loads = machine.loads
        let phnum = 1 + loads.count
        let notesOff = roundUp(64 + 56 * UInt64(phnum), 4096)
        var off = roundUp(notesOff + UInt64(notes.count), 4096)
        var phdrs = phdr(type: 4, flags: 0, offset: notesOff, vaddr: 0, paddr: 0, size: UInt64(notes.count), align: 0)
        var loadOffsets: [(FrameRange, UInt64)] = []
        for r in loads {
            phdrs += phdr(type: 1, flags: 7, offset: off, vaddr: LinuxX86_64.pageOffsetBase &+ (r.start << 12), paddr: r.start << 12, size: r.count << 12, align: 0)
            loadOffsets.append((r, off)); off += r.count << 12
        }
        let out = try SparseFile(path: path, size: off)
        try out.write(at: 0, elfHeader(type: 4, machine: 62, phoff: 64, phnum: UInt16(phnum), shoff: 0, shnum: 0, shstrndx: 0))
        try out.write(at: 64, phdrs)
        try out.write(at: notesOff, notes)
        func fo(_ mfn: UInt64) throws -> UInt64 {
            for (r, o) in loadOffsets where mfn >= r.start && mfn < r.end { return o + ((mfn - r.start) << 12) }
            throw GenError.parameter("machine frame 0x\(hex(mfn)) is not in the dump")
        }
        func page(_ mfn: UInt64, _ words: [(Int, UInt64)]) throws {
            var b = [UInt8](repeating: 0, count: 4096)
            for (o, v) in words { b.replaceSubrange(o..<o + 8, with: u64le(v)) }
            try out.write(at: try fo(mfn), b)
        }

        // Xen's page tables: L4 → L3 (slot 261) → L2s of 2 MiB pages; L3s of 1 GiB pages for the direct map.
        let rw: UInt64 = 0x63, pse: UInt64 = 0x80
        var l3xEntries: [(Int, UInt64)] = []
        func map2M(_ va: UInt64, machineFrame: UInt64, pages: UInt64, l2: inout [UInt64: [(Int, UInt64)]]) {
            var k: UInt64 = 0
            while k < pages {
                let a = va + (k << 12)
                l2[UInt64(XenVA.l3(a)), default: []].append((XenVA.l2(a) * 8, ((machineFrame + k) << 12) | rw | pse))
                k += 512
            }
        }
        var l2s: [UInt64: [(Int, UInt64)]] = [:]
        map2M(XenVA.virtStart, machineFrame: img, pages: machine.xen.count, l2: &l2s)
        map2M(XenVA.m2p, machineFrame: m2pMfn, pages: m2pPages, l2: &l2s)
        map2M(XenVA.frameTable, machineFrame: ftMfn, pages: ftPages, l2: &l2s)
        for (l3i, entries) in l2s.sorted(by: { $0.key < $1.key }) {
            let t = l3i == UInt64(XenVA.l3(XenVA.virtStart)) ? l2img : { defer { nextTable += 1 }; return nextTable }()
            try page(t, entries)
            l3xEntries.append((Int(l3i) * 8, (t << 12) | rw))
        }
        try page(l3x, l3xEntries)
        var l4Entries: [(Int, UInt64)] = [(XenVA.l4(XenVA.m2p) * 8, (l3x << 12) | rw)]
        // The direct map by pdx: GiB g of it maps the machine GiB whose first frame has pdx g·2^18
        // (a hole starts at pfn bit 20 or above, so a GiB never straddles it).
        let gib = (maxPdx + 0x3ffff) >> 18
        var g: UInt64 = 0
        while g < gib {
            let t = nextTable; nextTable += 1
            var e: [(Int, UInt64)] = []
            var i: UInt64 = 0
            while i < 512 && g + i < gib { e.append((Int(i) * 8, (pfnOfPdx((g + i) << 18) << 12) | rw | pse)); i += 1 }
            try page(t, e)
            l4Entries.append((XenVA.l4(XenVA.directMap + (g << 30)) * 8, (t << 12) | rw))
            g += 512
        }
        try page(l4, l4Entries)
        guard nextTable < vars else { throw GenError.parameter("Xen's page tables do not fit below its variables") }
        func dva(_ mfn: UInt64) -> UInt64 { XenVA.directMap + (pdx(mfn) << 12) }
        let ordered = placed.sorted { $0.spec.domainID < $1.spec.domainID }
        try page(vars, [(Int(domainListVar), dva(ordered[0].dom)), (Int(frameTableVar), XenVA.frameTable), (Int(maxPageVar), maxPage),
                        (Int(domXenVar), dva(domXen)), (Int(domIOVar), dva(domIO))])
        try out.write(at: try fo(img), Array("Xen 4.17 hypervisor image (p2mnote synthetic host)".utf8))
        let strs = ["-pre", "unavailable", "gcc (Debian 12.2.0-14) 12.2.0", "Tue Aug  4 12:00:00 UTC 2026", "12:00:00"]
        for (i, s) in strs.enumerated() { try out.write(at: try fo(img) + 0x10000 + UInt64(i) * 0x40, Array(s.utf8) + [0]) }
        // struct domain pages: id, shared_info pointer, next_in_list (sorted by id).
        for (i, p) in ordered.enumerated() {
            let next = i + 1 < ordered.count ? dva(ordered[i + 1].dom) : 0
            let pages = p.runs.reduce(0) { $0 + $1.count }
            // tot_pages (u32 at 88) and xenheap_pages (u32 at 92) share a word; max_pages at 100.
            try page(p.dom, [(0, UInt64(p.spec.domainID)), (16, dva(p.shinfo)), (88, pages | 2 << 32), (96, pages << 32), (136, next)])
            try page(p.shinfo, [(3088, p.maxPfn), (3096, p.fll ?? 0), (3104, 0), (3112, p.cr3), (3120, p.k.listVAddr), (3128, 0)])
        }
        try page(domXen, [(0, 0x7ff2)]); try page(domIO, [(0, 0x7ff1)])
        // Guests' memory.
        for p in placed {
            try p.k.forEachPage { pfn, bytes in
                guard let m = p.k.mfn(pfn) else { throw GenError.parameter("guest \(p.spec.domainID): pfn 0x\(hex(pfn)) has no frame") }
                try out.write(at: try fo(m), bytes)
            }
        }
        // Frame table and M2P, a chunk of frames at a time.
        struct Own { var mfn: UInt64; var pfn: UInt64; var count: UInt64; var down: Bool; var owner: UInt32 }
        var own: [Own] = placed.flatMap { p in p.runs.map { Own(mfn: $0.mfn, pfn: $0.pfn, count: $0.count, down: $0.down, owner: UInt32(pdx(p.dom))) } }
        own.sort { $0.mfn < $1.mfn }
        var xenHeap: [UInt64: (UInt32, UInt64)] = [:]            // mfn → (owner, count_info)
        let heapBits: UInt64 = 1 << 63 | 1 << 62
        for p in placed { xenHeap[p.shinfo] = (UInt32(pdx(p.dom)), heapBits | 2); xenHeap[p.grant] = (UInt32(pdx(p.dom)), heapBits | 1) }
        var freeFrames = pool.ranges[pool.index...].map { $0 }
        freeFrames.sort { $0.start < $1.start }
        let chunk: UInt64 = 1 << 16
        var oi = 0, fi = 0
        var c: UInt64 = 0
        while c < maxPage {
            let n = min(chunk, maxPage - c)
            var ft = [UInt64](repeating: 0, count: Int(n) * 4)
            var m2 = [UInt64](repeating: .max, count: Int(n))
            func set(_ f: UInt64, count: UInt64, owner: UInt32, type: UInt64) {
                let i = Int(f - c) * 4
                ft[i + 1] = count; ft[i + 2] = type; ft[i + 3] = UInt64(owner)
            }
            // Free RAM (not given to any guest or to Xen).
            while fi < freeFrames.count && freeFrames[fi].end <= c { fi += 1 }
            var j = fi
            while j < freeFrames.count && freeFrames[j].start < c + n {
                let r = freeFrames[j]
                for f in stride(from: max(r.start, c), to: min(r.end, c + n), by: 1) { set(f, count: 3 << 58, owner: 0, type: 0) }
                j += 1
            }
            // The dom_io low megabyte, the M2P's pages (dom_xen), Xen's heap pages.
            for f in stride(from: c, to: min(c + n, 0x100), by: 1) { set(f, count: 1 << 63 | 1, owner: UInt32(pdx(domIO)), type: 7 << 61 | 1 << 58 | 1) }
            for f in stride(from: max(c, m2pMfn), to: min(c + n, m2pMfn + m2pPages), by: 1) { set(f, count: heapBits | 1, owner: UInt32(pdx(domXen)), type: 1 << 58 | 1) }
                        for (f, v) in xenHeap where f >= c && f < c + n { set(f, count: v.1, owner: v.0, type: 7 << 61 | 1 << 58 | 1) }
            // Guests' frames.
            while oi < own.count && own[oi].mfn + own[oi].count <= c { oi += 1 }
            var k = oi
            while k < own.count && own[k].mfn < c + n {
                let r = own[k]
                for f in stride(from: max(r.mfn, c), to: min(r.mfn + r.count, c + n), by: 1) {
                    set(f, count: 1 << 63 | 1, owner: r.owner, type: 7 << 61 | 1 << 58 | 1)
                    let off = f - r.mfn
                    m2[Int(f - c)] = r.down ? r.pfn + (r.count - 1 - off) : r.pfn + off
                }
                k += 1
            }
            // Each table's entries for frames c… into its own machine pages, page by page.
            func place(_ b: UnsafeRawBufferPointer, base: UInt64, table: UInt64, entry: UInt64) throws {
                var done = 0
                while done < b.count {
                    let byte = (base + UInt64(done) / entry) * entry
                    let pageOff = Int(byte & 0xfff), inPage = min(b.count - done, 4096 - pageOff)
                    try out.write(at: try fo(table + byte >> 12) + UInt64(pageOff), UnsafeRawBufferPointer(rebasing: b[done..<done + inPage]))
                    done += inPage
                }
            }
            // The frame table by pdx (frames in the hole have none), the M2P by mfn.
            if pdx(c) == pdx(c + n - 1) - (n - 1) && pfnOfPdx(pdx(c)) == c {
                try ft.withUnsafeBytes { try place($0, base: pdx(c), table: ftMfn, entry: 32) }
            }
            try m2.withUnsafeBytes { try place($0, base: c, table: m2pMfn, entry: 8) }
            c += n
        }
        try out.close()

        // Each guest's own files: System.map and manifest, as for a single-guest dump.
        var guests: [GeneratedDump] = []
        var rows: [HostManifest.Guest] = []
        for p in placed {
            let gp = path + ".dom\(p.spec.domainID)"
            let missing = p.k.mfn(p.k.p2mMissingPfn) ?? .max, identity = p.k.mfn(p.k.p2mIdentityPfn) ?? .max
            let m = makeManifest(kind: "host-guest", kernel: p.k, profile: p.spec.profile, seed: o.seed, guestPages: p.spec.mib << 8,
                                 machinePages: machinePages, cr3: p.cr3, fll: p.fll, missing: missing, identity: identity,
                                 xenPhysStart: xenPhysStart, omitted: [], domainID: UInt32(p.spec.domainID))
            let gd = try finishOutputs(path: gp, kernel: p.k, manifest: m)
            guests.append(GeneratedDump(path: path, systemMapPath: gd.systemMapPath, manifestPath: gd.manifestPath, manifest: m))
            rows.append(.init(domainID: p.spec.domainID, profile: p.spec.profile.rawValue, pages: p.runs.reduce(0) { $0 + $1.count },
                              maxPfn: p.maxPfn, fllMfn: p.fll, cr3: p.cr3, sharedInfoMfn: p.shinfo, domainAddress: dva(p.dom),
                              p2mDigest: m.p2mDigest, systemMap: gd.systemMapPath, manifest: gd.manifestPath))
        }
        let hm = HostManifest(machinePages: machinePages, maxPage: maxPage, xenPhysStart: xenPhysStart, frameTableMfn: ftMfn, m2pMfn: m2pMfn,
                              pdxBottom: pdxBottom, pdxBits: pdxBits, maxPdx: maxPdx, guests: rows)
        let manPath = path + ".manifest.json"
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(hm).write(to: URL(fileURLWithPath: manPath))
        return GeneratedHost(path: path, manifestPath: manPath, manifest: hm, guests: guests)
    }
}

/// VMCOREINFO_XEN as Xen 4.17 writes it (common/kexec.c, arch/x86/machine_kexec.c): its keys,
/// the sizes and offsets of the real note, the symbols' addresses given; NUL-padded to 4068
/// bytes as on the real dump.
func xenVMCoreInfoNote(domainList: UInt64, frameTable: UInt64, maxPage: UInt64, domXen: UInt64, domIO: UInt64, pgdL4: UInt64) -> [UInt8] {
    let text = """
    PAGESIZE=4096
    SYMBOL(domain_list)=\(hex(domainList))
    SYMBOL(frame_table)=\(hex(frameTable))
    SYMBOL(max_page)=\(hex(maxPage))
    SIZE(page_info)=32
    SIZE(domain)=2304
    OFFSET(page_info.count_info)=8
    OFFSET(page_info._domain)=24
    OFFSET(domain.domain_id)=0
    OFFSET(domain.next_in_list)=136
    SYMBOL(dom_xen)=\(hex(domXen))
    SYMBOL(dom_io)=\(hex(domIO))
    SYMBOL(pgd_l4)=\(hex(pgdL4))

    """
    return elfNote(name: "VMCOREINFO_XEN", type: 0, desc: Array(text.utf8) + [UInt8](repeating: 0, count: 4068 - text.utf8.count))
}
