// Opening a dump: an ELF kdump vmcore (program headers: one PT_NOTE, PT_LOADs of machine
// memory) or an xl dump-core file (section headers only). Headers are read through libelf
// in mmap mode (a 1 TiB sparse dump opens in milliseconds: nothing but headers and notes is
// touched); notes are walked by our own bounds-checked code; bulk data is read with pread.
// Every number from the file is checked before use: the file is hostile.
import CLibElf
import Foundation
import P2MFormat

public struct DumpError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let offset: UInt64?
    public let message: String
    /// Set when the bytes asked for are simply not in the dump (a page makedumpfile's dump level
    /// excluded, a frame no segment holds), as opposed to a damaged file: readers that can go on
    /// without one page (the p2m list reader) tell the two apart by this.
    public var notInDump = false
    /// Set when the file itself could not be opened (missing, no permission, not a regular
    /// file), as opposed to a file that is no dump or a damaged one: the C library says
    /// P2MNOTE_ERR_IO for these.
    public var cannotOpen = false
    public init(_ file: String, offset: UInt64? = nil, _ message: String) {
        self.file = file; self.offset = offset; self.message = message
    }
    public static func notInDump(_ file: String, _ message: String) -> DumpError {
        var e = DumpError(file, message); e.notInDump = true; return e
    }
    public static func cannotOpen(_ file: String, _ message: String) -> DumpError {
        var e = DumpError(file, message); e.cannotOpen = true; return e
    }
    public var description: String {
        if let o = offset { return "\(file): at offset 0x\(String(o, radix: 16)): \(message)" }
        return "\(file): \(message)"
    }
}

public struct LoadSegment: Sendable, Equatable {
    public var index: Int          // program header index
    public var offset: UInt64
    public var paddr: UInt64       // machine address in a Xen kdump
    public var vaddr: UInt64
    public var filesz: UInt64
    public var memsz: UInt64
    public var align: UInt64
    public var flags: UInt32
    public var end: UInt64 { paddr + memsz }
}

public struct Section: Sendable, Equatable {
    public var index: Int
    public var name: String
    public var type: UInt32
    public var offset: UInt64
    public var size: UInt64
    public var entsize: UInt64
}

public struct ElfNote: Sendable, Equatable {
    public var name: String
    public var type: UInt32
    public var desc: [UInt8]
    /// File offset of the note header.
    public var fileOffset: UInt64
    /// Bytes the note occupies, padding included.
    public var size: UInt64
    /// "PT_NOTE" or a section name.
    public var container: String
}


public final class DumpFile {
    public let path: String
    public let kind: DumpKind
    public let fileSize: UInt64
    public let machine: UInt16
    public let phoff: UInt64
    public let phnum: Int
    public let shoff: UInt64
    public let shnum: Int
    /// All program headers as (type, offset, filesz) — kdump only.
    public let programHeaders: [(type: UInt32, offset: UInt64, filesz: UInt64, align: UInt64)]
    public let loads: [LoadSegment]          // sorted by paddr
    public let noteSegment: (index: Int, offset: UInt64, size: UInt64)?
    public let sections: [Section]
    public let notes: [ElfNote]
    let file: OpenFile
    var fd: Int32 { file.fd }

    /// Open and validate an ELF dump. Throws `DumpError` naming the file, offset and fault.
    public static func open(path: String) throws -> DumpFile {
        let f = try OpenFile(path: path)
        return try DumpFile(path: path, file: f)
    }

    /// Read an ELF dump from a file already open (openDump opens each file once).
    public static func open(file: OpenFile) throws -> DumpFile { try DumpFile(path: file.path, file: file) }

