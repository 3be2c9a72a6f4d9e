// Little-endian byte writing and strictly bounds-checked reading, plus the LEB128 / zigzag
// varints of Spec §6.1. The reader never traps: every read checks the remaining length.

struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    @inline(__always) mutating func u8(_ v: UInt8) { bytes.append(v) }

    @inline(__always) mutating func uvar(_ v: UInt64) {
        var x = v
        while x >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: x) | 0x80)
            x >>= 7
        }
        bytes.append(UInt8(x))
    }

    @inline(__always) mutating func svar(_ d: UInt64) {   // d is a wrapping difference
        let s = Int64(bitPattern: d)
        uvar(UInt64(bitPattern: (s << 1) ^ (s >> 63)))
    }

    mutating func le(_ v: UInt64, _ n: Int) {
        for i in 0..<n { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }
}

@inline(__always) func uvarSize(_ v: UInt64) -> Int {
    v == 0 ? 1 : (64 - v.leadingZeroBitCount + 6) / 7
}

@inline(__always) func zigzag(_ d: UInt64) -> UInt64 {
    let s = Int64(bitPattern: d)
    return UInt64(bitPattern: (s << 1) ^ (s >> 63))
}

/// Read-only cursor over a byte buffer; all reads bounds-checked.
struct ByteReader {
    let base: UnsafeRawBufferPointer
    var pos: Int

    init(_ base: UnsafeRawBufferPointer, at pos: Int = 0) {
        self.base = base
        self.pos = pos
    }

    var remaining: Int { base.count - pos }

    @inline(__always) mutating func u8() -> UInt8? {
        guard pos < base.count else { return nil }
        defer { pos += 1 }
        return base[pos]
    }

    /// Strict ULEB128: ≤ 10 bytes, fits 64 bits, minimal. nil on any violation or truncation.
    @inline(__always) mutating func uvar() -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var n = 0
        while true {
            guard pos < base.count else { return nil }
            let b = base[pos]
            pos += 1
            n += 1
            if n == 10 {
                guard b <= 1 else { return nil }
            }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 {
                if n > 1 && b == 0 { return nil }   // non-minimal
                return result
            }
            shift += 7
            if n == 10 { return nil }
        }
    }

    @inline(__always) mutating func svar() -> UInt64? {
        guard let z = uvar() else { return nil }
        return (z >> 1) ^ (0 &- (z & 1))
    }

    mutating func le(_ n: Int) -> UInt64? {
        guard n <= 8, remaining >= n else { return nil }
        var v: UInt64 = 0
        for i in 0..<n { v |= UInt64(base[pos + i]) << (8 * UInt64(i)) }
        pos += n
        return v
    }
}

/// Little-endian field access on a byte array at fixed offsets (header parsing).
@inline(__always) func loadLE(_ b: UnsafeRawBufferPointer, _ off: Int, _ n: Int) -> UInt64 {
    var v: UInt64 = 0
    for i in 0..<n { v |= UInt64(b[off + i]) << (8 * UInt64(i)) }
    return v
}
