// p2m-extract: one PV guest out of a crashed Xen host's dump, written as an `xl dump-core` file
// (libxc's xc_core ELF layout, tools/libs/guest/xg_core.c in Xen 4.17) with the guest's p2mnote
// note in a `.note.p2mnote` section, so that crash's xendump reader, libkdumpfile and p2mnote
// open a domU that only ever existed inside a host crash.
//
// Layout, as xc_domain_dumpcore_via_callback writes it: ELF64 ET_CORE, EI_ABIVERSION 1, no
// program headers, section headers right after the ELF header, .note.Xen (DUMPCORE_NONE,
// _HEADER {magic 0xF00FEBED, nr_vcpus, nr_pages, page_size}, _XEN_VERSION (1280 bytes),
// _FORMAT_VERSION 1), .xen_prstatus (vcpu_guest_context, 5168 bytes per vCPU), .xen_shared_info,
// .xen_pages (page aligned), .xen_p2m ({pfn, gmfn} pairs, then filler to a whole 8 KiB chunk:
// see p2mPairsPadded), .shstrtab last.
//
// One deliberate difference: libxc lists present pfns only, so a ballooned guest's entry index is
// not its pfn — and crash 8.0.2 (kernel.c read_xc_p2m) takes the index for the pfn, which makes
// it fail on such a file ("read error: physical address ... pud page", also on real xl files).
// p2m-extract writes one entry per pfn below max_pfn instead: {pfn, ~0} and a zero page where the
// guest has no frame. Both readers accept that; the header's nr_pages counts those entries.
//
// .xen_prstatus: crash takes the page-table root from init_top_pgt and only rip/rsp from here;
// libkdumpfile takes vCPU 0's ctrlreg[3] as the root (machine address). ctrlreg[3] is the
// p2m_cr3 the guest's kernel published in its shared_info (swapper_pg_dir's frame << 12, as
// arch_get_info_guest encodes a 64-bit PV cr3); the registers are those Xen saved in struct vcpu
// where the build is recognised (Xen 4.17's layout, each vCPU checked to point back at its
// domain), else zero: struct vcpu's layout is not in VMCOREINFO_XEN.
import ArgumentParser
import DumpIO
import Foundation
import GuestReader
import P2MFormat
import Translation

public struct ExtractSummary: Codable, Sendable {
    public var dump: String
    public var output: String
    public var domain: UInt16
    public var pfns: UInt64
    public var pagesWritten: UInt64
    public var zeroPages: UInt64
    public var pagesNotInDump: UInt64
    public var cr3: MachAddr
    public var sharedInfoMfn: MFN?
    public var noteSource: String
    public var bytes: UInt64
}

public enum Extractor {
    static let coreMagicPV: UInt64 = 0xF00F_EBED
    static let vcpuContextSize = 5168
    static let ctrlreg3Offset = 5008
    static let hypervisorVirtStart: UInt64 = 0xFFFF_8000_0000_0000   // public/arch-x86/xen-x86_64.h

