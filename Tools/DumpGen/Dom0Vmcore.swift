// A Xen dom0 kdump vmcore as Xen 4.17's kexec path, kexec-tools and the crash kernel's
// /proc/vmcore leave it (Xen's xen/common/kexec.c, kexec-tools'
// kexec/crashdump-xen.c, Linux fs/proc/vmcore.c; checked against Tools/real-dump's dumps):
// ELF64 ET_CORE, program headers right after the ELF header, one PT_NOTE first at the next
// page boundary (p_align 0), the notes zero-padded to a page, then PT_LOADs of *machine*
// memory at page-aligned offsets (p_paddr = machine address, p_vaddr = kexec-tools'
// meaningless 0xffff888000000000 + paddr, p_align 0), with the crash kernel's region missing.
import Foundation
import P2MFormat

public struct Dom0DumpOptions: Sendable {
    public var guestMiB: UInt64 = 512
    public var machineMiB: UInt64? = nil
    public var profile: LayoutProfile = .dom0
    public var seed: UInt64 = 1
    /// xen_p2m_size: 2^27 with Linux's default 512 GiB hotplug limit.
    public var nrPfns: UInt64? = nil
    public var cpus: Int = 2
    public var crashInfo = true
    public var crashRegs = true
    public var vmcoreinfoXen = true
    public var dom0VMCoreInfo = false
    public var kernel = KernelOptions()
    /// `makedumpfile -E` layout: notes right after the program headers, PT_LOAD data right
    /// after the notes, offsets not page-aligned (makedumpfile's elf_info.c): no slack at all.
    public var makedumpfileELayout = false
    /// PT_LOADs only over the frames that hold something (as `makedumpfile -E -d 1` splits them
    /// around excluded zero pages): a dump of a few hundred KiB, for fuzz seeds.
    public var onlyWrittenPages = false
    public init() {}
}

/// Machine memory of the host: RAM ranges, Xen's image, the crash kernel's reservation.
struct MachineLayout {
    var ram: [FrameRange] = []
    var xen: FrameRange
    var crash: FrameRange
    var free: [FrameRange] = []
    /// What the dump holds: RAM minus the crash region.
    var loads: [FrameRange] = []

    /// `highStart`: where RAM above the PCI hole resumes (4 GiB on a PC; higher, with a hole of
    /// unused address bits below it, on the machines where Xen compresses pdx).
    init(machinePages: UInt64, highStart: UInt64 = 0x100000) {
        if machinePages <= 0xC0000 {
            ram = [FrameRange(start: 0, count: 0x9f), FrameRange(start: 0x100, count: machinePages - 0x100)]
        } else {
            ram = [FrameRange(start: 0, count: 0x9f), FrameRange(start: 0x100, count: 0xC0000 - 0x100),
                   FrameRange(start: highStart, count: machinePages - 0xC0000)]
        }
        let low = ram[1]
        let crashPages = min(UInt64(256 << 8), max(UInt64(16 << 8), machinePages / 8)) & ~0x1ff
        crash = FrameRange(start: 0x4000, count: crashPages)              // at 64 MiB
        xen = FrameRange(start: (low.end - 0x2800) & ~0x1ff, count: 0x800)  // 8 MiB near the top of low RAM
        func minus(_ rs: [FrameRange], _ cut: FrameRange) -> [FrameRange] {
            rs.flatMap { r -> [FrameRange] in
                var out: [FrameRange] = []
                if cut.start > r.start { out.append(FrameRange(start: r.start, count: min(r.end, cut.start) - r.start)) }
                if cut.end < r.end { out.append(FrameRange(start: max(r.start, cut.end), count: r.end - max(r.start, cut.end))) }
                return out.filter { $0.count > 0 }
            }
        }
        loads = minus(ram, crash)
        free = minus(minus(minus(ram, crash), xen), FrameRange(start: 0, count: 0x100))
    }
}

public struct DumpManifest: Codable, Sendable {
    public struct Segment: Codable, Sendable {
        public var kind: String
        public var start: UInt64
        public var count: UInt64
        public var first: UInt64?
        public var values: [UInt64]?
    }
    public var kind: String
    public var profile: String
    public var seed: UInt64
    public var entryWidth: Int
    public var nrPfns: UInt64
    public var guestPages: UInt64
    public var machinePages: UInt64
    public var p2mDigest: UInt64
    public var p2mCounts: [String: UInt64]
    public var p2m: [Segment]
    public var listVAddr: UInt64
    public var cr3: UInt64
    public var fllMfn: UInt64?
    public var p2mMissingMfn: UInt64
    public var p2mIdentityMfn: UInt64
    public var xenPhysStart: UInt64?
    public var osRelease: String
    public var banner: String
    public var symbols: [String: UInt64]
    public var modules: [ModuleInfo]
    public var samples: [Sample]
    public var notesOmitted: [String]
    public var domainID: UInt32
}

