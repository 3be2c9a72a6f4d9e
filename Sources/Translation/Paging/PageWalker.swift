// One page-table walker for every paging form, reading machine memory only.
//
// A Xen PV guest's page-table entries hold *machine* frames, and so do the entries of Xen's
// frame-list tree. A walk therefore goes root (MachAddr) → entry → MachAddr → … and never
// needs the p2m: the signature says it, MachineMemory in, MachAddr out. That is what breaks
// crash's recursion (m2p → p2m → page walk → m2p …).
//
// Forms are data, as in libkdumpfile's addrxlat (`{pte format, field sizes}`):
// - x86_64 4-level paging: fields {12, 9, 9, 9, 9}, x86 PTEs (present bit, PSE at levels 2–3);
// - Xen's p2m frame-list tree: fields {12, 9, 9, 9}, entries are bare 64-bit frame numbers.
//   Its level-1 "tables" are the guest's p2m pages themselves, so the tree translates a
//   pseudo-physical address (pfn << 12 | offset) to a machine address directly.
import DumpIO
import P2MFormat

public struct PagingForm: Sendable, Equatable, CustomStringConvertible {
    public enum EntryFormat: Sendable, Equatable {
        /// x86 page-table entries: bit 0 present, bit 7 PSE at levels 2 and 3, frame in bits 12–51.
        case x86PTE
        /// A 64-bit frame number per entry (Xen's frame lists); 0 and all ones mean "none".
        case frameNumber64
    }
    public let name: String
    public let pageShift: UInt64
    /// Index bits per level, lowest level first (level 1 entries name data pages).
    public let levelBits: [UInt64]
    public let entries: EntryFormat
    public var levels: Int { levelBits.count }
    public var description: String { name }

    public init(name: String, pageShift: UInt64, levelBits: [UInt64], entries: EntryFormat) {
        self.name = name; self.pageShift = pageShift; self.levelBits = levelBits; self.entries = entries
    }

    public static let x86_64 = PagingForm(name: "x86_64 4-level paging", pageShift: 12, levelBits: [9, 9, 9, 9], entries: .x86PTE)
    public static let xenFrameTree = PagingForm(name: "Xen frame-list tree", pageShift: 12, levelBits: [9, 9, 9], entries: .frameNumber64)

    /// Bit where level `level`'s index starts.
    @inline(__always) func shift(_ level: Int) -> UInt64 {
        var s = pageShift
        for i in 0..<(level - 1) { s += levelBits[i] }
        return s
    }
    /// Bits of address the form translates.
    public var addressBits: UInt64 { shift(levels + 1) }
}

/// PTE decoding (Linux arch/x86/include/asm/pgtable_types.h: _PAGE_PRESENT bit 0, _PAGE_PSE
/// bit 7, the frame in bits 12–51, _PAGE_NX bit 63).
public enum PTE {
    public static let present: UInt64 = 1
    public static let pse: UInt64 = 1 << 7
    public static let addressMask: UInt64 = 0x000f_ffff_ffff_f000
    public static func flagString(_ e: UInt64) -> String {
        var f: [String] = []
        if e & 1 != 0 { f.append("PRESENT") }
        if e & 2 != 0 { f.append("RW") }
        if e & 4 != 0 { f.append("USER") }
        if e & (1 << 5) != 0 { f.append("ACCESSED") }
        if e & (1 << 6) != 0 { f.append("DIRTY") }
        if e & (1 << 7) != 0 { f.append("PSE") }
        if e & (1 << 8) != 0 { f.append("GLOBAL") }
        if e & (1 << 63) != 0 { f.append("NX") }
        return f.joined(separator: "|")
    }
}

public struct WalkError: Error, CustomStringConvertible, Sendable {
    public let address: UInt64
    public let form: String
    public let level: Int
    public let tableMFN: MFN?
    public let index: Int
    public let entry: UInt64
    public let reason: String
    public var description: String {
        var s = "cannot translate 0x\(String(address, radix: 16)) (\(form)): \(reason)"
        if let t = tableMFN { s += " (level \(level) table mfn \(t), index \(index), entry 0x\(String(entry, radix: 16)))" }
        return s
    }
}

