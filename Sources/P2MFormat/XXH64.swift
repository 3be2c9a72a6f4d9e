// XXH64 (seed 0 by default), written from the public algorithm description. The note uses it
// for its header checksum and its map digest (Spec Appendix A). Streaming, so that the digest
// of canonical runs can be computed while records are produced.

public struct XXH64: Sendable {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    private var acc: (UInt64, UInt64, UInt64, UInt64)
    private var buffer: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var buffered = 0          // bytes in `buffer`
    private var total: UInt64 = 0
    private let seed: UInt64

    public init(seed: UInt64 = 0) {
        self.seed = seed
        acc = (seed &+ XXH64.p1 &+ XXH64.p2, seed &+ XXH64.p2, seed, seed &- XXH64.p1)
    }

    @inline(__always) static func round(_ a: UInt64, _ input: UInt64) -> UInt64 {
        let x = a &+ input &* p2
        return ((x << 31) | (x >> 33)) &* p1
    }

    @inline(__always) static func merge(_ h: UInt64, _ a: UInt64) -> UInt64 {
        let r = round(0, a)
        return (h ^ r) &* p1 &+ p4
    }

    @inline(__always) private mutating func stripe(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64) {
        acc.0 = XXH64.round(acc.0, a)
        acc.1 = XXH64.round(acc.1, b)
        acc.2 = XXH64.round(acc.2, c)
        acc.3 = XXH64.round(acc.3, d)
    }

    /// Feed one little-endian 64-bit word (the digest serialises everything as such words).
    @inline(__always) public mutating func update(word w: UInt64) {
        switch buffered {
        case 0: buffer.0 = w
        case 8: buffer.1 = w
        case 16: buffer.2 = w
        default:
            buffer.3 = w
            stripe(buffer.0, buffer.1, buffer.2, buffer.3)
            buffered = 0
            total &+= 8
            return
        }
        buffered += 8
        total &+= 8
    }

    /// Feed arbitrary bytes.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        // Finish a partial word byte-wise through a small staging word.
        while i < bytes.count {
            if tail.isEmpty && bytes.count - i >= 8 {
                update(word: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                i += 8
            } else {
                tail.append(bytes[i])
                i += 1
                total &+= 1
                if tail.count == 8 {
                    var w: UInt64 = 0
                    for (k, b) in tail.enumerated() { w |= UInt64(b) << (8 * UInt64(k)) }
                    tail.removeAll(keepingCapacity: true)
                    total &-= 8
                    update(word: w)
                }
            }
        }
    }
    private var tail: [UInt8] = []

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func finalize() -> UInt64 {
        var h: UInt64
        if total >= 32 {
            h = ((acc.0 << 1) | (acc.0 >> 63)) &+ ((acc.1 << 7) | (acc.1 >> 57))
                &+ ((acc.2 << 12) | (acc.2 >> 52)) &+ ((acc.3 << 18) | (acc.3 >> 46))
            h = XXH64.merge(h, acc.0)
            h = XXH64.merge(h, acc.1)
            h = XXH64.merge(h, acc.2)
            h = XXH64.merge(h, acc.3)
        } else {
            h = seed &+ XXH64.p5
        }
        h &+= total
        var words: [UInt64] = []
        if buffered >= 8 { words.append(buffer.0) }
        if buffered >= 16 { words.append(buffer.1) }
        if buffered >= 24 { words.append(buffer.2) }
        for w in words {
            h ^= XXH64.round(0, w)
            h = ((h << 27) | (h >> 37)) &* XXH64.p1 &+ XXH64.p4
        }
        var rest = tail[...]
        if rest.count >= 4 {
            var w: UInt64 = 0
            for k in 0..<4 { w |= UInt64(rest[rest.startIndex + k]) << (8 * UInt64(k)) }
            rest = rest.dropFirst(4)
            h ^= w &* XXH64.p1
            h = ((h << 23) | (h >> 41)) &* XXH64.p2 &+ XXH64.p3
        }
        for b in rest {
            h ^= UInt64(b) &* XXH64.p5
            h = ((h << 11) | (h >> 53)) &* XXH64.p1
        }
        h ^= h >> 33
        h = h &* XXH64.p2
        h ^= h >> 29
        h = h &* XXH64.p3
        h ^= h >> 32
        return h
    }

    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        var h = XXH64(seed: seed)
        h.update(bytes)
        return h.finalize()
    }
}
