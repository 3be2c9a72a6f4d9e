// One slot of a guest's p2m table, in the width-independent form the whole toolkit uses.
//
// Linux (arch/x86/include/asm/xen/page.h) stores unsigned longs: 8 bytes in a 64-bit PV guest,
// 4 in a 32-bit one. INVALID_P2M_ENTRY is all ones, FOREIGN_FRAME_BIT the top bit,
// IDENTITY_FRAME_BIT the one below. We normalise every entry to 64 bits (Spec/p2mnote.md §3):
// all-ones stays all-ones, the two flag bits move to bits 63 and 62, the frame number stays.

/// Size of one p2m slot in the guest.
public enum EntryWidth: UInt8, Sendable, Hashable, CaseIterable {
    case four = 4
    case eight = 8

    public var bytes: Int { Int(rawValue) }
    /// Largest frame number a normal entry can hold (below the two flag bits).
    public var maxFrame: UInt64 { self == .eight ? (1 << 62) - 1 : (1 << 30) - 1 }
}

/// What a p2m slot says about its pfn.
public enum EntryKind: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case mfn = 0        // a machine frame (no flag bits)
    case invalid = 1    // INVALID_P2M_ENTRY: missing, ballooned out, beyond RAM
    case identity = 2   // IDENTITY_FRAME_BIT set: 1:1 range (PCI holes, ...)
    case foreign = 3    // FOREIGN_FRAME_BIT set: a frame of another domain mapped here

    public var description: String {
        switch self {
        case .mfn: return "mfn"
        case .invalid: return "invalid"
        case .identity: return "identity"
        case .foreign: return "foreign"
        }
    }
}

/// A normalised p2m entry (Spec §3). `raw` is the 64-bit form.
public struct P2MEntry: Hashable, Sendable, CustomStringConvertible {
    public static let foreignBit: UInt64 = 1 << 63
    public static let identityBit: UInt64 = 1 << 62
    public static let flagMask: UInt64 = foreignBit | identityBit
    public static let invalid = P2MEntry(raw: .max)

    public let raw: UInt64
    public init(raw: UInt64) { self.raw = raw }

    public static func mfn(_ m: MFN) -> P2MEntry { P2MEntry(raw: m.rawValue) }
    public static func identity(_ p: PFN) -> P2MEntry { P2MEntry(raw: p.rawValue | identityBit) }
    public static func foreign(_ m: MFN) -> P2MEntry { P2MEntry(raw: m.rawValue | foreignBit) }

    public var isInvalid: Bool { raw == .max }

    public var kind: EntryKind {
        if raw == .max { return .invalid }
        if raw & P2MEntry.foreignBit != 0 { return .foreign }
        if raw & P2MEntry.identityBit != 0 { return .identity }
        return .mfn
    }

    /// The frame with both flag bits stripped, as Linux's pfn_to_mfn() returns it;
    /// nil for INVALID.
    public var frame: MFN? { raw == .max ? nil : MFN(rawValue: raw & ~P2MEntry.flagMask) }

    /// Convert a slot as stored in guest memory (little-endian value of `width` bytes).
    /// Returns nil when a 64-bit value cannot come from a 4-byte slot (never for .eight).
    public static func normalise(stored: UInt64, width: EntryWidth) -> P2MEntry? {
        switch width {
        case .eight:
            return P2MEntry(raw: stored)
        case .four:
            guard stored <= 0xFFFF_FFFF else { return nil }
            if stored == 0xFFFF_FFFF { return .invalid }
            let flags = (stored >> 30) & 3          // bit31 foreign, bit30 identity
            return P2MEntry(raw: (flags << 62) | (stored & 0x3FFF_FFFF))
        }
    }

    /// The value a slot of `width` bytes holds for this entry; nil if it does not fit
    /// (a frame ≥ 2^30 or stray bits in a 32-bit guest).
    public func stored(width: EntryWidth) -> UInt64? {
        switch width {
        case .eight:
            return raw
        case .four:
            if raw == .max { return 0xFFFF_FFFF }
            let payload = raw & ~P2MEntry.flagMask
            guard payload <= 0x3FFF_FFFF else { return nil }
            return ((raw >> 62) << 30) | payload
        }
    }

    public var description: String {
        switch kind {
        case .invalid: return "invalid"
        case .mfn: return "mfn 0x" + String(raw, radix: 16)
        case .identity: return "identity 0x" + String(raw & ~P2MEntry.flagMask, radix: 16)
        case .foreign: return "foreign 0x" + String(raw & ~P2MEntry.flagMask, radix: 16)
        }
    }
}