public struct GeneratedDump: Sendable {
    public var path: String
    public var systemMapPath: String
    public var manifestPath: String
    public var manifest: DumpManifest
}

public enum DumpGenerator {
    static let cr0: UInt64 = 0x8005_003b
    static let cr4: UInt64 = 0x0035_06f0

    /// Layout + kernel for a guest (shared by both dump kinds).
    static func guest(guestPages: UInt64, nrPfns: UInt64?, free: [FrameRange], profile: LayoutProfile,
                      seed: UInt64, kernel: KernelOptions) throws -> GuestKernel {
        // Identity holes shift RAM up: the table must cover guest RAM plus the holes.
        let holes: UInt64 = (profile == .dom0 || profile == .ballooned) ? (guestPages > 0xC0000 ? 0x40000 + 0x61 : 0x61) : 0
        let need = guestPages + holes + guestPages / 4 + 512
        let n = nrPfns ?? max(UInt64(1) << 27, (need + 511) & ~511)
        let layout = try P2MLayout.generate(profile: profile, guestPages: guestPages, nrPfns: n, free: free,
                                            width: .eight, seed: seed)
        var k = kernel
        k.directMapLimitPages = min(k.directMapLimitPages, n)
        return try GuestKernel(layout: layout, ramPages: guestPages, options: k, seed: seed)
    }

    static func manifestSegments(_ layout: P2MLayout) -> [DumpManifest.Segment] {
        var out: [DumpManifest.Segment] = []
        var p: UInt64 = 0
        for s in layout.segments {
            switch s {
            case .invalid(let n): out.append(.init(kind: "invalid", start: p, count: n))
            case .identity(let n): out.append(.init(kind: "identity", start: p, count: n))
            case .ascending(let f, let n): out.append(.init(kind: "ascending", start: p, count: n, first: f))
            case .descending(let f, let n): out.append(.init(kind: "descending", start: p, count: n, first: f))
            case .literal(let v): out.append(.init(kind: "literal", start: p, count: UInt64(v.count), values: v.count <= 1 << 20 ? v : nil))
            }
            p += s.count
        }
        return out
    }

    static func layoutDigest(_ layout: P2MLayout) -> (UInt64, EntryCounts) {
        var d = MapDigester()
        for s in layout.segments {
            switch s {
            case .invalid(let n): d.feedInvalid(count: n)
            case .identity(let n): d.feedIdentity(count: n)
            case .ascending(let f, let n): d.feed(first: f, length: n, step: 1)
            case .descending(let f, let n): d.feed(first: f, length: n, step: .max)
            case .literal(let v): v.withUnsafeBufferPointer { d.feed(entries: $0) }
            }
        }
        let c = d.counts
        return (d.finish(), c)
    }

