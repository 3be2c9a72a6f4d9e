// Pseudo-physical memory: what the guest kernel believes is physical. It is a translation
// onto machine memory through the p2m (the note's map, or a source's), page by page; never
// a memory segment of its own, so no read can loop back into a page walk.
import DumpIO
import P2MFormat

public struct PseudoPhysicalMemory {
    public let map: P2MMap
    public let machine: MachineMemory
    public let origin: String
    public init(map: P2MMap, machine: MachineMemory, origin: String) { self.map = map; self.machine = machine; self.origin = origin }

    /// The machine frame of a pfn (identity entries map to the pfn's own frame).
    public func frame(of pfn: PFN) throws -> MFN {
        guard let e = map.entry(pfn) else {
            throw TranslationError("pfn \(pfn) is beyond the p2m (\(map.nrPfns) entries, \(origin))", kind: .beyondTable)
        }
        switch e.kind {
        case .mfn, .identity: return e.frame ?? MFN(rawValue: pfn.rawValue)
        case .invalid: throw TranslationError("pfn \(pfn) has no machine frame (INVALID in the p2m, \(origin))", kind: .unmapped)
        case .foreign: throw TranslationError("pfn \(pfn) maps a frame of another domain (\(e))", kind: .unmapped)
        }
    }

    public func translate(_ pa: PhysAddr) throws -> MachAddr {
        guard let m = try frame(of: pa.pfn()).address(offset: pa.pageOffset()) else {
            throw TranslationError("the machine address of \(pa) is out of range")
        }
        return m
    }

    public func read(_ pa: PhysAddr, into buffer: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let (a, o) = pa.rawValue.addingReportingOverflow(UInt64(done))
            guard !o else { throw TranslationError("read past pseudo-physical address 2^64") }
            let n = min(buffer.count - done, Int(PageGeometry.x86.size - PageGeometry.x86.offset(a)))
            try machine.read(try translate(PhysAddr(rawValue: a)), into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + n]))
            done += n
        }
    }
}
