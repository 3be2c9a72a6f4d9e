// The small protocols behind which all dump I/O sits. Translation code is written against
// these, never against files, so that it can be tested on in-memory images and so that the
// type of memory a function reads is visible in its signature.
import P2MFormat

/// Reads bytes of machine memory (what a kdump vmcore's PT_LOAD segments hold).
/// Implementations must bounds-check everything and throw, never trap, on bad addresses.
public protocol MachineMemory: AnyObject {
    /// Fill `buffer` with the bytes at `address`; throws if any byte is not in the dump.
    func read(_ address: MachAddr, into buffer: UnsafeMutableRawBufferPointer) throws
    /// Whether the whole page holding `address` is present in the dump.
    func contains(_ address: MachAddr) -> Bool
}

extension MachineMemory {
    /// Read a little-endian UInt64 at a machine address.
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