    private init(path: String, file: OpenFile) throws {
        self.path = path
        self.file = file
        let fd = file.fd
        fileSize = file.size
        func fail(_ off: UInt64?, _ m: String) -> DumpError { DumpError(path, offset: off, m) }
        // Identify before libelf: clear messages for the common wrong inputs.
        var ident = [UInt8](repeating: 0, count: 64)
        let got = ident.withUnsafeMutableBytes { Foundation.pread(fd, $0.baseAddress, 64, 0) }
        guard got == 64 else { throw fail(0, "file of \(fileSize) bytes is too short for an ELF header (64 bytes)") }
        guard ident[0..<4] == [0x7f, 0x45, 0x4c, 0x46] else { throw fail(0, "not an ELF file (expected \\x7fELF)") }
        guard ident[4] == 2 else { throw fail(4, "ELF class \(ident[4])\(ident[4] == 1 ? " (32-bit)" : ""), expected 2 (ELFCLASS64: a 64-bit dump)") }
        guard ident[5] == 1 else { throw fail(5, "ELF data encoding \(ident[5]), expected 1 (little-endian)") }

        // Table bounds from the raw header, before libelf (whose message would be vaguer).
        let rawPhoff = (0..<8).reduce(UInt64(0)) { $0 | UInt64(ident[32 + $1]) << (8 * UInt64($1)) }
        let rawShoff = (0..<8).reduce(UInt64(0)) { $0 | UInt64(ident[40 + $1]) << (8 * UInt64($1)) }
        let rawPhnum = UInt64(ident[56]) | UInt64(ident[57]) << 8
        let rawShnum = UInt64(ident[60]) | UInt64(ident[61]) << 8
        let rawPhentsize = UInt64(ident[54]) | UInt64(ident[55]) << 8
        let rawShentsize = UInt64(ident[58]) | UInt64(ident[59]) << 8
        let rawShstrndx = UInt64(ident[62]) | UInt64(ident[63]) << 8
        if rawPhnum == 0xffff {
            throw fail(56, "e_phnum 0xffff (PN_XNUM: the real count would sit in section 0's sh_info); a vmcore's program headers are counted in e_phnum")
        }
        if rawPhnum > 0 {
            guard rawPhentsize == 56 else { throw fail(54, "e_phentsize \(rawPhentsize), expected 56 (Elf64_Phdr)") }
            guard rawPhoff >= 64 else { throw fail(32, "e_phoff 0x\(String(rawPhoff, radix: 16)) lies inside the 64-byte ELF header") }
        }
        if rawShnum > 0 {
            guard rawShentsize == 64 else { throw fail(58, "e_shentsize \(rawShentsize), expected 64 (Elf64_Shdr)") }
            guard rawShoff >= 64 else { throw fail(40, "e_shoff 0x\(String(rawShoff, radix: 16)) lies inside the 64-byte ELF header") }
            guard rawShstrndx < rawShnum else { throw fail(62, "e_shstrndx \(rawShstrndx) names no section (there are \(rawShnum))") }
        }
        if rawPhnum > 0 && rawPhnum != 0xffff {
            let (e, o) = rawPhoff.addingReportingOverflow(rawPhnum * 56)
            guard !o, e <= fileSize else { throw fail(rawPhoff, "\(rawPhnum) program headers at 0x\(String(rawPhoff, radix: 16)) run past the end of the \(fileSize)-byte file") }
        }
        if rawShnum > 0 {
            let (e, o) = rawShoff.addingReportingOverflow(rawShnum * 64)
            guard !o, e <= fileSize else { throw fail(rawShoff, "\(rawShnum) section headers at 0x\(String(rawShoff, radix: 16)) run past the end of the \(fileSize)-byte file") }
        }
        elf_version(UInt32(EV_CURRENT))
        guard let elf = elf_begin(fd, ELF_C_READ_MMAP, nil) else {
            throw fail(nil, "libelf cannot read it: \(String(cString: elf_errmsg(-1)))")
        }
        defer { elf_end(elf) }
        var eh = GElf_Ehdr()
        guard gelf_getehdr(elf, &eh) != nil else { throw fail(0, "bad ELF header: \(String(cString: elf_errmsg(-1)))") }
        guard eh.e_type == UInt16(ET_CORE) else { throw fail(16, "e_type \(eh.e_type), expected 4 (ET_CORE)") }
        machine = eh.e_machine
        phoff = eh.e_phoff
        shoff = eh.e_shoff
        var pn = 0, sn = 0
        guard elf_getphdrnum(elf, &pn) == 0 else { throw fail(56, "cannot count program headers: \(String(cString: elf_errmsg(-1)))") }
        guard elf_getshdrnum(elf, &sn) == 0 else { throw fail(60, "cannot count section headers: \(String(cString: elf_errmsg(-1)))") }
        phnum = pn
        shnum = sn
        if pn > 0 {
            let (tableEnd, o) = UInt64(pn).multipliedReportingOverflow(by: 56)
            guard !o, eh.e_phoff <= fileSize, tableEnd <= fileSize - eh.e_phoff else {
                throw fail(eh.e_phoff, "\(pn) program headers at 0x\(String(eh.e_phoff, radix: 16)) run past the end of the \(fileSize)-byte file")
            }
        }
        if pn > 0 {
            guard eh.e_machine == UInt16(EM_X86_64) else { throw fail(18, "e_machine \(eh.e_machine), expected 62 (x86_64)") }
            kind = .kdumpELF
            var phs: [(UInt32, UInt64, UInt64, UInt64)] = []
            var loads: [LoadSegment] = []
            var note: (Int, UInt64, UInt64)? = nil
            for i in 0..<pn {
                var ph = GElf_Phdr()
                guard gelf_getphdr(elf, Int32(i), &ph) != nil else {
                    throw fail(eh.e_phoff + UInt64(i) * 56, "cannot read program header \(i): \(String(cString: elf_errmsg(-1)))")
                }
                phs.append((ph.p_type, ph.p_offset, ph.p_filesz, ph.p_align))
                let phAt = eh.e_phoff + UInt64(i) * 56
                let (end, ov) = ph.p_offset.addingReportingOverflow(ph.p_filesz)
                if ph.p_type == UInt32(PT_NOTE) {
                    guard note == nil else { throw fail(phAt, "a second PT_NOTE (program header \(i)); a vmcore has one") }
                    guard !ov, end <= fileSize else { throw fail(phAt, "PT_NOTE [0x\(String(ph.p_offset, radix: 16)), +0x\(String(ph.p_filesz, radix: 16))) runs past the end of the file") }
                    guard ph.p_filesz <= 64 << 20 else { throw fail(phAt, "PT_NOTE of \(ph.p_filesz) bytes is absurdly large") }
                    note = (i, ph.p_offset, ph.p_filesz)
                } else if ph.p_type == UInt32(PT_LOAD) {
                    guard !ov, end <= fileSize else {
                        throw fail(phAt, "PT_LOAD \(i) (machine 0x\(String(ph.p_paddr, radix: 16)), \(ph.p_filesz) bytes at file offset 0x\(String(ph.p_offset, radix: 16))) runs past the end of the \(fileSize)-byte file: truncated dump")
                    }
                    guard ph.p_memsz > 0 else { throw fail(phAt, "PT_LOAD \(i) is empty (p_memsz 0); every PT_LOAD of a vmcore holds memory") }
                    let (_, ov2) = ph.p_paddr.addingReportingOverflow(ph.p_memsz)
                    guard !ov2 else {
                        throw fail(phAt, "PT_LOAD \(i): machine range 0x\(String(ph.p_paddr, radix: 16)) + memsz 0x\(String(ph.p_memsz, radix: 16)) wraps past 2^64")
                    }
                    guard ph.p_memsz <= 1 << 52, ph.p_filesz <= ph.p_memsz else {
                        throw fail(phAt, "PT_LOAD \(i) has absurd sizes (filesz \(ph.p_filesz), memsz \(ph.p_memsz); expected filesz ≤ memsz ≤ 2^52)")
                    }
                    loads.append(LoadSegment(index: i, offset: ph.p_offset, paddr: ph.p_paddr, vaddr: ph.p_vaddr,
                                             filesz: ph.p_filesz, memsz: ph.p_memsz, align: ph.p_align, flags: ph.p_flags))
                }
            }
            guard !loads.isEmpty else { throw fail(eh.e_phoff, "no PT_LOAD segments: nothing of memory is in this dump") }
            loads.sort { $0.paddr < $1.paddr }
            for k in 1..<max(1, loads.count) where loads[k].paddr < loads[k - 1].end {
                throw fail(eh.e_phoff + UInt64(loads[k].index) * 56, "PT_LOAD \(loads[k].index) overlaps PT_LOAD \(loads[k - 1].index) in machine memory")
            }
            programHeaders = phs.map { (type: $0.0, offset: $0.1, filesz: $0.2, align: $0.3) }
            self.loads = loads
            noteSegment = note.map { (index: $0.0, offset: $0.1, size: $0.2) }
            sections = []
            var ns: [ElfNote] = []
            if let n = note {
                let bytes = try DumpFile.pread(fd, path, offset: n.1, count: Int(n.2))
                ns = try DumpFile.walkNotes(bytes, baseOffset: n.1, container: "PT_NOTE", file: path)
            }
            notes = ns
        } else if sn > 0 {
            guard eh.e_machine == UInt16(EM_X86_64) || eh.e_machine == UInt16(EM_386) else {
                throw fail(18, "e_machine \(eh.e_machine), expected 62 (x86_64) or 3 (i386 guest)")
            }
            kind = .xenDumpCore
            programHeaders = []
            loads = []
            noteSegment = nil
            var strndx = 0
            guard elf_getshdrstrndx(elf, &strndx) == 0 else { throw fail(62, "no section name table: \(String(cString: elf_errmsg(-1)))") }
            // The name table itself: a string table inside the file (not NOBITS, not garbage).
            guard let strScn = elf_getscn(elf, strndx) else { throw fail(62, "e_shstrndx \(strndx) names no section") }
            var strSh = GElf_Shdr()
            guard gelf_getshdr(strScn, &strSh) != nil else { throw fail(eh.e_shoff + UInt64(strndx) * 64, "bad section header \(strndx)") }
            let strAt = eh.e_shoff + UInt64(strndx) * 64
            guard strSh.sh_type == UInt32(SHT_STRTAB) else {
                throw fail(strAt, "the section-name table (section \(strndx), e_shstrndx) has type \(strSh.sh_type), expected 3 (SHT_STRTAB)")
            }
            let (strEnd, strOv) = strSh.sh_offset.addingReportingOverflow(strSh.sh_size)
            guard !strOv, strEnd <= fileSize, strSh.sh_size <= 16 << 20 else {
                throw fail(strAt, "the section-name table [0x\(String(strSh.sh_offset, radix: 16)), +0x\(String(strSh.sh_size, radix: 16))) runs past the end of the \(fileSize)-byte file")
            }
            var secs: [Section] = []
            var scn = elf_nextscn(elf, nil)
            while let s = scn {
                var sh = GElf_Shdr()
                guard gelf_getshdr(s, &sh) != nil else { throw fail(eh.e_shoff, "bad section header: \(String(cString: elf_errmsg(-1)))") }
                let idx = Int(elf_ndxscn(s))
                guard UInt64(sh.sh_name) < strSh.sh_size || (sh.sh_name == 0 && idx == 0) else {
                    throw fail(eh.e_shoff + UInt64(idx) * 64, "section \(idx)'s name offset 0x\(String(sh.sh_name, radix: 16)) lies outside the \(strSh.sh_size)-byte section-name table")
                }
                let name = elf_strptr(elf, strndx, Int(sh.sh_name)).map { String(cString: $0) } ?? ""
                if sh.sh_type != UInt32(SHT_NOBITS) {
                    let (end, ov) = sh.sh_offset.addingReportingOverflow(sh.sh_size)
                    guard !ov, end <= fileSize else {
                        throw fail(eh.e_shoff + UInt64(idx) * 64, "section \(idx) \(name) [0x\(String(sh.sh_offset, radix: 16)), +0x\(String(sh.sh_size, radix: 16))) runs past the end of the \(fileSize)-byte file: truncated dump")
                    }
                }
                secs.append(Section(index: idx, name: name, type: sh.sh_type, offset: sh.sh_offset, size: sh.sh_size, entsize: sh.sh_entsize))
                scn = elf_nextscn(elf, s)
            }
            sections = secs
            var ns: [ElfNote] = []
            for s in secs where s.type == UInt32(SHT_NOTE) {
                guard s.size <= 64 << 20 else { throw fail(s.offset, "note section \(s.name) of \(s.size) bytes is absurdly large") }
                let bytes = try DumpFile.pread(fd, path, offset: s.offset, count: Int(s.size))
                ns += try DumpFile.walkNotes(bytes, baseOffset: s.offset, container: s.name, file: path)
            }
            notes = ns
        } else {
            throw fail(0, "neither program headers (kdump vmcore) nor section headers (xl dump-core)")
        }
    }