    public static func extract(dump path: String, domain id: UInt16, output: String, systemMap: String?, vmlinux: String?,
                               force: Bool, xenSyms: String? = nil) throws -> ExtractSummary {
        let dump = try openDump(path: path)
        let symbols = try SymbolTable.forDump(systemMap: systemMap, vmlinux: vmlinux, dump: dump)
        var ro = GuestSelection(); ro.domain = id; ro.xenSyms = xenSyms
        let resolver = P2MResolver(dump: dump, symbols: symbols, options: ro)
        guard let dom = try resolver.domain() else { throw DumpError(path, "no domain") }
        guard dom.looksPV, let arch = dom.arch, arch.p2mCr3 != 0 else {
            throw DumpError(path, "domain \(id) does not look like a Linux PV guest (its shared_info names no p2m_cr3); only PV guests can be extracted")
        }
        // The note: the dump's own for this domain, else made now (checked against every source).
        let noteBytes: [UInt8], noteSource: String
        if let n = try resolver.note() {
            noteBytes = try P2MNote.elfNote(descriptor: n.note.desc); noteSource = "the dump's note for domain \(id)"
        } else {
            var o = EmitOptions(input: path); o.guest.domain = id; o.guest.systemMap = systemMap; o.guest.vmlinux = vmlinux; o.guest.xenSyms = xenSyms
            let r = try Emitter.emit(o)
            if let c = r.summary.crossCheck, !c.agrees {
                throw DumpError(path, "domain \(id)'s p2m sources disagree; nothing written:\n" + CrossCheckText.render(c))
            }
            noteBytes = r.note.elfNoteBytes; noteSource = "\(r.summary.source), made now"
        }
        let map = try P2MNote.decode(descriptor: P2MNote.descriptor(fromElfNote: noteBytes)).map
        let n = min(map.nrPfns, arch.maxPfn > 0 ? arch.maxPfn : map.nrPfns)
        guard n > 0, n <= 1 << 32 else { throw DumpError(path, "domain \(id): max_pfn 0x\(String(arch.maxPfn, radix: 16)) is implausible") }

        // Xen's version strings, read where the crash info says they are.
        func cstring(_ k: Int, _ max: Int) -> [UInt8] {
            guard let ci = dump.crashInfo, k < ci.stringAddresses.count,
                  let b = try? dump.memory.readBytes(MachAddr(rawValue: ci.stringAddresses[k]), count: max) else { return [] }
            return Array(b.prefix { $0 != 0 }.prefix(max - 1))
        }
        func field(_ b: [UInt8], _ n: Int) -> [UInt8] { b.prefix(n) + [UInt8](repeating: 0, count: n - min(n, b.count)) }
        var version = le(dump.crashInfo?.major ?? 0, 8) + le(dump.crashInfo?.minor ?? 0, 8) + field(cstring(0, 16), 16)
        version += field(cstring(2, 64), 64) + field([], 16) + field([], 32) + field(cstring(3, 32), 32)   // compile_info
        version += field(Array("xen-3.0-x86_64".utf8), 1024) + field(cstring(1, 64), 64)
        version += le(hypervisorVirtStart, 8) + le(4096, 8)
        func xenNote(_ type: UInt32, _ desc: [UInt8]) -> [UInt8] { le(4, 4) + le(UInt64(desc.count), 4) + le(UInt64(type), 4) + Array("Xen\0".utf8) + desc }

        // vCPU contexts: Xen's saved registers where the build's struct vcpu is known (a blocked
        // vCPU's are current; a running one's are from its last switch), else one zeroed context.
        // ctrlreg[3] is the kernel's own root (p2m_cr3) for every vCPU: libkdumpfile takes vCPU 0's.
        func context(_ userRegs: [UInt8]?) -> [UInt8] {
            var c = [UInt8](repeating: 0, count: vcpuContextSize)
            c.replaceSubrange(512..<520, with: le(0x20 | 0x4, 8))                 // VGCF_online | VGCF_in_kernel
            if let r = userRegs { c.replaceSubrange(520..<720, with: r) }
            c.replaceSubrange(ctrlreg3Offset..<ctrlreg3Offset + 8, with: le(arch.p2mCr3 & PTE.addressMask, 8))
            return c
        }
        let saved = ((try? resolver.host().vcpus(of: dom)) ?? nil) ?? []
        let ctx = saved.isEmpty ? context(nil) : saved.flatMap { context($0.userRegs) }
        let nvcpus = UInt64(ctx.count / vcpuContextSize)
        var shared = [UInt8](repeating: 0, count: 4096)
        if let s = dom.sharedInfoMfn, let b = try? dump.memory.readBytes(MachAddr(rawValue: PageGeometry.x86.base(s.rawValue)), count: Int(PageGeometry.x86.size)) { shared = b }

        let notes = xenNote(0x200_0000, []) + xenNote(0x200_0001, le(coreMagicPV, 8) + le(nvcpus, 8) + le(n, 8) + le(4096, 8))
            + xenNote(0x200_0002, version) + xenNote(0x200_0003, le(1, 8))
        let names = ["", ".shstrtab", ".note.Xen", ".xen_prstatus", ".xen_shared_info", ".xen_pages", ".xen_p2m", ".note.p2mnote"]
        var strtab: [UInt8] = []
        var nameOff: [UInt32] = []
        for nm in names { nameOff.append(UInt32(strtab.count)); strtab += Array(nm.utf8) + [0] }
        let shoff: UInt64 = 64
        let notesOff = shoff + 64 * UInt64(names.count)
        let prOff = (notesOff + UInt64(notes.count) + 7) / 8 * 8
        let siOff = prOff + UInt64(ctx.count)
        let pagesOff = PageGeometry.x86.roundUp(siOff + PageGeometry.x86.size)
        let (pagesLen, o1) = n.multipliedReportingOverflow(by: 4096)
        guard !o1 else { throw DumpError(path, "too many pages") }
        let p2mOff = pagesOff + pagesLen
        // crash 8.0.2 (kernel.c read_xc_p2m) reads .xen_p2m in fixed 8192-byte chunks of 512
        // pairs and fails on a short read ("cannot read from xch_index_offset offset …"): the
        // pairs are followed by {~0, ~0} filler up to a whole chunk, outside the section's
        // sh_size (libxc writes none, so crash failed on libxc's own files of such guests too).
        // ~0, not zeros: crash compares the gmfn field with the mfn it looks for.
        let p2mChunkPairs: UInt64 = 512
        let p2mPairsPadded = (n + p2mChunkPairs - 1) / p2mChunkPairs * p2mChunkPairs
        let noteOff = p2mOff + p2mPairsPadded * 16
        let strOff = noteOff + UInt64(noteBytes.count)
        func shdr(_ k: Int, type: UInt32, off: UInt64, size: UInt64, align: UInt64, entsize: UInt64) -> [UInt8] {
            le(UInt64(nameOff[k]), 4) + le(UInt64(type), 4) + le(0, 8) + le(0, 8) + le(off, 8) + le(size, 8) + le(0, 4) + le(0, 4) + le(align, 8) + le(entsize, 8)
        }
        var head = [UInt8](repeating: 0, count: 64)
        head.replaceSubrange(0..<9, with: [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 1])
        head.replaceSubrange(16..<20, with: le(4, 2) + le(62, 2))               // ET_CORE, EM_X86_64
        head.replaceSubrange(20..<24, with: le(1, 4))
        head.replaceSubrange(40..<48, with: le(shoff, 8))
        head.replaceSubrange(52..<64, with: le(64, 2) + le(56, 2) + le(0, 2) + le(64, 2) + le(UInt64(names.count), 2) + le(1, 2))
        head += [UInt8](repeating: 0, count: 64)
        head += shdr(1, type: 3, off: strOff, size: UInt64(strtab.count), align: 0, entsize: 0)
        head += shdr(2, type: 7, off: notesOff, size: UInt64(notes.count), align: 0, entsize: 0)
        head += shdr(3, type: 1, off: prOff, size: UInt64(ctx.count), align: 8, entsize: UInt64(vcpuContextSize))
        head += shdr(4, type: 1, off: siOff, size: 4096, align: 8, entsize: 4096)
        head += shdr(5, type: 1, off: pagesOff, size: pagesLen, align: 4096, entsize: 4096)
        head += shdr(6, type: 1, off: p2mOff, size: n * 16, align: 8, entsize: 16)
        head += shdr(7, type: 7, off: noteOff, size: UInt64(noteBytes.count), align: 4, entsize: 0)

        var written: UInt64 = 0, zeros: UInt64 = 0, missing: UInt64 = 0
        var total: UInt64 = 0
        try OutputFile.checkWritable(output, force: force)
        try OutputFile.stream(to: output, force: force) { w in
            try w.append(head); try w.append(notes); try w.pad(to: 8)
            try w.append(ctx); try w.append(shared); try w.pad(to: 4096)
            // Pages in pfn order, 256 at a time; a frame the dump lacks is a zero page, counted.
            let batch = 256
            var buf = [UInt8](repeating: 0, count: batch * 4096)
            var ents = [UInt64](repeating: 0, count: batch)
            var pfn: UInt64 = 0
            while pfn < n {
                if pfn & 0xffff == 0 { try Interrupt.check() }
                let k = ents.withUnsafeMutableBufferPointer { map.entries(from: pfn, into: UnsafeMutableBufferPointer(rebasing: $0[0..<Int(min(UInt64(batch), n - pfn))])) }
                // Pages with a frame are gathered and written together; a pfn without one is a hole.
                var filled = 0
                func flush() throws {
                    try buf.withUnsafeBytes { try w.append(raw: UnsafeRawBufferPointer(rebasing: $0[0..<(filled * 4096)])) }
                    filled = 0
                }
                for i in 0..<k {
                    let e = P2MEntry(raw: ents[i])
                    var got = false
                    if e.kind == .mfn, let m = e.frame, let a = m.address() {
                        do {
                            try buf.withUnsafeMutableBytes { try dump.memory.read(a, into: UnsafeMutableRawBufferPointer(rebasing: $0[(filled * 4096)..<((filled + 1) * 4096)])) }
                            got = true; written += 1; filled += 1
                        } catch let d as DumpError where d.notInDump { missing += 1 }
                    }
                    if !got { try flush(); try w.skip(4096); zeros += 1 }
                }
                try flush()
                pfn += UInt64(k)
            }
            // One {pfn, gmfn} pair per pfn, in pfn order (see the header comment).
            pfn = 0
            var pairs = [UInt64](repeating: 0, count: 2 * 4096)
            while pfn < n {
                let k = ents.withUnsafeMutableBufferPointer { map.entries(from: pfn, into: UnsafeMutableBufferPointer(rebasing: $0[0..<Int(min(UInt64(batch), n - pfn))])) }
                for i in 0..<k {
                    let e = P2MEntry(raw: ents[i])
                    pairs[2 * i] = (pfn + UInt64(i)).littleEndian
                    pairs[2 * i + 1] = (e.kind == .mfn ? (e.frame?.rawValue ?? .max) : .max).littleEndian
                }
                try pairs.withUnsafeBytes { try w.append(raw: UnsafeRawBufferPointer(rebasing: $0[0..<(k * 16)])) }
                pfn += UInt64(k)
            }
            try w.append([UInt8](repeating: 0xff, count: Int((p2mPairsPadded - n) * 16)))
            try w.append(noteBytes)
            try w.append(strtab)
            total = w.offset
        }
        return ExtractSummary(dump: path, output: output, domain: id, pfns: n, pagesWritten: written, zeroPages: zeros, pagesNotInDump: missing,
                              cr3: MachAddr(rawValue: arch.p2mCr3 & PTE.addressMask), sharedInfoMfn: dom.sharedInfoMfn, noteSource: noteSource, bytes: total)
    }

