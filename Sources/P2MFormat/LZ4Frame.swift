// The payload's LZ4 frame (Spec §5, rule 13, Appendix B) through liblz4's frame API.
// The frame descriptor is checked by hand first, so that no buffer is sized from an unchecked
// field and what rule 13 refuses is refused whatever liblz4 would do: a magic other than
// 04 22 4d 18 (skippable and legacy frames included), version ≠ 01, reserved bits, block size
// IDs 0–3, a dictionary ID, no content size, no content checksum. liblz4 then checks the header
// checksum byte, block sizes against the block maximum, block checksums when present, the
// content checksum and the decoded size; this code checks that the frame ends exactly at the end
// of the payload.
//
// Encoder (Appendix B): LZ4F_compressFrame with the preferences below; liblz4 itself lowers the
// block size ID to the smallest of 64 KiB/256 KiB/1 MiB/4 MiB that holds the input and switches to
// independent blocks when the input fits one block (every note under 64 KiB: FLG 0x6C, BD 0x40).
import CLZ4

enum LZ4Frame {
    static let magic: UInt32 = 0x184D_2204

    static func compress(_ src: [UInt8]) throws -> [UInt8] {
        var prefs = LZ4F_preferences_t()
        prefs.frameInfo.blockSizeID = LZ4F_max4MB
        prefs.frameInfo.blockMode = LZ4F_blockLinked
        prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        prefs.frameInfo.frameType = LZ4F_frame
        prefs.frameInfo.contentSize = UInt64(src.count)
        prefs.compressionLevel = src.count <= 16 << 20 ? 9 : 1
        let bound = LZ4F_compressFrameBound(src.count, &prefs)
        var dst = [UInt8](repeating: 0, count: bound)
        let n = src.withUnsafeBytes { s in
            dst.withUnsafeMutableBytes { d in
                LZ4F_compressFrame(d.baseAddress, bound, s.baseAddress, src.count, &prefs)
            }
        }
        if LZ4F_isError(n) != 0 {
            throw P2MFormatError.lz4("compression failed: \(String(cString: LZ4F_getErrorName(n)))")
        }
        dst.removeSubrange(n...)
        return dst
    }

    /// Parse the frame descriptor: returns the declared content size.
    static func declaredContentSize(_ frame: UnsafeRawBufferPointer) throws -> UInt64 {
        guard frame.count >= 7 else { throw P2MFormatError.lz4("frame of \(frame.count) bytes is too short") }
        guard UInt32(truncatingIfNeeded: loadLE(frame, 0, 4)) == magic else {
            throw P2MFormatError.lz4("bad frame magic (expected 04 22 4d 18)")
        }
        let flg = frame[4], bd = frame[5]
        guard flg >> 6 == 1 else { throw P2MFormatError.lz4("frame version \(flg >> 6), expected 1") }
        guard flg & 0x02 == 0, bd & 0x8F == 0 else { throw P2MFormatError.lz4("reserved frame descriptor bits set") }
        guard (4...7).contains(bd >> 4) else { throw P2MFormatError.lz4("block size id \(bd >> 4) not in 4...7") }
        guard flg & 0x01 == 0 else { throw P2MFormatError.lz4("frame has a dictionary ID (p2mnote defines no dictionary)") }
        guard flg & 0x08 != 0 else { throw P2MFormatError.lz4("frame does not declare its content size") }
        guard flg & 0x04 != 0 else { throw P2MFormatError.lz4("frame has no content checksum") }
        // magic 4 + FLG + BD + content size 8 + HC (liblz4 checks HC, block sizes and checksums).
        guard frame.count >= 15 else { throw P2MFormatError.lz4("frame descriptor truncated") }
        return loadLE(frame, 6, 8)
    }

    /// Decompress exactly one frame that must fill `frame` and produce `expected` bytes.
    static func decompress(_ frame: UnsafeRawBufferPointer, expected: Int) throws -> [UInt8] {
        let declared = try declaredContentSize(frame)
        guard declared == UInt64(expected) else {
            throw P2MFormatError.lz4("frame content size \(declared) ≠ decoded_size \(expected)")
        }
        var ctx: OpaquePointer? = nil
        let rc = LZ4F_createDecompressionContext(&ctx, UInt32(LZ4F_VERSION))
        guard LZ4F_isError(rc) == 0, let dctx = ctx else { throw P2MFormatError.lz4("cannot create a decompression context") }
        defer { LZ4F_freeDecompressionContext(dctx) }
        var out = [UInt8](repeating: 0, count: expected)
        var srcPos = 0, dstPos = 0
        var hint = 1
        try out.withUnsafeMutableBytes { d in
            while srcPos < frame.count {
                var srcSize = frame.count - srcPos
                // An extra byte of room lets us notice a frame that decodes to more than declared.
                var dstSize = expected - dstPos
                hint = LZ4F_decompress(dctx, d.baseAddress.map { $0 + dstPos }, &dstSize,
                                       frame.baseAddress! + srcPos, &srcSize, nil)
                if LZ4F_isError(hint) != 0 {
                    throw P2MFormatError.lz4("corrupt frame at byte \(srcPos): \(String(cString: LZ4F_getErrorName(hint)))")
                }
                srcPos += srcSize
                dstPos += dstSize
                if hint == 0 { break }
                if srcSize == 0 && dstSize == 0 { break }
            }
        }
        guard hint == 0 else { throw P2MFormatError.lz4("frame truncated (decoded \(dstPos) of \(expected) bytes)") }
        guard srcPos == frame.count else { throw P2MFormatError.lz4("\(frame.count - srcPos) bytes after the frame") }
        guard dstPos == expected else { throw P2MFormatError.lz4("frame decoded to \(dstPos) bytes, expected \(expected)") }
        return out
    }
}