    /// Walk 4-byte-padded ELF notes. A note overrunning its container is an error; a zero
    /// header at the end (the zero padding /proc/vmcore leaves) ends the walk.
    static func walkNotes(_ b: [UInt8], baseOffset: UInt64, container: String, file: String) throws -> [ElfNote] {
        try walkNotes(size: UInt64(b.count), baseOffset: baseOffset, container: container, file: file) { at, n in Array(b[Int(at)..<Int(at) + n]) }
    }

    /// The same walk over notes that lie in a byte source, read one note at a time: a notes
    /// blob that claims megabytes but ends early (a zero header, or the holes of a flattened
    /// stream) costs what it holds, not what it claims.
    static func walkNotes(in src: ByteSource, offset: UInt64, size: UInt64, container: String) throws -> [ElfNote] {
        try walkNotes(size: size, baseOffset: offset, container: container, file: src.path) { at, n in try src.read(offset: offset + at, count: n) }
    }

    /// `read(at, n)`: n bytes at `at` from the start of the notes.
    private static func walkNotes(size: UInt64, baseOffset: UInt64, container: String, file: String,
                                  read: (UInt64, Int) throws -> [UInt8]) throws -> [ElfNote] {
        var out: [ElfNote] = []
        var pos: UInt64 = 0
        func u32(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(b[o]) | UInt64(b[o + 1]) << 8 | UInt64(b[o + 2]) << 16 | UInt64(b[o + 3]) << 24 }
        while pos + 12 <= size {
            let h = try read(pos, 12)
            let namesz = u32(h, 0), descsz = u32(h, 4), type = UInt32(u32(h, 8))
            if namesz == 0 && descsz == 0 && type == 0 { break }
            let nameEnd = pos + 12 + ((namesz + 3) & ~3)
            let descEnd = nameEnd + ((descsz + 3) & ~3)
            guard namesz <= 4096, descsz <= size, nameEnd <= size, nameEnd + descsz <= size else {
                throw DumpError(file, offset: baseOffset + pos,
                                "note (namesz \(namesz), descsz \(descsz)) overruns its \(container) of \(size) bytes")
            }
            let body = try read(pos + 12, Int(nameEnd - pos - 12 + descsz))
            var nameBytes = Array(body[0..<Int(namesz)])
            if nameBytes.last == 0 { nameBytes.removeLast() }
            let name = String(decoding: nameBytes, as: UTF8.self)
            out.append(ElfNote(name: name, type: type, desc: Array(body[Int(nameEnd - pos - 12)...]),
                               fileOffset: baseOffset + pos, size: min(descEnd, size) - pos, container: container))
            pos = min(descEnd, size)
        }
        return out
    }

