// The guest kernel's own symbol table, from the dump alone: no System.map, no vmlinux.
// A Xen dom0 kdump carries Xen's VMCOREINFO, not Linux's, and an xl dump-core none; but Linux
// keeps its VMCOREINFO text in a page of its own memory (vmcoreinfo_data, a zeroed page that
// starts "OSRELEASE="), and since 6.0 (both Debian kernels) that text gives the kallsyms tables'
// addresses: SYMBOL(kallsyms_names, _num_syms, _token_table, _token_index, _offsets,
// _relative_base) and SYMBOL(_stext). So: find the page among the guest's frames, then decode
// kallsyms as kernel/kallsyms.c does:
//  • names: per symbol a length in tokens (Linux ≥ 6.1: two bytes when the first has bit 7 set,
//    (b0 & 0x7f) | b1 << 7), then that many token numbers; token_index[256] (u16) gives each
//    token's start in token_table (NUL-terminated strings). The first decoded character is the
//    symbol's type (t, T, d, D, …).
//  • offsets: s32 per symbol, from relative_base (u64). With KALLSYMS_ABSOLUTE_PERCPU (x86-64 up
//    to 6.14), a value ≥ 0 is an absolute address and a negative one is relative_base − 1 − value;
//    without it, relative_base + (u32)value. Which of the two is told by _stext, whose address
//    VMCOREINFO gives.
// Every count and length is bounded: this is a crashed machine's memory.
import DumpIO
import P2MFormat

public enum Kallsyms {
    /// The VMCOREINFO texts in the guest's own memory: the machine frames of its pfns (not
    /// identity, foreign or invalid entries) whose page starts "OSRELEASE=", at most `limit`.
    public static func vmcoreInfoPages(map: P2MMap, machine: MachineMemory, limit: Int = 4) -> [(pfn: UInt64, info: VMCoreInfo)] {
        let magic = Array("OSRELEASE=".utf8)
        var head = [UInt8](repeating: 0, count: magic.count)
        var found: [(UInt64, VMCoreInfo)] = []
        struct Enough: Error {}
        func visit(_ pfn: UInt64, _ raw: UInt64) throws {
            // A plain frame number: no FOREIGN (63), IDENTITY (62) bits, not INVALID (~0).
            guard raw >> 52 == 0, let a = MFN(rawValue: raw).address(offset: 0) else { return }
            guard (try? head.withUnsafeMutableBytes({ try machine.read(a, into: $0) })) != nil, head == magic,
                  let page = try? machine.readBytes(a, count: Int(PageGeometry.x86.size)) else { return }
            found.append((pfn, VMCoreInfo(page)))
            if found.count >= limit { throw Enough() }
        }
        try? map.forEachSegment(from: 0, count: map.nrPfns) { start, count, first, step, literals in
            if let lits = literals {
                for (i, raw) in lits.enumerated() { try visit(start + UInt64(i), raw) }
            } else if first >> 52 == 0 {   // a progression of plain frames (INVALID and IDENTITY runs are skipped whole)
                for i in 0..<count { try visit(start + i, first &+ step &* i) }
            }
        }
        return found
    }

    /// The symbols kallsyms holds, read through `read` (kernel virtual address, byte count).
    public static func symbols(_ info: VMCoreInfo, read: (UInt64, Int) throws -> [UInt8]) throws -> SymbolTable {
        func sym(_ n: String) throws -> UInt64 {
            guard let a = info.symbol(n) else { throw TranslationError("the kernel's VMCOREINFO has no SYMBOL(\(n)) (Linux before 6.0?)", kind: .noSymbol) }
            return a
        }
        func fail(_ m: String) -> TranslationError { TranslationError("kallsyms: \(m)", kind: .other) }
        let numAt = try sym("kallsyms_num_syms"), namesAt = try sym("kallsyms_names"), tableAt = try sym("kallsyms_token_table")
        let indexAt = try sym("kallsyms_token_index"), offsetsAt = try sym("kallsyms_offsets"), baseAt = try sym("kallsyms_relative_base")
        let stext = try sym("_stext")
        let n = Int(littleEndian(try read(numAt, 4), at: 0, as: UInt32.self))
        guard n > 0, n <= 1 << 22 else { throw fail("kallsyms_num_syms \(n) is implausible") }
        let idx = try read(indexAt, 512)
        let tokenIndex = (0..<256).map { Int(littleEndian(idx, at: $0 * 2, as: UInt16.self)) }
        // The token table: up to the NUL after its last token.
        let last = tokenIndex.max() ?? 0
        let table = try read(tableAt, last + 256)
        guard table[last...].contains(0) else { throw fail("the last token has no end") }
        let tokens: [[UInt8]] = tokenIndex.map { s in Array(table[s...].prefix { $0 != 0 }) }
        let longNames = Self.longNames(info.osRelease)
        // The names stream, read a chunk at a time as far as it goes.
        var names: [UInt8] = []
        var pos = 0
        func byte() throws -> UInt8 {
            if pos >= names.count {
                guard names.count < 1 << 26 else { throw fail("kallsyms_names runs past 64 MiB") }
                names += try read(namesAt &+ UInt64(names.count), 1 << 16)
            }
            defer { pos += 1 }
            return names[pos]
        }
        let offsets = try read(offsetsAt, n * 4)
        let base = littleEndian(try read(baseAt, 8), at: 0, as: UInt64.self)
        var decoded: [(name: String, type: UInt8, value: Int32)] = []
        decoded.reserveCapacity(n)
        var stextValue: Int32?
        for k in 0..<n {
            var len = Int(try byte())
            if longNames, len & 0x80 != 0 {
                let b1 = Int(try byte())
                guard b1 & 0x80 == 0 else { throw fail("a three-byte name length at symbol \(k)") }
                len = (len & 0x7f) | b1 << 7
            }
            guard len > 0 else { throw fail("an empty name at symbol \(k)") }
            var text: [UInt8] = []
            for _ in 0..<len { text += tokens[Int(try byte())] }
            guard let type = text.first else { throw fail("symbol \(k) decodes to nothing") }
            let name = String(decoding: text.dropFirst(), as: UTF8.self)
            let v = Int32(bitPattern: littleEndian(offsets, at: k * 4, as: UInt32.self))
            if name == "_stext" { stextValue = v }
            decoded.append((name, type, v))
        }
        guard let sv = stextValue else { throw fail("no _stext among \(n) symbols") }
        // Which encoding: the one that puts _stext where VMCOREINFO says.
        let absolutePercpu: Bool
        if sv < 0, base &- 1 &- UInt64(bitPattern: Int64(sv)) == stext { absolutePercpu = true }
        else if base &+ UInt64(UInt32(bitPattern: sv)) == stext { absolutePercpu = false }
        else { throw fail("_stext decodes to neither 0x\(String(stext, radix: 16)) (VMCOREINFO) encoding: not this kernel's tables") }
        var t = SymbolTable()
        for d in decoded {
            let a = absolutePercpu ? (d.value >= 0 ? UInt64(d.value) : base &- 1 &- UInt64(bitPattern: Int64(d.value))) : base &+ UInt64(UInt32(bitPattern: d.value))
            t.append(d.name, a, type: Character(UnicodeScalar(d.type)))
        }
        t.finish()
        return t
    }

    /// Linux 6.1 (73bbb94466fd, "kallsyms: support big kernel symbols") made a length byte with
    /// bit 7 set the first of two; the format says nothing, so the release does.
    static func longNames(_ release: String?) -> Bool {
        guard let r = release else { return true }
        let parts = r.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return true }
        return parts[0] > 6 || (parts[0] == 6 && parts[1] >= 1)
    }
}
