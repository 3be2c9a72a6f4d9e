// Machine memory of a dump. A kdump vmcore holds machine memory directly in its PT_LOADs; an
// xl dump-core holds pages by pfn (.xen_pages, ordered like .xen_p2m), so machine reads go
// through the dump's own mfn → page index (the pairs libxc recorded), never through a p2m
// we would have to translate.
import Foundation
import P2MFormat

/// Memory from a kdump vmcore's PT_LOADs.
public final class KdumpMemory: MachineMemory {
    public let dump: DumpFile
    private let loads: [LoadSegment]
    public private(set) var readCount = 0

    public init(_ dump: DumpFile) {
        self.dump = dump
        self.loads = dump.loads
    }

    private func segment(_ a: UInt64) -> LoadSegment? {
        var lo = 0, hi = loads.count - 1
        while lo <= hi {
            let m = (lo + hi) / 2
            if a < loads[m].paddr { hi = m - 1 } else if a >= loads[m].end { lo = m + 1 } else { return loads[m] }
        }
        return nil
    }

    public func contains(_ address: MachAddr) -> Bool { segment(address.rawValue & ~0xfff) != nil }

    public func read(_ address: MachAddr, into buffer: UnsafeMutableRawBufferPointer) throws {
        readCount += 1
        var a = address.rawValue
        var done = 0
        while done < buffer.count {
            guard let s = segment(a) else {
                throw DumpError(dump.path, "machine address 0x\(String(a, radix: 16)) is not in the dump (no PT_LOAD covers it)")
            }
            let off = a - s.paddr
            let n = Int(min(UInt64(buffer.count - done), s.end - a))
            let dst = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + n])
            if off >= s.filesz {
                // Beyond p_filesz the segment reads as zeros (as crash and /proc/vmcore do).
                dst.initializeMemory(as: UInt8.self, repeating: 0)
            } else {
                let inFile = Int(min(UInt64(n), s.filesz - off))
                try dump.read(offset: s.offset + off, into: UnsafeMutableRawBufferPointer(rebasing: dst[0..<inFile]))
                if inFile < n { UnsafeMutableRawBufferPointer(rebasing: dst[inFile...]).initializeMemory(as: UInt8.self, repeating: 0) }
            }
            done += n
            a += UInt64(n)
        }
    }
}

/// Reads by pseudo-physical address (xl dump-core pages are stored by pfn).
public protocol PseudoPhysMemory: AnyObject {
    func read(_ address: PhysAddr, into buffer: UnsafeMutableRawBufferPointer) throws
}

/// An xl dump-core: `.xen_p2m` (pfn, gmfn) pairs index `.xen_pages`.
public final class XenCoreMemory: MachineMemory, PseudoPhysMemory {
    public let dump: DumpFile
    public let pagesSection: Section
    /// (pfn, mfn) of page i, in file order.
    public let pairs: [(pfn: UInt64, mfn: UInt64)]
    private struct Run { var key: UInt64; var index: Int; var count: Int }
    private let byPfn: [Run]
    private let byMfn: [Run]
    public private(set) var readCount = 0

    public init(_ dump: DumpFile) throws {
        self.dump = dump
        guard let pages = dump.section(named: ".xen_pages") else { throw DumpError(dump.path, "no .xen_pages section") }
        guard let p2m = dump.section(named: ".xen_p2m") else {
            throw DumpError(dump.path, dump.section(named: ".xen_pfn") != nil ? "an auto-translated (HVM) guest: .xen_pfn instead of .xen_p2m" : "no .xen_p2m section")
        }
        guard p2m.size % 16 == 0 else { throw DumpError(dump.path, offset: p2m.offset, ".xen_p2m size \(p2m.size) is not a multiple of 16") }
        let n = Int(p2m.size / 16)
        guard UInt64(n) * 4096 <= pages.size else {
            throw DumpError(dump.path, offset: pages.offset, ".xen_pages holds \(pages.size / 4096) pages, .xen_p2m lists \(n)")
        }
        pagesSection = pages
        let raw = try dump.read(offset: p2m.offset, count: Int(p2m.size))
        var pr: [(UInt64, UInt64)] = []
        pr.reserveCapacity(n)
        raw.withUnsafeBytes { b in
            for i in 0..<n {
                let pfn = b.loadUnaligned(fromByteOffset: 16 * i, as: UInt64.self)
                let mfn = b.loadUnaligned(fromByteOffset: 16 * i + 8, as: UInt64.self)
                if pfn == .max && mfn == .max { continue }      // trailing invalid padding
                pr.append((pfn, mfn))
            }
        }
        pairs = pr.map { (pfn: $0.0, mfn: $0.1) }
        func runs(_ key: (Int) -> UInt64) -> [Run] {
            var idx = Array(0..<pr.count)
            idx.sort { key($0) < key($1) }
            var out: [Run] = []
            for i in idx {
                if var last = out.last, last.key + UInt64(last.count) == key(i), last.index + last.count == i {
                    last.count += 1; out[out.count - 1] = last
                } else { out.append(Run(key: key(i), index: i, count: 1)) }
            }
            return out
        }
        byPfn = runs { pr[$0].0 }
        byMfn = runs { pr[$0].1 }
    }