    static func pread(_ fd: Int32, _ path: String, offset: UInt64, count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try OpenFile.pread(fd, path, offset: offset, $0) }
        return out
    }

    static func preadInto(_ fd: Int32, _ path: String, offset: UInt64, _ buf: UnsafeMutableRawBufferPointer) throws {
        try OpenFile.pread(fd, path, offset: offset, buf)
    }

    public func read(offset: UInt64, count: Int) throws -> [UInt8] { try DumpFile.pread(fd, path, offset: offset, count: count) }
    public func read(offset: UInt64, into buf: UnsafeMutableRawBufferPointer) throws { try DumpFile.preadInto(fd, path, offset: offset, buf) }

    public func section(named n: String) -> Section? { sections.first { $0.name == n } }

    /// Lowest file offset of PT_LOAD data (crash reads notes only below it).
    public var firstLoadOffset: UInt64? { programHeaders.filter { $0.type == UInt32(PT_LOAD) && $0.offset > 0 }.map(\.offset).min() }

}

@inline(__always) func le64(_ b: [UInt8], _ o: Int) -> UInt64? {
    guard o >= 0, o + 8 <= b.count else { return nil }
    var v: UInt64 = 0
    for i in 0..<8 { v |= UInt64(b[o + i]) << (8 * UInt64(i)) }
    return v
}

