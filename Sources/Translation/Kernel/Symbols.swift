// Kernel symbols from a System.map (`nm -n` lines), a vmlinux's ELF symbol table (libelf),
// or VMCOREINFO's SYMBOL() lines. Lookups by name and by address (nearest preceding).
import CLibElf
import DumpIO
import Foundation
import P2MFormat

public struct KernelSymbol: Sendable, Equatable {
    public var name: String
    public var address: KVAddr
    /// nm's type letter (T text, D data, B bss, R read-only, …; "?" from VMCOREINFO).
    public var type: Character
}

/// Symbols by name and by address. Built for real System.maps (95,000 symbols, 4 MB): names
/// stay as bytes in one buffer, a flat open-addressing table finds them by hash, and a sorted
/// index answers "nearest at or below", so loading costs one pass over the file.
public struct SymbolTable: Sendable {
    private var names: [UInt8] = []
    private var addrs: [UInt64] = []
    private var nameStart: [Int32] = []
    private var nameLen: [UInt16] = []
    private var types: [UInt8] = []
    private var slots: [Int32] = []          // index + 1; 0 empty
    private var byAddr: [Int32] = []         // indices sorted by address
    public init() {}

    public var isEmpty: Bool { addrs.isEmpty }
    public var count: Int { addrs.count }

