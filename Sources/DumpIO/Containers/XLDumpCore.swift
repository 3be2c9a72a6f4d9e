// An `xl dump-core` file (libxc's xc_domain_dumpcore): section headers only; `.xen_pages` holds
// the guest's pages in the order of `.xen_p2m`'s (pfn, mfn) pairs. Machine reads go through the
// dump's own mfn → page index (what libxc recorded), never through a p2m we would translate.
// Each run of pages contiguous both in mfn and in file order is one memory segment.
import P2MFormat

public final class XLDumpCore: DumpContainer, GuestRecord {
    public let elf: DumpFile
    public let memory: MachineMemoryMap
    public let pagesSection: Section
    /// (pfn, mfn) of page i, in file order (libxc's INVALID padding pairs dropped).
    public let pairs: [(pfn: UInt64, mfn: UInt64)]
    public var path: String { elf.path }
    public var kind: DumpKind { .xenDumpCore }
    public var fileSize: UInt64 { elf.fileSize }
    public var notes: [ElfNote] { elf.notes }
    public var layoutDescription: String { "\(elf.sections.count) sections, \(pairs.count) pages" }
    public var containerName: String { "xl dump-core" }
    public var guestRecord: GuestRecord? { self }

    public init(_ d: DumpFile) throws {
        precondition(d.kind == .xenDumpCore)
        elf = d
        func one(_ name: String) throws -> Section? {
            let s = d.sections.filter { $0.name == name }
            guard s.count <= 1 else { throw DumpError(d.path, offset: s[1].offset, "\(s.count) \(name) sections; an xl dump-core has one") }
            return s.first
        }
        // Errors about which sections there are point at the section header table and list them.
        func names() -> String { d.sections.map(\.name).filter { !$0.isEmpty }.joined(separator: " ") }
        guard let pages = try one(".xen_pages") else {
            throw DumpError(d.path, offset: d.shoff, "no .xen_pages section among the \(d.sections.count) sections (\(names())); libxc's dump-core always writes one")
        }
        guard let p2m = try one(".xen_p2m") else {
            throw DumpError(d.path, offset: d.shoff, d.section(named: ".xen_pfn") != nil ? "an auto-translated (HVM) guest: .xen_pfn instead of .xen_p2m" : "no .xen_p2m section among the \(d.sections.count) sections (\(names()))")
        }
        for s in [pages, p2m] where s.type == 8 {
            throw DumpError(d.path, offset: d.shoff, "\(s.name) is SHT_NOBITS (type 8), expected SHT_PROGBITS: it holds no data")
        }
        guard p2m.size % 16 == 0 else { throw DumpError(d.path, offset: p2m.offset, ".xen_p2m size \(p2m.size) is not a multiple of 16") }
        guard pages.size % 4096 == 0 else { throw DumpError(d.path, offset: pages.offset, ".xen_pages size \(pages.size) is not a multiple of 4096") }
        let n = p2m.size / 16
        // libxc writes one (pfn, mfn) pair per page of .xen_pages (xch_nr_pages of each).
        guard n == pages.size / 4096 else {
            throw DumpError(d.path, offset: p2m.offset, ".xen_pages holds \(pages.size / 4096) pages but .xen_p2m lists \(n); libxc writes one pair per page")
        }
        guard n <= 1 << 36 else { throw DumpError(d.path, offset: p2m.offset, ".xen_p2m lists \(n) pages: implausible") }
        pagesSection = pages
        let raw = try d.file.read(offset: p2m.offset, count: Int(p2m.size))
        var pr: [(pfn: UInt64, mfn: UInt64)] = []
        pr.reserveCapacity(Int(n))
        raw.withUnsafeBytes { b in
            for i in 0..<Int(n) {
                let pfn = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 16 * i, as: UInt64.self))
                let mfn = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 16 * i + 8, as: UInt64.self))
                pr.append((pfn, mfn))
            }
        }
        // In pfn order, each pfn once (libxc's dump loop; crash's lookup needs the order);
        // {~0, ~0} padding pairs only at the end.
        var last: UInt64? = nil
        var padding = false
        for (i, p) in pr.enumerated() {
            let at = p2m.offset + UInt64(i) * 16
            if p.pfn == .max && p.mfn == .max { padding = true; continue }
            guard !padding else { throw DumpError(d.path, offset: at, ".xen_p2m pair \(i) follows libxc's {~0, ~0} padding; padding only ends the table") }
            guard p.pfn < 1 << 40 else { throw DumpError(d.path, offset: at, ".xen_p2m pair \(i) names pfn 0x\(String(p.pfn, radix: 16)), beyond 2^40") }
            if let l = last, p.pfn <= l {
                throw DumpError(d.path, offset: at, p.pfn == l ? "pfn 0x\(String(p.pfn, radix: 16)) is listed twice in .xen_p2m (pairs \(i - 1) and \(i))"
                                : ".xen_p2m is not in pfn order at pair \(i) (pfn 0x\(String(p.pfn, radix: 16)) after 0x\(String(l, radix: 16))); libxc writes it in order")
            }
            last = p.pfn
        }
        pairs = pr.filter { !($0.pfn == .max && $0.mfn == .max) }
        // Machine segments: runs of consecutive mfns at consecutive page indices. A pair whose
        // mfn is INVALID or past 2^52 names no machine page (the page stays readable by pfn).
        var segs: [MemorySegment] = []
        let file = d.file
        let base = pages.offset
        var i = 0
        let ordered = pr.enumerated().filter { $0.element.mfn < 1 << 40 && !($0.element.pfn == .max && $0.element.mfn == .max) }
        var byMfn = ordered.map { (index: UInt64($0.offset), mfn: $0.element.mfn) }
        byMfn.sort { $0.mfn < $1.mfn }
        while i < byMfn.count {
            var j = i + 1
            while j < byMfn.count, byMfn[j].mfn == byMfn[j - 1].mfn + 1, byMfn[j].index == byMfn[j - 1].index + 1 { j += 1 }
            if j < byMfn.count, byMfn[j].mfn == byMfn[j - 1].mfn {
                throw DumpError(d.path, offset: p2m.offset + byMfn[j].index * 16, "mfn 0x\(String(byMfn[j].mfn, radix: 16)) is listed twice in .xen_p2m")
            }
            let first = byMfn[i].index
            let fileStart = base + first * 4096
            segs.append(MemorySegment(start: PageGeometry.x86.base(byMfn[i].mfn), length: PageGeometry.x86.base(UInt64(j - i)), origin: ".xen_pages from page \(first)") { off, buf in
                try file.read(offset: fileStart + off, into: buf)
            })
            i = j
        }
        memory = try MachineMemoryMap(path: d.path, segments: segs)
    }

    /// `.xen_prstatus` vcpu 0's ctrlreg[3] (vcpu_guest_context_x86_64: ctrlreg at 4984), then
    /// shared info's p2m_cr3.
    public func recordedRoots() throws -> [RecordedRoot] {
        var r: [RecordedRoot] = []
        if let c = try vcpu0CR3(), c != 0 { r.append(RecordedRoot(cr3: c, source: ".xen_prstatus vcpu 0 ctrlreg[3]")) }
        if let s = try sharedInfoArch(), s.p2mCR3 != 0 { r.append(RecordedRoot(cr3: s.p2mCR3, source: ".xen_shared_info p2m_cr3")) }
        return r
    }

    /// Shared info arch fields: Xen's public/arch-x86/xen.h struct arch_shared_info, at 0xC10 of
    /// shared_info (max_pfn, pfn_to_mfn_frame_list_list, nmi_reason, p2m_cr3, p2m_vaddr).
    public func sharedInfoArch() throws -> (maxPfn: UInt64, fll: UInt64, p2mCR3: UInt64, p2mVAddr: UInt64)? {
        guard let s = elf.section(named: ".xen_shared_info"), s.type != 8, s.size >= 0xC40 else { return nil }
        let b = try elf.file.read(offset: s.offset + 0xC10, count: 0x30)
        return (le64(b, 0) ?? 0, le64(b, 8) ?? .max, le64(b, 0x18) ?? 0, le64(b, 0x20) ?? 0)
    }

    /// .xen_prstatus: one vcpu_guest_context_any_t (0x1430 bytes) per vCPU Xen gave a context
    /// for (xg_core.c skips the others, so the index is the vCPU id only without gaps).
    public func vcpuContexts() throws -> [[UInt8]] {
        guard let s = elf.section(named: ".xen_prstatus"), s.type != 8, s.size >= 0x1430 else { return [] }
        let n = Int(min(s.size / 0x1430, 4096))
        let all = try elf.file.read(offset: s.offset, count: n * 0x1430)
        return (0..<n).map { Array(all[($0 * 0x1430)..<(($0 + 1) * 0x1430)]) }
    }

    public func vcpu0CR3() throws -> UInt64? {
        guard let s = elf.section(named: ".xen_prstatus"), s.type != 8, s.size >= 5016 else { return nil }
        let b = try elf.file.read(offset: s.offset + 5008, count: 8)
        return le64(b, 0)
    }
}