/// Xen's crash info note (Xen's xen/include/xen/elfcore.h, crash_xen_info_t): the last word is the frame-list-list MFN, the
/// second to last xen_phys_start (v2, 80 bytes); older versions are shorter.
public struct XenCrashInfo: Sendable {
    public var major: UInt64
    public var minor: UInt64
    public var xenPhysStart: UInt64?
    public var frameListListMFN: MFN?
    /// Machine addresses of Xen's version strings (crash_xen_info_t words 2–6: extra version,
    /// changeset, compiler, compile date, compile time), as kexec_crash_save_info() records them.
    public var stringAddresses: [UInt64] = []
    init?(_ d: [UInt8]) {
        guard d.count >= 64, d.count % 8 == 0, let a = le64(d, 0), let b = le64(d, 8) else { return nil }
        major = a; minor = b
        stringAddresses = (2...6).compactMap { le64(d, 8 * $0) }
        let words = d.count / 8
        if words >= 9, let f = le64(d, d.count - 8) { frameListListMFN = (f == 0 || f == .max) ? nil : MFN(rawValue: f) }
        if words >= 10 { xenPhysStart = le64(d, d.count - 16) }
    }
}

/// Xen's per-CPU crash regs note: cr0, cr2, cr3, cr4.
public struct XenCrashRegs: Sendable {
    public var cr0, cr2, cr3, cr4: UInt64
    init?(_ d: [UInt8]) {
        guard let a = le64(d, 0), let b = le64(d, 8), let c = le64(d, 16), let e = le64(d, 24) else { return nil }
        cr0 = a; cr2 = b; cr3 = c; cr4 = e
    }
    /// The top page table's machine address.
    public var rootTable: MachAddr { MachAddr(rawValue: cr3 & 0x000f_ffff_ffff_f000) }
}

/// VMCOREINFO-style text: KEY=VALUE lines.
public struct VMCoreInfo: Sendable {
    public var values: [String: String] = [:]
    public init(_ d: [UInt8]) {
        let text = String(decoding: d.prefix { $0 != 0 }, as: UTF8.self)
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            values[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
    }
    public func symbol(_ name: String) -> UInt64? { values["SYMBOL(\(name))"].flatMap { UInt64($0, radix: 16) } }
    public func number(_ name: String) -> Int64? { values["NUMBER(\(name))"].flatMap { Int64($0) } }
    public var osRelease: String? { values["OSRELEASE"] }
    public var kernelOffset: UInt64? { values["KERNELOFFSET"].flatMap { UInt64($0, radix: 16) } }
}