public struct WalkStep: Sendable, Codable {
    public let level: Int
    public let tableMFN: MFN
    public let index: Int
    public let entry: UInt64
}

public struct WalkResult: Sendable {
    public let steps: [WalkStep]
    public let address: MachAddr
    public let pageSize: UInt64
}

public final class PageTableWalker {
    public let memory: MachineMemory
    // A small direct-mapped cache of table pages (tag = mfn + 1; 0 = empty).
    private static let slots = 1024
    private var tags = [UInt64](repeating: 0, count: PageTableWalker.slots)
    private var tables = [UInt64](repeating: 0, count: PageTableWalker.slots * 512)
    public private(set) var tableReads = 0

    public init(memory: MachineMemory) { self.memory = memory }

    @inline(__always) func entry(table mfn: UInt64, _ i: Int) throws -> UInt64 {
        let slot = Int(mfn & UInt64(PageTableWalker.slots - 1))
        if tags[slot] != mfn &+ 1 {
            guard let a = MFN(rawValue: mfn).address() else { throw DumpError("page walk", "table mfn 0x\(String(mfn, radix: 16)) out of range") }
            tags[slot] = 0
            try tables.withUnsafeMutableBufferPointer { b in
                try memory.read(a, into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: b[(slot * 512)..<(slot * 512 + 512)])))
            }
            tableReads += 1
            tags[slot] = mfn &+ 1
        }
        return UInt64(littleEndian: tables[slot * 512 + i])
    }

    /// The outcome of descending to `stopLevel`: the frame the entry at that level names
    /// (a table for stopLevel > 1, the data page for 1), or a large page met on the way.
    struct Descent { var frame: UInt64; var largePageSize: UInt64?; var largePageBase: UInt64 }

    @inline(__always) private func descend(_ a: UInt64, root: MachAddr, form: PagingForm, stopLevel: Int,
                                           steps: UnsafeMutablePointer<[WalkStep]>?) throws -> Descent {
        guard form.addressBits >= 64 || a >> form.addressBits == 0 || form.entries == .x86PTE else {
            throw WalkError(address: a, form: form.name, level: form.levels, tableMFN: nil, index: 0, entry: 0, reason: "beyond the \(form.addressBits)-bit range of the form")
        }
        if form.entries == .x86PTE {
            let top = a >> 47
            guard top == 0 || top == 0x1ffff else {
                throw WalkError(address: a, form: form.name, level: form.levels, tableMFN: nil, index: 0, entry: 0, reason: "not a canonical 48-bit address")
            }
        }
        var table = root.rawValue >> form.pageShift
        var level = form.levels
        while true {
            let sh = form.shift(level)
            let idx = Int((a >> sh) & ((1 << form.levelBits[level - 1]) - 1))
            let e = try entry(table: table, idx)
            steps?.pointee.append(WalkStep(level: level, tableMFN: MFN(rawValue: table), index: idx, entry: e))
            let next: UInt64
            switch form.entries {
            case .x86PTE:
                guard e & PTE.present != 0 else {
                    throw WalkError(address: a, form: form.name, level: level, tableMFN: MFN(rawValue: table), index: idx, entry: e, reason: "entry not present")
                }
                if (level == 2 || level == 3) && e & PTE.pse != 0 {
                    let size: UInt64 = 1 << sh
                    let base = e & PTE.addressMask & ~(size - 1)
                    let frame = (base | (a & (size - 1))) >> form.pageShift
                    return Descent(frame: frame, largePageSize: size, largePageBase: base)
                }
                next = (e & PTE.addressMask) >> form.pageShift
            case .frameNumber64:
                guard e != 0, e != .max, e < 1 << 52 else {
                    throw WalkError(address: a, form: form.name, level: level, tableMFN: MFN(rawValue: table), index: idx, entry: e, reason: "no frame")
                }
                next = e
            }
            if level == stopLevel { return Descent(frame: next, largePageSize: nil, largePageBase: 0) }
            table = next
            level -= 1
        }
    }

    /// Translate with every level recorded (for `vtop`).
    public func walk(_ a: UInt64, root: MachAddr, form: PagingForm) throws -> WalkResult {
        var steps: [WalkStep] = []
        let d = try withUnsafeMutablePointer(to: &steps) { try descend(a, root: root, form: form, stopLevel: 1, steps: $0) }
        let mask = (UInt64(1) << form.pageShift) - 1
        return WalkResult(steps: steps, address: MachAddr(rawValue: (d.frame << form.pageShift) | (a & mask)), pageSize: d.largePageSize ?? (1 << form.pageShift))
    }

    /// Fast path: address → machine address.
    @inline(__always) public func translate(_ a: UInt64, root: MachAddr, form: PagingForm) throws -> MachAddr {
        let d = try descend(a, root: root, form: form, stopLevel: 1, steps: nil)
        return MachAddr(rawValue: (d.frame << form.pageShift) | (a & ((UInt64(1) << form.pageShift) - 1)))
    }

    /// Translate, with how many bytes from `a` on lie in the same page (large pages included):
    /// bulk reads copy a whole 2 MiB or 1 GiB page per walk.
    @inline(__always) public func translateSpan(_ a: UInt64, root: MachAddr, form: PagingForm) throws -> (MachAddr, UInt64) {
        let d = try descend(a, root: root, form: form, stopLevel: 1, steps: nil)
        let size = d.largePageSize ?? (UInt64(1) << form.pageShift)
        let within = a & (size - 1)
        if d.largePageSize != nil { return (MachAddr(rawValue: d.largePageBase | within), size - within) }
        return (MachAddr(rawValue: (d.frame << form.pageShift) | within), size - within)
    }

    /// The frame that the entry at `level` names for address `a`: a page-table page for
    /// level > 1 (nil if a large page ends the walk earlier), the data page for level 1.
    public func frame(for a: UInt64, atLevel level: Int, root: MachAddr, form: PagingForm) throws -> MFN? {
        let d = try descend(a, root: root, form: form, stopLevel: level, steps: nil)
        if d.largePageSize != nil && level > 1 { return nil }
        return MFN(rawValue: d.frame)
    }
}