    public static func generateDom0(_ o: Dom0DumpOptions, to path: String) throws -> GeneratedDump {
        guard o.guestMiB >= 96 else { throw GenError.parameter("--guest-mib must be at least 96 (the kernel image sits at 16 MiB, its tables above 64 MiB)") }
        let guestPages = o.guestMiB << 8
        let machinePages = (o.machineMiB ?? max(o.guestMiB * 5 / 4 + 512, 1024)) << 8
        let machine = MachineLayout(machinePages: machinePages)
        let k = try guest(guestPages: guestPages, nrPfns: o.nrPfns, free: machine.free, profile: o.profile,
                          seed: o.seed, kernel: o.kernel)
        guard let pml4Mfn = k.mfn(k.pml4Pfn), let missing = k.mfn(k.p2mMissingPfn),
              let identity = k.mfn(k.p2mIdentityPfn), let top = k.mfn(k.frameTreeTopPfn) else {
            throw GenError.parameter("kernel pages unmapped")
        }
        let fll: UInt64? = k.hasFrameTree ? top : nil
        let xenPhysStart = machine.xen.start << 12

        // Notes, in the order the merged /proc/vmcore PT_NOTE has them.
        var notes: [UInt8] = []
        var omitted: [String] = []
        for cpu in 0..<o.cpus {
            var prstatus = [UInt8](repeating: 0, count: 336)
            prstatus.replaceSubrange(32..<36, with: u32le(UInt32(cpu)))       // pr_pid
            notes += elfNote(name: "CORE", type: 1, desc: prstatus)
            if o.crashRegs {
                let cr3 = cpu == 0 ? pml4Mfn << 12 : (machine.xen.start + 0x100) << 12   // CPU 1 idles in Xen
                notes += elfNote(name: "Xen", type: 0x100_0002, desc: u64le(cr0) + u64le(0) + u64le(cr3) + u64le(cr4))
            }
            if cpu == 0 && o.crashInfo {
                let strings = xenPhysStart + 0x10000
                var info = u64le(4) + u64le(17)
                for i in 0..<5 { info += u64le(strings + UInt64(i) * 0x40) }
                info += u64le(0) + u64le(xenPhysStart) + u64le(fll ?? .max)
                notes += elfNote(name: "Xen", type: 0x100_0001, desc: info)
            }
        }
        if !o.crashRegs { omitted.append("crash-regs") }
        if !o.crashInfo { omitted.append("crash-info") }
        if o.vmcoreinfoXen {
            // Xen 4.17's keys and sizes; the symbols point into an image this dom0 generator does
            // not lay out (`p2m-gendump host` does, with Xen's tables behind them).
            let xenBase: UInt64 = 0xffff_82d0_4000_0000
            notes += xenVMCoreInfoNote(domainList: xenBase + 0x5e5e28, frameTable: xenBase + 0x39e858, maxPage: xenBase + 0x5e6a10,
                                       domXen: xenBase + 0x5e6a18, domIO: xenBase + 0x5e6a20, pgdL4: xenBase + 0x5c3000)
        } else {
            omitted.append("vmcoreinfo-xen")
        }
        if o.dom0VMCoreInfo {
            var text = "OSRELEASE=\(o.kernel.release)\nPAGESIZE=4096\n"
            for n in ["init_uts_ns", "_stext", "swapper_pg_dir", "init_top_pgt"] {
                if let a = k.symbol(n) { text += "SYMBOL(\(n))=\(hex(a))\n" }
            }
            text += "NUMBER(phys_base)=0\nNUMBER(pgtable_l5_enabled)=0\nKERNELOFFSET=0\n"
            notes += elfNote(name: "VMCOREINFO", type: 0, desc: Array(text.utf8))
        }

        // Program headers.
        var loads = machine.loads
        if o.onlyWrittenPages {
            var written = Set<UInt64>([machine.xen.start])
            try k.forEachPage { pfn, _ in if let m = k.mfn(pfn) { written.insert(m) } }
            loads = []
            for m in written.sorted() {
                if let last = loads.last, last.end == m { loads[loads.count - 1] = FrameRange(start: last.start, count: last.count + 1) }
                else { loads.append(FrameRange(start: m, count: 1)) }
            }
        }
        let phnum = 1 + loads.count
        let notesOff = o.makedumpfileELayout ? 64 + 56 * UInt64(phnum) : roundUp(64 + 56 * UInt64(phnum), 4096)
        var off = o.makedumpfileELayout ? notesOff + UInt64(notes.count) : roundUp(notesOff + UInt64(notes.count), 4096)
        var phdrs: [UInt8] = phdr(type: 4, flags: 0, offset: notesOff, vaddr: 0, paddr: 0, size: UInt64(notes.count), align: 0)
        var loadOffsets: [(FrameRange, UInt64)] = []
        for r in loads {
            let paddr = r.start << 12, size = r.count << 12
            phdrs += phdr(type: 1, flags: 7, offset: off, vaddr: LinuxX86_64.pageOffsetBase &+ paddr, paddr: paddr, size: size, align: 0)
            loadOffsets.append((r, off))
            off += size
        }
        let fileSize = off

        let out = try SparseFile(path: path, size: fileSize)
        try out.write(at: 0, elfHeader(type: 4, machine: 62, phoff: 64, phnum: UInt16(phnum), shoff: 0, shnum: 0, shstrndx: 0))
        try out.write(at: 64, phdrs)
        try out.write(at: notesOff, notes)
        func fileOffset(mfn: UInt64) -> UInt64? {
            for (r, o) in loadOffsets where mfn >= r.start && mfn < r.end { return o + ((mfn - r.start) << 12) }
            return nil
        }
        try k.forEachPage { pfn, bytes in
            guard let m = k.mfn(pfn), let fo = fileOffset(mfn: m) else {
                throw GenError.parameter("pfn 0x\(String(pfn, radix: 16)) lands outside the dump")
            }
            try out.write(at: fo, bytes)
        }
        // Xen's own region: a recognisable image start and the version strings crash info points to.
        if let fo = fileOffset(mfn: machine.xen.start) {
            try out.write(at: fo, Array("Xen 4.17 hypervisor image (p2mnote synthetic)".utf8))
            let strs = ["-pre", "unavailable", "gcc (Debian 12.2.0-14) 12.2.0", "Tue Aug  4 12:00:00 UTC 2026", "12:00:00"]
            for (i, s) in strs.enumerated() { try out.write(at: fo + 0x10000 + UInt64(i) * 0x40, Array(s.utf8) + [0]) }
        }
        try out.close()

        let manifest = makeManifest(kind: "dom0-kdump", kernel: k, profile: o.profile, seed: o.seed, guestPages: guestPages,
                                    machinePages: machinePages, cr3: pml4Mfn << 12, fll: fll, missing: missing, identity: identity,
                                    xenPhysStart: xenPhysStart, omitted: omitted, domainID: 0)
        return try finishOutputs(path: path, kernel: k, manifest: manifest)
    }

