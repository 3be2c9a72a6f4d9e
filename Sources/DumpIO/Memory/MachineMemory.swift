// Machine memory as one registry of segments, each with its own read function (drgn's
// memory_reader.c does the same for virtual and physical memory). A container — an ELF vmcore,
// an xl dump-core, and next the kdump-compressed and flattened files — contributes segments;
// every reader above (page walks, p2m sources, `rd -m`) reads through this one type, so adding a
// container never touches them.
//
// Only machine memory lives here: the page walk's entries hold machine frames, so a walk reads
// this and nothing else. Pseudo-physical and kernel-virtual reads are translations *onto* it
// (Translation/), never segments of it.
import P2MFormat

/// Reads bytes of machine memory. Implementations bounds-check everything and throw, never trap.
public protocol MachineMemory: AnyObject {
    /// Fill `buffer` with the bytes at `address`; throws if any byte is not in the dump.
    func read(_ address: MachAddr, into buffer: UnsafeMutableRawBufferPointer) throws
    /// Whether the page holding `address` is in the dump.
    func contains(_ address: MachAddr) -> Bool
}

extension MachineMemory {
    public func readU64(_ address: MachAddr) throws -> UInt64 {
        var v: UInt64 = 0
        try withUnsafeMutableBytes(of: &v) { try read(address, into: $0) }
        return UInt64(littleEndian: v)
    }

    public func readBytes(_ address: MachAddr, count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try read(address, into: $0) }
        return out
    }
}

/// One stretch of machine memory that a container holds, with how to read it.
public struct MemorySegment {
    /// Reads `buffer.count` bytes starting `offset` bytes into the segment (the registry has
    /// already checked that they lie inside it).
    public typealias Reader = (_ offset: UInt64, _ buffer: UnsafeMutableRawBufferPointer) throws -> Void

    public let start: UInt64
    public let length: UInt64
    /// What holds it, for messages: "PT_LOAD 3", ".xen_pages run 12".
    public let origin: String
    public let read: Reader
    public var end: UInt64 { start + length }

    public init(start: UInt64, length: UInt64, origin: String, read: @escaping Reader) {
        self.start = start; self.length = length; self.origin = origin; self.read = read
    }
}

/// The registry: segments sorted by address, found by binary search.
public final class MachineMemoryMap: MachineMemory {
    public let path: String
    public let segments: [MemorySegment]
    /// Reads served so far (tests use it to prove a command's reads are bounded).
    public private(set) var readCount = 0

    /// Segments must not overlap and must not wrap past 2^64.
    public init(path: String, segments: [MemorySegment]) throws {
        self.path = path
        var s = segments
        for seg in s {
            guard seg.length > 0, seg.start.addingReportingOverflow(seg.length).overflow == false else {
                throw DumpError(path, "\(seg.origin): machine range 0x\(String(seg.start, radix: 16)) + 0x\(String(seg.length, radix: 16)) is empty or wraps past 2^64")
            }
        }
        s.sort { $0.start < $1.start }
        for k in s.indices.dropFirst() where s[k].start < s[k - 1].end {
            throw DumpError(path, "\(s[k].origin) overlaps \(s[k - 1].origin) in machine memory at 0x\(String(s[k].start, radix: 16))")
        }
        self.segments = s
    }

    @inline(__always) func segmentIndex(_ a: UInt64) -> Int? {
        var lo = 0, hi = segments.count - 1
        while lo <= hi {
            let m = (lo + hi) / 2
            if a < segments[m].start { hi = m - 1 } else if a >= segments[m].end { lo = m + 1 } else { return m }
        }
        return nil
    }

    public func contains(_ address: MachAddr) -> Bool { segmentIndex(address.rawValue & ~PageGeometry.x86.mask) != nil }

    public func read(_ address: MachAddr, into buffer: UnsafeMutableRawBufferPointer) throws {
        readCount += 1
        var a = address.rawValue
        var done = 0
        while done < buffer.count {
            guard let i = segmentIndex(a) else {
                throw DumpError.notInDump(path, "machine address 0x\(String(a, radix: 16)) is not in the dump (no segment holds it)")
            }
            let s = segments[i]
            let n = Int(min(UInt64(buffer.count - done), s.end - a))
            try s.read(a - s.start, UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + n]))
            done += n
            let (next, o) = a.addingReportingOverflow(UInt64(n))
            if o && done < buffer.count { throw DumpError(path, "read past machine address 2^64") }
            a = next
        }
    }

    /// Total bytes of machine memory the dump holds.
    public var totalBytes: UInt64 { segments.reduce(0) { $0 &+ $1.length } }
}
