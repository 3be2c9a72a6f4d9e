// Which kernel a dump holds, and whether a vmlinux is that kernel: the build ID and banner of
// the image file, the same two read from the dump's memory, and a VMCOREINFO text for readers
// such as drgn that want one (a Xen dom0 kdump carries only Xen's, an xl dump-core none).
import CLibElf
import DumpIO
import Foundation
import P2MFormat

/// What a vmlinux file says about itself: its GNU build ID and its linux_banner bytes.
public struct VmlinuxImage: Sendable {
    public let path: String
    /// NT_GNU_BUILD_ID of the image, if it has one.
    public let buildID: [UInt8]?
    /// The linux_banner string in the file (without the trailing newline), if found.
    public let banner: String?

    /// NT_GNU_BUILD_ID (elf.h).
    static let gnuBuildIDType: UInt32 = 3

    /// `bannerAddress`: linux_banner's link-time address when the caller has the vmlinux's
    /// symbols loaded already; only without it is the symbol table scanned again here.
    public init(path: String, bannerAddress: UInt64? = nil) throws {
        self.path = path
        let f = try OpenFile(path: path)
        elf_version(UInt32(EV_CURRENT))
        guard let elf = elf_begin(f.fd, ELF_C_READ_MMAP, nil) else {
            throw DumpError(path, "not an ELF file: \(String(cString: elf_errmsg(-1)))")
        }
        defer { elf_end(elf) }
        var id: [UInt8]? = nil
        var bannerAddr: UInt64? = bannerAddress
        var sections: [(addr: UInt64, size: UInt64, offset: UInt64)] = []
        var scn = elf_nextscn(elf, nil)
        while let s = scn {
            var sh = GElf_Shdr()
            if gelf_getshdr(s, &sh) != nil {
                if sh.sh_type == UInt32(SHT_NOTE), id == nil, let data = elf_getdata(s, nil) {
                    id = VmlinuxImage.buildID(in: data)
                } else if sh.sh_type == UInt32(SHT_PROGBITS), sh.sh_addr != 0 {
                    sections.append((sh.sh_addr, sh.sh_size, sh.sh_offset))
                } else if sh.sh_type == UInt32(SHT_SYMTAB), sh.sh_entsize > 0, bannerAddr == nil, let data = elf_getdata(s, nil) {
                    let n = Int(sh.sh_size / sh.sh_entsize)
                    for i in 0..<n {
                        var sym = GElf_Sym()
                        guard gelf_getsym(data, Int32(i), &sym) != nil, sym.st_value != 0,
                              let name = elf_strptr(elf, Int(sh.sh_link), Int(sym.st_name)),
                              strcmp(name, "linux_banner") == 0 else { continue }
                        bannerAddr = sym.st_value
                        break
                    }
                }
            }
            scn = elf_nextscn(elf, s)
        }
        buildID = id
        var b: String? = nil
        if let a = bannerAddr, let sec = sections.first(where: { a >= $0.addr && a - $0.addr < $0.size }) {
            let off = sec.offset &+ (a - sec.addr)
            let n = Int(min(512, sec.size - (a - sec.addr)))
            if let bytes = try? f.read(offset: off, count: n) {
                b = KernelIdentity.bannerText(bytes)
            }
        }
        banner = b
    }

    /// The GNU build ID among the notes of one SHT_NOTE section's data.
    static func buildID(in data: UnsafeMutablePointer<Elf_Data>) -> [UInt8]? {
        guard let base = data.pointee.d_buf else { return nil }
        let size = data.pointee.d_size
        var offset = 0
        while offset < size {
            var nh = GElf_Nhdr()
            var nameOff = 0, descOff = 0
            let next = gelf_getnote(data, offset, &nh, &nameOff, &descOff)
            guard next > offset else { break }
            let raw = UnsafeRawBufferPointer(start: base, count: size)
            if nh.n_type == gnuBuildIDType, nh.n_namesz == 4, nameOff + 4 <= size, descOff + Int(nh.n_descsz) <= size,
               Array(raw[nameOff..<nameOff + 4]) == [0x47, 0x4e, 0x55, 0] {   // "GNU\0"
                return Array(raw[descOff..<descOff + Int(nh.n_descsz)])
            }
            offset = next
        }
        return nil
    }
}

public enum KernelIdentity {
    /// Linux's vmlinux_build_id (lib/buildid.c) is BUILD_ID_SIZE_MAX = 20 bytes; VMCOREINFO
    /// prints it as "BUILD-ID=%20phN" (40 hex digits).
    public static let buildIDSize = 20

    public static func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    /// A banner's text: up to the NUL, without the newline Linux ends it with.
    public static func bannerText(_ bytes: [UInt8]) -> String {
        var s = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        while s.hasSuffix("\n") { s.removeLast() }
        return s
    }

    /// "Linux version 6.1.0-57-amd64 (…) …" → "6.1.0-57-amd64".
    public static func osRelease(fromBanner b: String) -> String? {
        let w = b.split(separator: " ", maxSplits: 3)
        guard w.count >= 3, w[0] == "Linux", w[1] == "version" else { return nil }
        return String(w[2])
    }

    /// The build ID the running kernel kept in memory (vmlinux_build_id), if it has the symbol.
    public static func buildID(of kernel: GuestKernel) throws -> [UInt8]? {
        guard let a = kernel.symbols.address("vmlinux_build_id") else { return nil }
        return try kernel.pageTables.readBytes(a, count: buildIDSize)
    }

