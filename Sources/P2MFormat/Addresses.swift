// Distinct types for the three address spaces of a Xen PV guest and their frame numbers.
//
// A PV guest's page tables hold machine frames, its kernel computes with pseudo-physical
// frames, and its code runs at kernel virtual addresses. Mixing them up is exactly how a
// reader ends up translating the p2m through the p2m (crash's recursion). Keeping each space a
// separate type makes a function's signature say which memory it touches: a page walker
// that takes and returns `MachAddr` cannot consult the p2m.

/// Common shape of the small wrappers below: a UInt64 with ordering and hex printing.
public protocol RawAddressValue: Hashable, Comparable, Sendable, CustomStringConvertible {
    var rawValue: UInt64 { get }
    init(rawValue: UInt64)
}

extension RawAddressValue {
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// Page geometry. Xen x86 PV guests use 4 KiB pages; kept as a value so nothing hard-codes 12.
public struct PageGeometry: Hashable, Sendable {
    public let shift: UInt64
    public var size: UInt64 { 1 << shift }
    public var mask: UInt64 { size - 1 }
    public init(shift: UInt64) { self.shift = shift }
    public static let x86 = PageGeometry(shift: 12)
    /// The frame number of an address.
    @inline(__always) public func frame(_ address: UInt64) -> UInt64 { address >> shift }
    /// The first address of a frame (the caller keeps the frame below 2^(64 − shift)).
    @inline(__always) public func base(_ frame: UInt64) -> UInt64 { frame << shift }
    /// An address's offset in its page.
    @inline(__always) public func offset(_ address: UInt64) -> UInt64 { address & mask }
    /// How many pages `bytes` bytes fill (rounded up; never overflows).
    @inline(__always) public func pages(_ bytes: UInt64) -> UInt64 { bytes / size + (bytes & mask == 0 ? 0 : 1) }
    /// `bytes` rounded up to a whole page (the caller keeps it below 2^64 − size).
    @inline(__always) public func roundUp(_ bytes: UInt64) -> UInt64 { pages(bytes) * size }
}

/// Kernel virtual address (crash: KVADDR).
public struct KVAddr: RawAddressValue {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// Pseudo-physical address: what the guest kernel believes is physical (crash: PHYSADDR,
/// libkdumpfile: KPHYSADDR).
public struct PhysAddr: RawAddressValue {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public func pfn(_ g: PageGeometry = .x86) -> PFN { PFN(rawValue: rawValue >> g.shift) }
    public func pageOffset(_ g: PageGeometry = .x86) -> UInt64 { rawValue & g.mask }
}

/// Machine address: a real host-physical address, as Xen and a kdump vmcore's PT_LOADs see it
/// (libkdumpfile: MACHPHYSADDR).
public struct MachAddr: RawAddressValue {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public func mfn(_ g: PageGeometry = .x86) -> MFN { MFN(rawValue: rawValue >> g.shift) }
    public func pageOffset(_ g: PageGeometry = .x86) -> UInt64 { rawValue & g.mask }
}

/// Pseudo-physical frame number.
public struct PFN: RawAddressValue {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// nil when the address would not fit in 64 bits (hostile input).
    public func address(offset: UInt64 = 0, _ g: PageGeometry = .x86) -> PhysAddr? {
        guard rawValue <= (UInt64.max >> g.shift), offset < g.size else { return nil }
        return PhysAddr(rawValue: rawValue << g.shift | offset)
    }
}

/// Machine frame number.
public struct MFN: RawAddressValue {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public func address(offset: UInt64 = 0, _ g: PageGeometry = .x86) -> MachAddr? {
        guard rawValue <= (UInt64.max >> g.shift), offset < g.size else { return nil }
        return MachAddr(rawValue: rawValue << g.shift | offset)
    }
}

// MARK: JSON: every address and frame is a "0x…" string (a JSON number loses precision above
// 2^53, and jq would silently round kernel addresses). Spec/json.md gives the schema.

extension KVAddr: Codable {}
extension PhysAddr: Codable {}
extension MachAddr: Codable {}
extension PFN: Codable {}
extension MFN: Codable {}

extension RawAddressValue where Self: Codable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let v = Hex64.parse(s) else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected a 0x… hex string, got \(s)") }
        self.init(rawValue: v)
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// A 64-bit value that JSON carries as a "0x…" string (raw p2m entries, PTEs, digests).
public struct Hex64: Codable, Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64
    public init(_ v: UInt64) { value = v }
    public var description: String { "0x" + String(value, radix: 16) }
    public static func parse(_ s: String) -> UInt64? {
        s.hasPrefix("0x") || s.hasPrefix("0X") ? UInt64(s.dropFirst(2), radix: 16) : nil
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let v = Hex64.parse(s) else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected a 0x… hex string, got \(s)") }
        value = v
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
