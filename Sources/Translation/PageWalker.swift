// x86_64 4-level page walk of a Xen PV guest, reading machine memory only.
//
// In a PV guest every page-table entry holds a *machine* frame number. So the walk goes
// MachAddr (cr3) → entry → MachAddr → … → MachAddr of the byte, and never needs the p2m.
// That is the whole point: crash converted each level's MFN to a pseudo-physical address
// (m2p) and back (p2m), and the p2m itself lives in vmalloc space behind this very walk —
// the recursion. Here the signature says it: MachineMemory in, MachAddr out.
import DumpIO
import P2MFormat

public struct WalkError: Error, CustomStringConvertible, Sendable {
    public let vaddr: KVAddr
    public let level: Int          // 4 = PML4 … 1 = PT
    public let tableMFN: MFN?
    public let index: Int
    public let entry: UInt64
    public let reason: String
    public var description: String {
        let lv = ["", "PTE", "PMD", "PUD", "PGD"][max(0, min(4, level))]
        var s = "cannot translate \(vaddr): \(reason)"
        if let t = tableMFN { s += " (\(lv) table mfn \(t), index \(index), entry 0x\(String(entry, radix: 16)))" }
        return s
    }
}

public struct WalkStep: Sendable {
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

/// PTE decoding (formats.md §1.8).
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

public final class MachinePageWalker {
    public let memory: MachineMemory
    // A small direct-mapped cache of table pages (tag = mfn + 1; 0 = empty).
    private static let slots = 1024
    private var tags = [UInt64](repeating: 0, count: MachinePageWalker.slots)
    private var tables = [UInt64](repeating: 0, count: MachinePageWalker.slots * 512)
    public private(set) var tableReads = 0

    public init(memory: MachineMemory) { self.memory = memory }

    @inline(__always) private func entry(table mfn: UInt64, _ i: Int) throws -> UInt64 {
        let slot = Int(mfn & UInt64(MachinePageWalker.slots - 1))
        if tags[slot] != mfn &+ 1 {
            guard mfn <= (UInt64.max >> 12) else { throw DumpError("page walk", "table mfn 0x\(String(mfn, radix: 16)) out of range") }
            try tables.withUnsafeMutableBufferPointer { b in
                try memory.read(MachAddr(mfn << 12), into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: b[(slot * 512)..<(slot * 512 + 512)])))
            }
            tableReads += 1
            tags[slot] = mfn &+ 1
        }
        return UInt64(littleEndian: tables[slot * 512 + i])
    }

    /// Translate with every level recorded (for `vtop`).
    public func walk(_ va: KVAddr, root: MachAddr) throws -> WalkResult {
        let v = va.rawValue
        // Canonical 48-bit address: bits 63..47 all equal.
        let top = v >> 47
        guard top == 0 || top == 0x1ffff else {
            throw WalkError(vaddr: va, level: 4, tableMFN: nil, index: 0, entry: 0, reason: "not a canonical 48-bit address")
        }
        var table = root.rawValue >> 12
        var steps: [WalkStep] = []
        for level in stride(from: 4, through: 1, by: -1) {
            let idx = Int((v >> (12 + 9 * UInt64(level - 1))) & 511)
            let e = try entry(table: table, idx)
            steps.append(WalkStep(level: level, tableMFN: MFN(table), index: idx, entry: e))
            guard e & PTE.present != 0 else {
                throw WalkError(vaddr: va, level: level, tableMFN: MFN(table), index: idx, entry: e, reason: "entry not present")
            }
            if (level == 3 || level == 2) && e & PTE.pse != 0 {
                let size: UInt64 = level == 3 ? 1 << 30 : 1 << 21
                let base = e & PTE.addressMask & ~(size - 1)
                return WalkResult(steps: steps, address: MachAddr(base | (v & (size - 1))), pageSize: size)
            }
            table = (e & PTE.addressMask) >> 12
        }
        return WalkResult(steps: steps, address: MachAddr((table << 12) | (v & 0xfff)), pageSize: 4096)
    }

    /// Fast path: kernel virtual → machine address.
    @inline(__always) public func translate(_ va: KVAddr, root: MachAddr) throws -> MachAddr {
        let v = va.rawValue
        let top = v >> 47
        guard top == 0 || top == 0x1ffff else {
            throw WalkError(vaddr: va, level: 4, tableMFN: nil, index: 0, entry: 0, reason: "not a canonical 48-bit address")
        }
        var table = root.rawValue >> 12
        var level = 4
        while level >= 1 {
            let idx = Int((v >> (12 + 9 * UInt64(level - 1))) & 511)
            let e = try entry(table: table, idx)
            if e & PTE.present == 0 {
                throw WalkError(vaddr: va, level: level, tableMFN: MFN(table), index: idx, entry: e, reason: "entry not present")
            }
            if (level == 3 || level == 2) && e & PTE.pse != 0 {
                let size: UInt64 = level == 3 ? 1 << 30 : 1 << 21
                return MachAddr((e & PTE.addressMask & ~(size - 1)) | (v & (size - 1)))
            }
            table = (e & PTE.addressMask) >> 12
            level -= 1
        }
        return MachAddr((table << 12) | (v & 0xfff))
    }

    /// The machine frame of the PMD-level table covering `va` (nil if the walk stops earlier),
    /// and the PMD entry itself: lets the list reader recognise shared p2m_missing_pte pages.
    public func pmdEntry(_ va: KVAddr, root: MachAddr) throws -> UInt64? {
        let v = va.rawValue
        var table = root.rawValue >> 12
        for level in [4, 3] {
            let e = try entry(table: table, Int((v >> (12 + 9 * UInt64(level - 1))) & 511))
            guard e & PTE.present != 0, e & PTE.pse == 0 || level == 4 else { return nil }
            table = (e & PTE.addressMask) >> 12
        }
        return try entry(table: table, Int((v >> 21) & 511))
    }

    /// Read kernel virtual memory (page by page through the walk).
    public func read(_ va: KVAddr, root: MachAddr, into buffer: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        var a = va.rawValue
        while done < buffer.count {
            let n = min(buffer.count - done, Int(4096 - (a & 0xfff)))
            let m = try translate(KVAddr(a), root: root)
            try memory.read(m, into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + n]))
            done += n
            a &+= UInt64(n)
        }
    }

    public func readU64(_ va: KVAddr, root: MachAddr) throws -> UInt64 {
        var v: UInt64 = 0
        try withUnsafeMutableBytes(of: &v) { try read(va, root: root, into: $0) }
        return UInt64(littleEndian: v)
    }

    public func readBytes(_ va: KVAddr, root: MachAddr, count: Int) throws -> [UInt8] {
        var b = [UInt8](repeating: 0, count: count)
        try b.withUnsafeMutableBytes { try read(va, root: root, into: $0) }
        return b
    }
}
