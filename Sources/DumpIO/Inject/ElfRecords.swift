// ELF headers as libelf's GElf_* structures, converted to and from the file's bytes by libelf
// itself (elf64_xlatetom/xlatetof, ELFCLASS64 little-endian as every x86-64 dump is): the
// injectors name fields (p_offset, sh_size, e_shoff) instead of reading bytes at magic offsets.
import CLibElf
import Foundation

enum ElfRecords {
    /// libelf wants its version set before any conversion.
    private static let ready: Bool = elf_version(UInt32(EV_CURRENT)) != UInt32(EV_NONE)
    /// Decode `count` records of `type` (ELF_T_PHDR, ELF_T_SHDR, ELF_T_EHDR) from file bytes.
    static func decode<T>(_ bytes: [UInt8], as: T.Type, type: Elf_Type, count: Int, zero: T, path: String) throws -> [T] {
        let size = MemoryLayout<T>.stride * count
        guard bytes.count >= size else { throw DumpError(path, "\(bytes.count) bytes where \(count) ELF records need \(size)") }
        var src = bytes
        var out = [T](repeating: zero, count: count)
        try src.withUnsafeMutableBytes { s in try out.withUnsafeMutableBytes { try xlate(from: s, to: $0, type: type, size: size, toFile: false, path: path) } }
        return out
    }

    /// Encode records to the file's bytes.
    static func encode<T>(_ records: [T], type: Elf_Type, path: String) throws -> [UInt8] {
        var src = records
        let size = MemoryLayout<T>.stride * records.count
        var out = [UInt8](repeating: 0, count: size)
        try src.withUnsafeMutableBytes { s in try out.withUnsafeMutableBytes { try xlate(from: s, to: $0, type: type, size: size, toFile: true, path: path) } }
        return out
    }

    /// libelf's conversion, memory to file order (toFile) or back.
    private static func xlate(from s: UnsafeMutableRawBufferPointer, to d: UnsafeMutableRawBufferPointer, type: Elf_Type, size: Int,
                              toFile: Bool, path: String) throws {
        _ = ready
        var sd = Elf_Data(d_buf: s.baseAddress, d_type: type, d_version: UInt32(EV_CURRENT), d_size: size, d_off: 0, d_align: 0)
        var dd = Elf_Data(d_buf: d.baseAddress, d_type: type, d_version: UInt32(EV_CURRENT), d_size: size, d_off: 0, d_align: 0)
        let ok = toFile ? elf64_xlatetof(&dd, &sd, UInt32(ELFDATA2LSB)) != nil : elf64_xlatetom(&dd, &sd, UInt32(ELFDATA2LSB)) != nil
        guard ok else { throw DumpError(path, "libelf cannot convert the ELF records: \(String(cString: elf_errmsg(-1)))") }
    }

    static func ehdr(_ b: [UInt8], path: String) throws -> GElf_Ehdr {
        try decode(b, as: GElf_Ehdr.self, type: ELF_T_EHDR, count: 1, zero: GElf_Ehdr(), path: path)[0]
    }
    static func phdrs(_ b: [UInt8], count: Int, path: String) throws -> [GElf_Phdr] {
        try decode(b, as: GElf_Phdr.self, type: ELF_T_PHDR, count: count, zero: GElf_Phdr(), path: path)
    }
    static func shdrs(_ b: [UInt8], count: Int, path: String) throws -> [GElf_Shdr] {
        try decode(b, as: GElf_Shdr.self, type: ELF_T_SHDR, count: count, zero: GElf_Shdr(), path: path)
    }
}