    @inline(__always) private static func hash(_ p: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in p { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    private func index(of name: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !slots.isEmpty else { return nil }
        let mask = slots.count - 1
        var s = Int(truncatingIfNeeded: SymbolTable.hash(name)) & mask
        return names.withUnsafeBufferPointer { all in
            while true {
                let v = Int(slots[s])
                if v == 0 { return nil }
                let i = v - 1
                let st = Int(nameStart[i]), n = Int(nameLen[i])
                if n == name.count && memcmp(all.baseAddress! + st, name.baseAddress!, n) == 0 { return i }
                s = (s + 1) & mask
            }
        }
    }

    /// Add a symbol; the first of two with one name wins.
    public mutating func add(_ name: String, _ addr: UInt64, type: Character = "?") {
        append(name, addr, type: type)
        finish()
    }

    /// Add without re-sorting (bulk loaders call `finish()` once at the end).
    mutating func append(_ name: String, _ addr: UInt64, type: Character = "?") {
        let n = Array(name.utf8.prefix(Int(UInt16.max)))
        if n.isEmpty { return }
        let t = type.asciiValue ?? UInt8(ascii: "?")
        n.withUnsafeBufferPointer { add(bytes: $0, addr, type: t) }
    }

    private mutating func add(bytes: UnsafeBufferPointer<UInt8>, _ addr: UInt64, type: UInt8) {
        if slots.count < 2 * (addrs.count + 1) { rehash(max(1024, slots.count * 2)) }
        if index(of: bytes) != nil { return }
        let i = addrs.count
        nameStart.append(Int32(names.count)); nameLen.append(UInt16(bytes.count))
        names.append(contentsOf: bytes)
        addrs.append(addr); types.append(type)
        let mask = slots.count - 1
        var s = Int(truncatingIfNeeded: SymbolTable.hash(bytes)) & mask
        while slots[s] != 0 { s = (s + 1) & mask }
        slots[s] = Int32(i + 1)
    }

    private mutating func rehash(_ size: Int) {
        slots = [Int32](repeating: 0, count: size)
        let mask = size - 1
        names.withUnsafeBufferPointer { all in
            for i in 0..<addrs.count {
                let p = UnsafeBufferPointer(rebasing: all[Int(nameStart[i])..<Int(nameStart[i]) + Int(nameLen[i])])
                var s = Int(truncatingIfNeeded: SymbolTable.hash(p)) & mask
                while slots[s] != 0 { s = (s + 1) & mask }
                slots[s] = Int32(i + 1)
            }
        }
    }

    mutating func finish() {
        byAddr = Array(0..<Int32(addrs.count))
        byAddr.sort { addrs[Int($0)] < addrs[Int($1)] }
    }

    private func name(_ i: Int) -> String {
        names.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[Int(nameStart[i])..<Int(nameStart[i]) + Int(nameLen[i])]), as: UTF8.self) }
    }

    public func address(_ name: String) -> KVAddr? {
        let n = Array(name.utf8)
        guard !n.isEmpty else { return nil }
        return n.withUnsafeBufferPointer { index(of: $0) }.map { KVAddr(rawValue: addrs[$0]) }
    }

    public func lookup(_ name: String) -> KernelSymbol? {
        let n = Array(name.utf8)
        guard !n.isEmpty, let i = n.withUnsafeBufferPointer({ index(of: $0) }) else { return nil }
        return KernelSymbol(name: name, address: KVAddr(rawValue: addrs[i]), type: Character(UnicodeScalar(types[i])))
    }

    /// The nearest symbol at or below `addr`, with the offset.
    public func symbol(at addr: KVAddr) -> (symbol: KernelSymbol, offset: UInt64)? {
        var lo = 0, hi = byAddr.count - 1, best = -1
        while lo <= hi { let m = (lo + hi) / 2
            if addrs[Int(byAddr[m])] <= addr.rawValue { best = m; lo = m + 1 } else { hi = m - 1 } }
        guard best >= 0 else { return nil }
        let i = Int(byAddr[best])
        return (KernelSymbol(name: name(i), address: KVAddr(rawValue: addrs[i]), type: Character(UnicodeScalar(types[i]))), addr.rawValue - addrs[i])
    }

    /// Every name, for completion.
    public var allNames: [String] { (0..<addrs.count).map(name) }

    /// Parse `ADDR TYPE NAME [module]` lines in one pass over the bytes; junk is an error naming the line.
    public static func systemMap(path: String) throws -> SymbolTable {
        let file = try OpenFile(path: path)
        guard file.size <= 1 << 30 else { throw DumpError(path, "\(file.size) bytes: too large for a System.map") }
        let bytes = try file.read(offset: 0, count: Int(file.size))
        var t = SymbolTable()
        t.slots = [Int32](repeating: 0, count: max(1024, 1 << (64 - UInt64(bytes.count / 24 + 1).leadingZeroBitCount + 1)))
        t.names.reserveCapacity(bytes.count / 2)
        try bytes.withUnsafeBufferPointer { b in
            var pos = 0, line = 0
            while pos < b.count {
                line += 1
                var end = pos
                while end < b.count && b[end] != 0x0a { end += 1 }
                defer { pos = end + 1 }
                var i = pos
                while i < end && b[i] == 0x20 { i += 1 }
                if i == end || (i + 1 == end && b[i] == 0x0d) { continue }
                func bad() -> DumpError {
                    DumpError(path, offset: UInt64(pos), "line \(line): expected `ADDRESS TYPE NAME`, got \(String(decoding: UnsafeBufferPointer(rebasing: b[pos..<min(end, pos + 80)]), as: UTF8.self))")
                }
                var a: UInt64 = 0, digits = 0
                // Xen's xen-syms.map writes "0x" before each address; Linux's System.map does not.
                if i + 2 < end, b[i] == 0x30, b[i + 1] == 0x78 { i += 2 }
                while i < end, b[i] != 0x20 {
                    let c = b[i]
                    let v: UInt64
                    switch c {
                    case 0x30...0x39: v = UInt64(c - 0x30)
                    case 0x61...0x66: v = UInt64(c - 0x61 + 10)
                    case 0x41...0x46: v = UInt64(c - 0x41 + 10)
                    default: throw bad()
                    }
                    digits += 1
                    guard digits <= 16 else { throw bad() }
                    a = a << 4 | v
                    i += 1
                }
                guard digits > 0, i + 2 < end, b[i] == 0x20, b[i + 2] == 0x20 else { throw bad() }
                let type = b[i + 1]
                i += 3
                var e = i
                while e < end && b[e] != 0x20 && b[e] != 0x09 && b[e] != 0x0d { e += 1 }
                guard e > i, e - i <= Int(UInt16.max) else { throw bad() }
                t.add(bytes: UnsafeBufferPointer(rebasing: b[i..<e]), a, type: type)
            }
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
                    let kind = sym.st_info & 0xf
                    if !str.isEmpty { t.append(str, sym.st_value, type: kind == 2 ? "T" : (kind == 1 ? "D" : "?")) }
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
            if let a = UInt64(val, radix: 16) { t.append(String(k.dropFirst(7).dropLast()), a) }
        }
        t.finish()
        return t
    }

    /// The symbols for a dump: a System.map and/or a vmlinux, and the dump's own VMCOREINFO.
    /// Link-time addresses (System.map, vmlinux) move by VMCOREINFO's KERNELOFFSET under KASLR;
    /// VMCOREINFO's own SYMBOL() values are already the running ones and win.
    public static func forDump(systemMap: String?, vmlinux: String?, dump: NoteCarrier?) throws -> SymbolTable {
        var linked = SymbolTable()
        if let m = systemMap { linked.merge(try SymbolTable.systemMap(path: m)) }
        if let v = vmlinux { linked.merge(try SymbolTable.vmlinux(path: v)) }
        var t = SymbolTable()
        if let vi = dump?.vmcoreInfo { t.merge(SymbolTable.vmcoreInfo(vi)) }
        t.merge(linked.relocated(by: dump?.vmcoreInfo?.kernelOffset ?? 0))
        return t
    }

    /// The same symbols moved by a KASLR offset (kernel-image symbols only: ≥ __START_KERNEL_map).
    public func relocated(by offset: UInt64) -> SymbolTable {
        guard offset != 0 else { return self }
        var t = SymbolTable()
        t = self
        for i in 0..<t.addrs.count where t.addrs[i] >= 0xffff_ffff_8000_0000 { t.addrs[i] &+= offset }
        t.finish()
        return t
    }

    /// Add the other table's symbols (names already here keep their address).
    public mutating func merge(_ o: SymbolTable) {
        if isEmpty { self = o; return }
        o.names.withUnsafeBufferPointer { all in
            for i in 0..<o.addrs.count {
                add(bytes: UnsafeBufferPointer(rebasing: all[Int(o.nameStart[i])..<Int(o.nameStart[i]) + Int(o.nameLen[i])]), o.addrs[i], type: o.types[i])
            }
        }
        finish()
    }
}

/// Regions of the x86_64 kernel address space (Linux Documentation/arch/x86/x86_64/mm.rst, 4-level paging).
public enum KernelRegion: String, Sendable {
    case user, xenHole = "xen reserved", directMap = "direct map", vmalloc, vmemmap, kernelText = "kernel image",
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