    static func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
}

public struct ExtractCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "p2m-extract",
        abstract: "Write one PV guest of a crashed Xen host's dump as an `xl dump-core` file, with its p2mnote note.",
        discussion: reflow("""
        The guest is found in Xen's own tables (`p2m-analyze HOST domains` lists them); its p2m is the
        dump's note for that domain, or is made now from its linear list and checked against its
        frame-list tree and Xen's M2P. The file is laid out as libxc's xl dump-core, with one p2m
        entry per pfn below max_pfn (a zero page where the guest has no frame), so that crash
        (`crash vmlinux guest.xcore`), libkdumpfile and p2m-analyze open it. Cost: O(guest pages).

        Examples:
          p2m-extract host.vmcore --domain 3 -o domu3.xcore
          p2m-extract host.vmcore --domain 3 --system-map System.map-guest -o domu3.xcore --json
        """),
        version: p2mnoteVersion)

    @Argument(help: "The host dump (ELF vmcore or kdump-compressed).") var dump: String
    @Option(help: "The guest's domain id.") var domain: UInt16
    @Option(name: [.short, .long], help: "The xl dump-core file to write.") var output: String
    @Option(help: "System.map of the guest kernel (for its linear list's exact extent and shared pages).") var systemMap: String?
    @Option(help: "vmlinux of the guest kernel.") var vmlinux: String?
    @Option(help: "Xen's symbols (xen-syms or xen-syms.map), optional: checked against the host dump's Xen.") var xenSyms: String?
    @Flag(help: "Overwrite an existing output file.") var force = false
    @Flag(help: "Print the summary (and errors, on stderr) as JSON.") var json = false

    public init() {}

    public func run() throws {
        try reportingErrors(json: json, tool: "p2m-extract") {
            let s = try Extractor.extract(dump: dump, domain: domain, output: output, systemMap: systemMap, vmlinux: vmlinux, force: force, xenSyms: xenSyms)
            if json { try printJSON(s) } else {
                print("domain:      \(s.domain) → \(s.output) (\(s.bytes) bytes, xl dump-core)")
                print("pfns:        \(s.pfns): \(s.pagesWritten) pages, \(s.zeroPages) zero pages where the guest has no frame")
                print("cr3:         \(s.cr3) (the guest's p2m_cr3)")
                print("p2m:         \(s.noteSource)")
            }
            if s.pagesNotInDump > 0 {
                warn("p2m-extract: warning: \(s.pagesNotInDump) of the guest's pages are not in the host dump (filtered out?): written as zero pages")
            }
        }
    }
}