/// A kernel's virtual address space: x86_64 paging rooted at its top page table.
public struct KernelPageTables {
    public let walker: PageTableWalker
    public let root: MachAddr
    public init(walker: PageTableWalker, root: MachAddr) { self.walker = walker; self.root = root }

    public func translate(_ va: KVAddr) throws -> MachAddr { try walker.translate(va.rawValue, root: root, form: .x86_64) }
    public func walk(_ va: KVAddr) throws -> WalkResult { try walker.walk(va.rawValue, root: root, form: .x86_64) }

    /// Read kernel virtual memory, page by page through the walk (a large page in one piece).
    public func read(_ va: KVAddr, into buffer: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        var a = va.rawValue
        while done < buffer.count {
            let (m, span) = try walker.translateSpan(a, root: root, form: .x86_64)
            let n = Int(min(UInt64(buffer.count - done), span))
            try walker.memory.read(m, into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + n]))
            done += n
            a &+= UInt64(n)
        }
    }

    public func readU64(_ va: KVAddr) throws -> UInt64 {
        var v: UInt64 = 0
        try withUnsafeMutableBytes(of: &v) { try read(va, into: $0) }
        return UInt64(littleEndian: v)
    }

    public func readBytes(_ va: KVAddr, count: Int) throws -> [UInt8] {
        var b = [UInt8](repeating: 0, count: count)
        try b.withUnsafeMutableBytes { try read(va, into: $0) }
        return b
    }
}
