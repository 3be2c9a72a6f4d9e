// XXH64 (Spec Appendix A) through Debian's libxxhash: the header checksum and the map digest.
// Streaming, so that the digest of canonical runs is computed while records are produced.
// The state is a value (XXH_STATIC_LINKING_ONLY), so copies of a digester stay independent.
// Tools/c-decoder keeps its own implementation on purpose: it checks the Spec independently.
import CXXHash

public struct XXH64: @unchecked Sendable {
    private var state = XXH64_state_t()

    public init(seed: UInt64 = 0) {
        _ = XXH64_reset(&state, seed)
    }

    @inline(__always) public mutating func update(word w: UInt64) {
        var le = w.littleEndian
        _ = withUnsafeBytes(of: &le) { XXH64_update(&state, $0.baseAddress, 8) }
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let b = bytes.baseAddress, bytes.count > 0 else { return }
        _ = XXH64_update(&state, b, bytes.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func finalize() -> UInt64 {
        var s = state
        return XXH64_digest(&s)
    }

    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { CXXHash.XXH64($0.baseAddress, $0.count, seed) }
    }
}
