// Kernel symbols from a System.map (`nm -n` lines), a vmlinux's ELF symbol table (libelf),
// or VMCOREINFO's SYMBOL() lines. Lookups by name and by address (nearest preceding).
import CLibElf
import DumpIO
import Foundation
import P2MFormat

public struct SymbolTable: Sendable {
    public private(set) var byName: [String: UInt64] = [:]
    private var sorted: [(addr: UInt64, name: String)] = []
    public init() {}

    public var isEmpty: Bool { byName.isEmpty }
    public var count: Int { byName.count }

    public mutating func add(_ name: String, _ addr: UInt64) {
        if byName[name] == nil { byName[name] = addr; sorted.append((addr, name)) }
    }
    mutating func finish() { sorted.sort { $0.addr < $1.addr } }

    public func address(_ name: String) -> KVAddr? { byName[name].map(KVAddr.init) }

    /// The nearest symbol at or below `addr`, with the offset.
    public func symbol(at addr: KVAddr) -> (name: String, offset: UInt64)? {
        var lo = 0, hi = sorted.count - 1, best = -1
        while lo <= hi { let m = (lo + hi) / 2
            if sorted[m].addr <= addr.rawValue { best = m; lo = m + 1 } else { hi = m - 1 } }
        guard best >= 0 else { return nil }
        return (sorted[best].name, addr.rawValue - sorted[best].addr)
    }

    /// Parse `ADDR TYPE NAME` lines; junk lines are errors naming the line.
    public static func systemMap(path: String) throws -> SymbolTable {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DumpError(path, "cannot read the System.map")
        }
        var t = SymbolTable()
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            if f.isEmpty { continue }
            guard f.count >= 3, f[1].count == 1, let a = UInt64(f[0], radix: 16) else {
                throw DumpError(path, "line \(i + 1): expected `ADDRESS TYPE NAME`, got \(line.prefix(80))")
            }
            t.add(String(f[2]), a)
        }
        guard !t.isEmpty else { throw DumpError(path, "no symbols (Debian's /boot/System.map is a placeholder; use the one from the -dbg package)") }
        t.finish()
        return t
    }

    /// Symbols of a vmlinux (its .symtab), through libelf.
    public static func vmlinux(path: String) throws -> SymbolTable {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw DumpError(path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        elf_version(UInt32(EV_CURRENT))
        guard let elf = elf_begin(fd, ELF_C_READ_MMAP, nil) else { throw DumpError(path, "not an ELF file: \(String(cString: elf_errmsg(-1)))") }
        defer { elf_end(elf) }
        var t = SymbolTable()
        var scn = elf_nextscn(elf, nil)
        while let s = scn {
            var sh = GElf_Shdr()
            if gelf_getshdr(s, &sh) != nil, sh.sh_type == UInt32(SHT_SYMTAB), sh.sh_entsize > 0,
               let data = elf_getdata(s, nil) {
                let n = Int(sh.sh_size / sh.sh_entsize)
                for i in 0..<n {
                    var sym = GElf_Sym()
                    guard gelf_getsym(data, Int32(i), &sym) != nil, sym.st_value != 0,
                          let name = elf_strptr(elf, Int(sh.sh_link), Int(sym.st_name)) else { continue }
                    let str = String(cString: name)
                    if !str.isEmpty { t.add(str, sym.st_value) }
                }
            }
            scn = elf_nextscn(elf, s)
        }
        guard !t.isEmpty else { throw DumpError(path, "no symbol table (a stripped vmlinux?)") }
        t.finish()
        return t
    }

    public static func vmcoreInfo(_ v: VMCoreInfo) -> SymbolTable {
        var t = SymbolTable()
        for (k, val) in v.values where k.hasPrefix("SYMBOL(") && k.hasSuffix(")") {
            if let a = UInt64(val, radix: 16) { t.add(String(k.dropFirst(7).dropLast()), a) }
        }
        t.finish()
        return t
    }

    /// The same symbols moved by a KASLR offset (kernel-image symbols only: ≥ __START_KERNEL_map).
    public func relocated(by offset: UInt64) -> SymbolTable {
        guard offset != 0 else { return self }
        var t = SymbolTable()
        for (n, a) in byName { t.add(n, a >= 0xffff_ffff_8000_0000 ? a &+ offset : a) }
        t.finish()
        return t
    }

    public mutating func merge(_ o: SymbolTable) {
        for (n, a) in o.byName { add(n, a) }
        finish()
    }
}

/// Regions of the x86_64 kernel address space (formats.md §1.7).
public enum KernelRegion: String, Sendable {
    case user, xenHole = "xen reserved", directMap = "direct map", vmalloc, vmemmap, kernelText = "kernel text",
         modules, fixmap, other

    public static func of(_ va: KVAddr) -> KernelRegion {
        let v = va.rawValue
        switch v {
        case 0..<0x0000_8000_0000_0000: return .user
        case 0xffff_8000_0000_0000..<0xffff_8800_0000_0000: return .xenHole
        case 0xffff_8800_0000_0000..<0xffff_c880_0000_0000: return .directMap
        case 0xffff_c900_0000_0000..<0xffff_e900_0000_0000: return .vmalloc
        case 0xffff_ea00_0000_0000..<0xffff_eb00_0000_0000: return .vmemmap
        case 0xffff_ffff_8000_0000..<0xffff_ffff_a000_0000: return .kernelText
        case 0xffff_ffff_a000_0000..<0xffff_ffff_ff00_0000: return .modules
        case 0xffff_ffff_ff00_0000...: return .fixmap
        default: return .other
        }
    }
}