    /// Is `image` the kernel of the dump? Compared by build ID when both have one, else by
    /// banner; throws a mismatch naming both values.
    public static func check(_ image: VmlinuxImage, against kernel: GuestKernel) throws {
        if let want = image.buildID, want.count <= buildIDSize, let have = try? buildID(of: kernel) {
            // The kernel's array is 20 bytes; a shorter build ID (e.g. md5, 16) fills its start.
            let head = Array(have.prefix(want.count))
            guard head == want else {
                throw TranslationError("\(image.path): build ID \(hex(want)) is not the dump's kernel's (vmlinux_build_id in \(kernel.dump.path) holds \(hex(head)))", kind: .mismatch)
            }
            return
        }
        if let want = image.banner, let have = try? kernel.banner() {
            let h = bannerText(Array(have.utf8))
            guard h == want else {
                throw TranslationError("\(image.path): banner \"\(want)\" is not the dump's (\(kernel.dump.path) says \"\(h)\")", kind: .mismatch)
            }
        }
    }

    /// Where a VMCOREINFO text came from.
    public enum VMCoreInfoOrigin: Int32, Sendable { case dumpNote = 0, made = 1, kernelMemory = 2 }

    /// VMCOREINFO's size limit in Linux (VMCOREINFO_BYTES = PAGE_SIZE).
    static let vmcoreInfoBytes: UInt64 = 4096

    /// The text the running kernel prepared for a crash dump (kernel/crash_core.c keeps it in
    /// `vmcoreinfo_data`, `vmcoreinfo_size` bytes): complete with the lines the kernel itself
    /// writes (LENGTH(mem_section), SECTION_SIZE_BITS, OFFSET(...), ...), which no reader can
    /// make up. nil when the symbols are unknown, the size is implausible, or the text is not
    /// this kernel's (its OSRELEASE is not the banner's).
    public static func kernelVMCoreInfo(of kernel: GuestKernel, release: String) -> String? {
        guard let dataSym = kernel.symbols.address("vmcoreinfo_data"), let sizeSym = kernel.symbols.address("vmcoreinfo_size"),
              let ptr = try? kernel.pageTables.readU64(dataSym), let size = try? kernel.pageTables.readU64(sizeSym),
              size > 0, size <= vmcoreInfoBytes,
              let bytes = try? kernel.pageTables.readBytes(KVAddr(rawValue: ptr), count: Int(size)) else { return nil }
        let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        guard text.split(separator: "\n").contains(Substring("OSRELEASE=\(release)")) else { return nil }
        return text.hasSuffix("\n") ? text : text + "\n"
    }

    /// A VMCOREINFO text for the guest, most faithful first: the dump's own note when it has
    /// one with OSRELEASE (kept, and completed with the lines below it lacks); else the text
    /// the kernel itself prepared, read from its memory; else one made from the kernel's memory
    /// and symbols with the lines readers need (drgn: OSRELEASE, PAGESIZE, KERNELOFFSET,
    /// SYMBOL(swapper_pg_dir), BUILD-ID; the kallsyms symbols let it read symbols from memory
    /// without a vmlinux, as Linux ≥ 6.0 lists them in kernel/crash_core.c).
    public static func vmcoreInfo(of kernel: GuestKernel, own: VMCoreInfo?, ownText: String?) throws -> (text: String, origin: VMCoreInfoOrigin) {
        var lines: [String] = []
        var have = Set<String>()
        func add(_ key: String, _ value: String) {
            guard !have.contains(key) else { return }
            have.insert(key); lines.append("\(key)=\(value)")
        }
        let banner = bannerText(Array(try kernel.banner().utf8))
        guard let release = osRelease(fromBanner: banner) else {
            throw TranslationError("\(kernel.dump.path): linux_banner reads \"\(banner.prefix(80))\", not \"Linux version RELEASE …\"")
        }
        var origin = VMCoreInfoOrigin.made
        if own?.osRelease != nil, let t = ownText {
            for l in t.split(separator: "\n") {
                guard let eq = l.firstIndex(of: "=") else { continue }
                have.insert(String(l[..<eq])); lines.append(String(l))
            }
            origin = .dumpNote
        } else if let t = kernelVMCoreInfo(of: kernel, release: release) {
            return (t, .kernelMemory)
        }
        add("OSRELEASE", release)
        if let id = try buildID(of: kernel) { add("BUILD-ID", hex(id)) }
        add("PAGESIZE", "4096")
        let top = try kernel.symbol("init_top_pgt")   // x86_64: #define swapper_pg_dir init_top_pgt
        add("SYMBOL(swapper_pg_dir)", String(top.rawValue, radix: 16))
        add("SYMBOL(init_top_pgt)", String(top.rawValue, radix: 16))
        // Only the lines whose value is the symbol's own address (VMCOREINFO_SYMBOL); lines such
        // as SYMBOL(mem_section) carry a pointer's value and are left out rather than faked.
        for name in ["init_uts_ns", "_stext", "kallsyms_names", "kallsyms_num_syms", "kallsyms_token_table", "kallsyms_token_index",
                     "kallsyms_offsets", "kallsyms_relative_base", "kallsyms_addresses"] {
            if let a = kernel.symbols.address(name) { add("SYMBOL(\(name))", String(a.rawValue, radix: 16)) }
        }
        add("NUMBER(pgtable_l5_enabled)", "0")   // a PV guest runs 4-level paging
        add("KERNELOFFSET", String(own?.kernelOffset ?? 0, radix: 16))
        return (lines.joined(separator: "\n") + "\n", origin)
    }
}