    static func makeManifest(kind: String, kernel k: GuestKernel, profile: LayoutProfile, seed: UInt64, guestPages: UInt64,
                             machinePages: UInt64, cr3: UInt64, fll: UInt64?, missing: UInt64, identity: UInt64,
                             xenPhysStart: UInt64?, omitted: [String], domainID: UInt32) -> DumpManifest {
        let (digest, counts) = layoutDigest(k.layout)
        return DumpManifest(
            kind: kind, profile: profile.rawValue, seed: seed, entryWidth: 8,
            nrPfns: k.layout.nrPfns, guestPages: guestPages, machinePages: machinePages,
            p2mDigest: digest, p2mCounts: ["mfn": counts.mfn, "invalid": counts.invalid, "identity": counts.identity, "foreign": counts.foreign],
            p2m: manifestSegments(k.layout), listVAddr: k.listVAddr, cr3: cr3, fllMfn: fll,
            p2mMissingMfn: missing, p2mIdentityMfn: identity, xenPhysStart: xenPhysStart,
            osRelease: k.options.release, banner: k.bannerString,
            symbols: Dictionary(k.symbols.map { ($0.name, $0.addr) }, uniquingKeysWith: { a, _ in a }),
            modules: k.modules, samples: k.samples, notesOmitted: omitted, domainID: domainID)
    }

    static func finishOutputs(path: String, kernel k: GuestKernel, manifest: DumpManifest) throws -> GeneratedDump {
        let mapPath = path + ".System.map"
        let manPath = path + ".manifest.json"
        try k.systemMap.write(toFile: mapPath, atomically: true, encoding: .utf8)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(manifest).write(to: URL(fileURLWithPath: manPath))
        return GeneratedDump(path: path, systemMapPath: mapPath, manifestPath: manPath, manifest: manifest)
    }
}

func hex(_ v: UInt64) -> String { String(v, radix: 16) }
func roundUp(_ v: UInt64, _ a: UInt64) -> UInt64 { (v + a - 1) / a * a }

/// One ELF note with 4-byte padding (how Linux, Xen and kexec-tools write them).
func elfNote(name: String, type: UInt32, desc: [UInt8]) -> [UInt8] {
    var b = u32le(UInt32(name.utf8.count + 1)) + u32le(UInt32(desc.count)) + u32le(type)
    b += Array(name.utf8) + [0]
    while b.count % 4 != 0 { b.append(0) }
    b += desc
    while b.count % 4 != 0 { b.append(0) }
    return b
}

func elfHeader(type: UInt16, machine: UInt16, phoff: UInt64, phnum: UInt16, shoff: UInt64, shnum: UInt16, shstrndx: UInt16) -> [UInt8] {
    var h: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
    h += u16le(type) + u16le(machine) + u32le(1)
    h += u64le(0) + u64le(phoff) + u64le(shoff) + u32le(0)
    h += u16le(64) + u16le(phnum == 0 ? 0 : 56) + u16le(phnum) + u16le(shnum == 0 ? 0 : 64) + u16le(shnum) + u16le(shstrndx)
    return h
}

func phdr(type: UInt32, flags: UInt32, offset: UInt64, vaddr: UInt64, paddr: UInt64, size: UInt64, align: UInt64) -> [UInt8] {
    u32le(type) + u32le(flags) + u64le(offset) + u64le(vaddr) + u64le(paddr) + u64le(size) + u64le(size) + u64le(align)
}

/// A file written with pwrite at offsets and sized with ftruncate: holes stay sparse.
final class SparseFile {
    let fd: Int32
    let path: String
    init(path: String, size: UInt64) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw GenError.io("cannot create \(path): \(String(cString: strerror(errno)))") }
        guard ftruncate(fd, off_t(size)) == 0 else { throw GenError.io("cannot size \(path) to \(size) bytes: \(String(cString: strerror(errno)))") }
    }
    func write(at off: UInt64, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write(at: off, $0) }
    }
    func write(at off: UInt64, _ b: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < b.count {
            let n = pwrite(fd, b.baseAddress! + done, b.count - done, off_t(off) + off_t(done))
            guard n > 0 else { throw GenError.io("write to \(path) at \(off) failed: \(String(cString: strerror(errno)))") }
            done += n
        }
    }
    func close() throws {
        guard fsync(fd) == 0 || true, Foundation.close(fd) == 0 else { throw GenError.io("close \(path) failed") }
    }
}
