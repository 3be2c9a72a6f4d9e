// An `xl dump-core` file of a PV domU (Xen docs/misc/dump-core-format.txt, tools/libs/guest/xg_core.c):
// ELF64 ET_CORE with section headers only (e_phnum 0, e_shoff 64), `.note.Xen` with libxc's
// fixed 16-byte-header notes, `.xen_prstatus` (vcpu_guest_context), `.xen_shared_info`,
// `.xen_pages` (page-aligned), `.xen_p2m` (pfn, gmfn pairs in pfn order), `.shstrtab`.
import Foundation
import P2MFormat

public struct XLDumpOptions: Sendable {
    public var guestMiB: UInt64 = 256
    public var profile: LayoutProfile = .fragmented
    public var seed: UInt64 = 1
    public var nrPfns: UInt64? = nil
    public var domainID: UInt32 = 1
    public var kernel = KernelOptions()
    /// .xen_pages only for the pages that hold something (xl writes every page; this makes a
    /// dump of a few hundred KiB, for fuzz seeds).
    public var onlyWrittenPages = false
    public init() {}
}

extension DumpGenerator {
    /// x86_64 vcpu_guest_context: 5168 bytes, ctrlreg[8] at 4984 (fpu 512, flags 8,
    /// cpu_user_regs 200, trap_info[256] 4096, ldt 16, gdt_frames 128 + ents 8, kernel_ss/sp 16).
    static let vcpuContextSize = 5168
    static let ctrlregOffset = 4984