    private static func find(_ runs: [Run], _ k: UInt64) -> Int? {
        var lo = 0, hi = runs.count - 1
        while lo <= hi {
            let m = (lo + hi) / 2
            if k < runs[m].key { hi = m - 1 } else if k >= runs[m].key + UInt64(runs[m].count) { lo = m + 1 } else {
                return runs[m].index + Int(k - runs[m].key)
            }
        }
        return nil
    }

    public func pageIndex(mfn: UInt64) -> Int? { XenCoreMemory.find(byMfn, mfn) }
    public func pageIndex(pfn: UInt64) -> Int? { XenCoreMemory.find(byPfn, pfn) }

    private func readPages(_ start: UInt64, _ buffer: UnsafeMutableRawBufferPointer, _ index: (UInt64) -> Int?, _ what: String) throws {
        readCount += 1
        var a = start
        var done = 0
        while done < buffer.count {
            guard let i = index(a >> 12) else {
                throw DumpError(dump.path, "\(what) 0x\(String(a, radix: 16)): its page is not in .xen_pages")
            }
            let n = min(buffer.count - done, Int(4096 - (a & 0xfff)))
            try dump.read(offset: pagesSection.offset + UInt64(i) * 4096 + (a & 0xfff),
                          into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + n]))
            done += n
            a += UInt64(n)
        }
    }

    public func read(_ address: MachAddr, into buffer: UnsafeMutableRawBufferPointer) throws {
        try readPages(address.rawValue, buffer, { self.pageIndex(mfn: $0) }, "machine address")
    }
    public func read(_ address: PhysAddr, into buffer: UnsafeMutableRawBufferPointer) throws {
        try readPages(address.rawValue, buffer, { self.pageIndex(pfn: $0) }, "pseudo-physical address")
    }
    public func contains(_ address: MachAddr) -> Bool { pageIndex(mfn: address.rawValue >> 12) != nil }

    /// Shared info arch fields (formats.md §1.5).
    public func sharedInfoArch() throws -> (maxPfn: UInt64, fll: UInt64, p2mCR3: UInt64, p2mVAddr: UInt64)? {
        guard let s = dump.section(named: ".xen_shared_info"), s.size >= 0xC40 else { return nil }
        let b = try dump.read(offset: s.offset + 0xC10, count: 0x30)
        return (le64(b, 0) ?? 0, le64(b, 8) ?? .max, le64(b, 0x18) ?? 0, le64(b, 0x20) ?? 0)
    }

    /// cr3 of vcpu 0 from `.xen_prstatus` (ctrlreg[3] at 4984 + 24 in vcpu_guest_context).
    public func vcpu0CR3() throws -> UInt64? {
        guard let s = dump.section(named: ".xen_prstatus"), s.size >= 5016 else { return nil }
        let b = try dump.read(offset: s.offset + 5008, count: 8)
        return le64(b, 0)
    }
}

/// The machine memory of any dump kind.
public func machineMemory(of dump: DumpFile) throws -> MachineMemory {
    switch dump.kind {
    case .kdumpELF: return KdumpMemory(dump)
    case .xenDumpCore: return try XenCoreMemory(dump)
    }
}