    public static func generateXL(_ o: XLDumpOptions, to path: String) throws -> GeneratedDump {
        guard o.guestMiB >= 64 else { throw GenError.parameter("--guest-mib must be at least 64") }
        let guestPages = o.guestMiB << 8
        let machinePages = max(guestPages * 2, 1 << 18)
        let free = [FrameRange(start: 0x10000, count: machinePages - 0x10000)]
        let k = try guest(guestPages: guestPages, nrPfns: o.nrPfns, free: free, profile: o.profile, seed: o.seed, kernel: o.kernel)
        guard let pml4Mfn = k.mfn(k.pml4Pfn), let missing = k.mfn(k.p2mMissingPfn), let identity = k.mfn(k.p2mIdentityPfn) else {
            throw GenError.parameter("kernel pages unmapped")
        }
        // Pages present: every pfn with a machine frame, in pfn order (libxc skips the rest).
        var present: [(pfn: UInt64, mfn: UInt64)] = []
        var pos: UInt64 = 0
        for s in k.layout.segments {
            switch s {
            case .ascending(let f, let n): for i in 0..<n { present.append((pos + i, f + i)) }
            case .descending(let f, let n): for i in 0..<n { present.append((pos + i, f - i)) }
            case .literal(let v): for (i, e) in v.enumerated() where P2MEntry(raw: e).kind == .mfn { present.append((pos + UInt64(i), e)) }
            default: break
            }
            pos += s.count
        }
        if o.onlyWrittenPages {
            var written = Set<UInt64>()
            try k.forEachPage { pfn, _ in written.insert(pfn) }
            present = present.filter { written.contains($0.pfn) }
        }
        let nrPages = UInt64(present.count)

        // .note.Xen
        var notes: [UInt8] = []
        func xnote(_ type: UInt32, _ desc: [UInt8]) { notes += u32le(4) + u32le(UInt32(desc.count)) + u32le(type) + Array("Xen".utf8) + [0] + desc }
        xnote(0x200_0000, [])
        xnote(0x200_0001, u64le(0xF00F_EBED) + u64le(1) + u64le(nrPages) + u64le(4096))
        var ver = u64le(4) + u64le(17)
        func fixed(_ s: String, _ n: Int) -> [UInt8] { var b = Array(s.utf8.prefix(n - 1)); b += [UInt8](repeating: 0, count: n - b.count); return b }
        ver += fixed("-pre", 16) + fixed("gcc (Debian 12.2.0-14) 12.2.0", 64) + fixed("pkg-xen-devel", 16) + fixed("debian.org", 32) + fixed("Tue Aug  4 12:00:00 UTC 2026", 32)
        ver += fixed("xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64", 1024) + fixed("unavailable", 64)
        ver += u64le(0xffff_8000_0000_0000) + u64le(4096)
        xnote(0x200_0002, ver)
        xnote(0x200_0003, u64le(1))
        // .xen_prstatus: one vcpu; ctrlreg[3] = xen_pfn_to_cr3(mfn) = mfn << 12 on x86_64.
        var ctx = [UInt8](repeating: 0, count: vcpuContextSize)
        ctx.replaceSubrange(ctrlregOffset..<ctrlregOffset + 8, with: u64le(cr0))
        ctx.replaceSubrange(ctrlregOffset + 24..<ctrlregOffset + 32, with: u64le(pml4Mfn << 12))
        ctx.replaceSubrange(ctrlregOffset + 32..<ctrlregOffset + 40, with: u64le(cr4))
        // .xen_shared_info: arch fields at 0xC10 (public/arch-x86/xen.h, struct arch_shared_info). A modern domU has no tree.
        var shared = [UInt8](repeating: 0, count: 4096)
        // arch.max_pfn is xen_p2m_last_pfn (arch/x86/xen/p2m.c): the initial p2m size, i.e. the
        // guest's last populated pfn rounded up to a p2m page, not the 2^27-slot list.
        var lastUsed: UInt64 = 0, at: UInt64 = 0
        for s in k.layout.segments { if case .invalid = s {} else { lastUsed = at + s.count }; at += s.count }
        shared.replaceSubrange(0xC10..<0xC18, with: u64le((lastUsed + 511) / 512 * 512))
        shared.replaceSubrange(0xC18..<0xC20, with: u64le(.max))
        shared.replaceSubrange(0xC28..<0xC30, with: u64le(pml4Mfn << 12))
        shared.replaceSubrange(0xC30..<0xC38, with: u64le(k.listVAddr))
        // .shstrtab
        let names = ["", ".shstrtab", ".note.Xen", ".xen_prstatus", ".xen_shared_info", ".xen_pages", ".xen_p2m"]
        var strtab: [UInt8] = []
        var nameOff: [UInt32] = []
        for n in names { nameOff.append(UInt32(strtab.count)); strtab += Array(n.utf8) + [0] }
        let shnum = names.count
        var off = UInt64(64 + 64 * shnum)
        let notesOff = off; off += UInt64(notes.count)
        let ctxOff = roundUp(off, 8); off = ctxOff + UInt64(ctx.count)
        let sharedOff = roundUp(off, 8); off = sharedOff + 4096
        let pagesOff = roundUp(off, 4096); off = pagesOff + nrPages * 4096
        let p2mOff = off; off += nrPages * 16
        let strOff = off; off += UInt64(strtab.count)
        func shdr(_ i: Int, type: UInt32, off: UInt64, size: UInt64, align: UInt64, entsize: UInt64) -> [UInt8] {
            u32le(nameOff[i]) + u32le(type) + u64le(0) + u64le(0) + u64le(off) + u64le(size) + u32le(0) + u32le(0) + u64le(align) + u64le(entsize)
        }
        var sh = [UInt8](repeating: 0, count: 64)
        sh += shdr(1, type: 3, off: strOff, size: UInt64(strtab.count), align: 0, entsize: 0)
        sh += shdr(2, type: 7, off: notesOff, size: UInt64(notes.count), align: 4, entsize: 0)
        sh += shdr(3, type: 1, off: ctxOff, size: UInt64(ctx.count), align: 8, entsize: UInt64(ctx.count))
        sh += shdr(4, type: 1, off: sharedOff, size: 4096, align: 8, entsize: 4096)
        sh += shdr(5, type: 1, off: pagesOff, size: nrPages * 4096, align: 4096, entsize: 4096)
        sh += shdr(6, type: 1, off: p2mOff, size: nrPages * 16, align: 8, entsize: 16)

        let out = try SparseFile(path: path, size: off)
        try out.write(at: 0, elfHeader(type: 4, machine: 62, phoff: 0, phnum: 0, shoff: 64, shnum: UInt16(shnum), shstrndx: 1))
        try out.write(at: 64, sh)
        try out.write(at: notesOff, notes)
        try out.write(at: ctxOff, ctx)
        try out.write(at: sharedOff, shared)
        try out.write(at: strOff, strtab)
        var p2m = [UInt8](); p2m.reserveCapacity(present.count * 16)
        for e in present { p2m += u64le(e.pfn) + u64le(e.mfn) }
        try out.write(at: p2mOff, p2m)
        // Page i of .xen_pages is the i-th present pfn: binary search by pfn.
        func pageIndex(_ pfn: UInt64) -> UInt64? {
            var lo = 0, hi = present.count - 1
            while lo <= hi { let m = (lo + hi) / 2
                if present[m].pfn == pfn { return UInt64(m) }
                if present[m].pfn < pfn { lo = m + 1 } else { hi = m - 1 } }
            return nil
        }
        try k.forEachPage { pfn, bytes in
            guard let idx = pageIndex(pfn) else { throw GenError.parameter("pfn 0x\(String(pfn, radix: 16)) has no page in .xen_pages") }
            try out.write(at: pagesOff + idx * 4096, bytes)
        }
        try out.close()

        let manifest = makeManifest(kind: "xl-dump-core", kernel: k, profile: o.profile, seed: o.seed, guestPages: guestPages,
                                    machinePages: machinePages, cr3: pml4Mfn << 12, fll: nil, missing: missing, identity: identity,
                                    xenPhysStart: nil, omitted: [], domainID: o.domainID)
        return try finishOutputs(path: path, kernel: k, manifest: manifest)
    }
}
