// makedumpfile's kdump-compressed file ("KDUMP   ", makedumpfile -c/-l/-p/-z; what Debian's
// kdump-tools saves by default): disk_dump_header at 0, kdump_sub_header at block_size, the two
// bitmaps, one 24-byte page_desc per dumpable page in frame order, then the page data.
// Layouts from makedumpfile's diskdump_mod.h and crash's diskdump.h.
//
// Which frames index it: on a Xen host makedumpfile reads /proc/vmcore, whose PT_LOADs hold
// machine memory (p_paddr = machine address), and numbers pages by p_paddr >> 12. So the
// bitmaps and descriptors are indexed by machine frame. Checked on a real conversion of the
// real dom0 vmcore: max_mapnr = 0x7ffdd, the 2 GiB machine's frames, not dom0's 0x30061 pfns; and
// the page at machine frame m holds what the ELF original holds at machine address m << 12.
//
// The first page read streams the dumpable bitmap once to build a rank index (a
// cumulative count of dumpable pages per 4096-frame chunk, as crash's valid_pages does); the
// bitmaps themselves stay in the file. Finding a page's descriptor is then O(1): the chunk's
// rank plus a popcount inside its 512 bitmap bytes (a small cache of chunks). Memory is
// O(bitmap/64): 512 KiB for a 1 TiB machine, whose bitmaps are 64 MiB.
import CLZO
import CSnappy
import CZlib
import CZstd
import Foundation
import P2MFormat

public final class KdumpCompressed: DumpContainer {
    public let path: String
    public let file: ByteSource
    /// "kdump-compressed" or "flattened kdump-compressed".
    public let container: String
    /// Whether the file is makedumpfile's flattened form (-F), read through its records.
    public let flattened: Bool
    public var containerName: String { flattened ? "flattened" : "kdump-compressed" }
    public let headerVersion: Int32
    public let blockSize: UInt64
    public let maxMapnr: UInt64
    public let dumpLevel: Int32
    public let notes: [ElfNote]
    private var memoryMap: MachineMemoryMap!
    public var memory: MachineMemoryMap { memoryMap }
    private let presentOff: UInt64       // first bitmap (frames in RAM), in the file
    private let dumpableOff: UInt64      // second bitmap (frames stored)
    private let bitmapBytes: UInt64      // each bitmap's size
    static let chunkFrames: UInt64 = 4096
    private static let chunkSlots = 64
    private var chunkTags = [Int](repeating: -1, count: KdumpCompressed.chunkSlots)
    private var chunkWords = [UInt64](repeating: 0, count: KdumpCompressed.chunkSlots * 64)
    private let descBase: UInt64
    private var cache: [UInt64: [UInt8]] = [:]
    private var cacheOrder: [UInt64] = []
    /// The last page decompressed per data offset: makedumpfile stores every zero page (and
    /// every page equal to it) once, so most frames of a -d 0 dump share one blob; decompressing
    /// it again per frame would be the reader's main cost.
    private var blobOffset: UInt64 = .max
    private var blobPage: [UInt8] = []
    public var kind: DumpKind { .kdumpCompressed }
    public var fileSize: UInt64 { file.size }
    public var layoutDescription: String { "\(container), header version \(headerVersion), dump level \(dumpLevel), \(maxMapnr) frames, \((try? chunkRank)?.last.map { "\($0)" } ?? "?") pages stored\(truncatedAt.map { ", TRUNCATED at byte \($0): the last pages' data is missing" } ?? "")" }


    public init(file f: ByteSource, container: String = "kdump-compressed", flattened: Bool = false) throws {
        path = f.path; file = f; self.container = container; self.flattened = flattened
        func fail(_ off: UInt64, _ m: String) -> DumpError { DumpError(f.path, offset: off, "kdump-compressed: " + m) }
        guard f.size >= 464 else { throw fail(0, "file of \(f.size) bytes is too short for the 464-byte disk_dump_header") }
        let h = try f.read(offset: 0, count: 464)
        headerVersion = Int32(bitPattern: rd4(h, 8))
        // utsname 6×65 at 12, then struct timeval (16, 8-aligned at 408), then the counters.
        let status = rd4(h, 424)
        let bs = Int32(bitPattern: rd4(h, 428))
        let subBlocks = Int32(bitPattern: rd4(h, 432))
        let bitmapBlocks = UInt64(rd4(h, 436))
        let mapnr32 = UInt64(rd4(h, 440))
        guard (1...6).contains(headerVersion) else { throw fail(8, "header_version \(headerVersion); this reader knows 1 to 6") }
        guard bs == 4096 else { throw fail(428, "block_size \(bs), expected 4096 (x86_64 page size)") }
        guard subBlocks >= 1, subBlocks <= 1024 else { throw fail(432, "sub_hdr_size \(subBlocks) blocks is implausible") }
        blockSize = 4096
        _ = status
        let sub = try f.read(offset: blockSize, count: 104)
        dumpLevel = Int32(bitPattern: rd4(sub, 8))
        let split = Int32(bitPattern: rd4(sub, 12))
        guard split == 0 else {
            throw fail(blockSize + 12, "a split dump (makedumpfile --split): reassemble it first with `makedumpfile --reassemble`")
        }
        maxMapnr = headerVersion >= 6 && rd(sub, 96) != 0 ? rd(sub, 96) : mapnr32
        guard maxMapnr > 0, maxMapnr <= 1 << 40 else { throw fail(440, "max_mapnr \(maxMapnr) is implausible") }
        // Two bitmaps, each bitmap_blocks/2 blocks, a bit per frame.
        let half = bitmapBlocks * blockSize / 2
        guard bitmapBlocks % 2 == 0, half * 8 >= maxMapnr, half <= 1 << 34 else {
            throw fail(436, "bitmap_blocks \(bitmapBlocks) does not hold two bitmaps of \(maxMapnr) frames")
        }
        let bitmapOff = (1 + UInt64(subBlocks)) * blockSize
        descBase = bitmapOff + 2 * half
        guard descBase <= f.size else { throw fail(bitmapOff, "the bitmaps (\(2 * half) bytes at 0x\(String(bitmapOff, radix: 16))) run past the end of the \(f.size)-byte file") }
        presentOff = bitmapOff; dumpableOff = bitmapOff + half; bitmapBytes = half
        // Notes (header_version ≥ 4): the ELF notes of /proc/vmcore, Xen's included.
        var ns: [ElfNote] = []
        if headerVersion >= 4 {
            let off = rd(sub, 48), size = rd(sub, 56)
            if off != 0 && size != 0 {
                guard size <= 64 << 20, off <= f.size, size <= f.size - off else {
                    throw fail(blockSize + 48, "the notes blob (offset_note 0x\(String(off, radix: 16)), size_note \(size)) runs past the end of the \(file.size)-byte file")
                }
                ns = try DumpFile.walkNotes(in: f, offset: off, size: size, container: "kdump notes")
            }
        }
        notes = ns
        memoryMap = try MachineMemoryMap(path: f.path, segments: [
            // Weak: the registry must not keep its container alive (a cycle, leaked per open in
            // a library caller); a read after the container is gone is an error, never a trap.
            MemorySegment(start: 0, length: PageGeometry.x86.base(maxMapnr), origin: "kdump-compressed pages") { [weak self, path = f.path] off, buf in
                guard let s = self else { throw DumpError(path, "the kdump-compressed dump was closed; keep the container while reading its memory") }
                try s.readMachine(off, into: buf)
            }])
    }

    /// The rank index (and whether the page data is cut short), built on the first page read:
    /// opening stays O(headers) whatever the machine's size, and so does an injection, which
    /// reads no page.
    private var indexResult: Result<(rank: [UInt64], truncatedAt: UInt64?), Error>?
    private func index() throws -> (rank: [UInt64], truncatedAt: UInt64?) {
        if let r = indexResult { return try r.get() }
        let r = Result { try buildIndex() }
        indexResult = r
        return try r.get()
    }
    private var chunkRank: [UInt64] { get throws { try index().rank } }
    /// Set when the page data the last descriptor names runs past the end of the file: a dump
    /// cut short (a full disk, an interrupted copy). Pages before the cut still read; later ones
    /// fail naming the cut. nil also when the index cannot be built (its error comes with reads).
    public var truncatedAt: UInt64? { (try? index())?.truncatedAt }

    private func buildIndex() throws -> (rank: [UInt64], truncatedAt: UInt64?) {
        let f = file, half = bitmapBytes, mapnr = maxMapnr, dumpableAt = dumpableOff
        func fail(_ off: UInt64, _ m: String) -> DumpError { DumpError(f.path, offset: off, "kdump-compressed: " + m) }
        // One pass over the dumpable bitmap, 1 MiB at a time: the rank of every chunk.
        let chunks = Int((maxMapnr + KdumpCompressed.chunkFrames - 1) / KdumpCompressed.chunkFrames)
        var cr = [UInt64](repeating: 0, count: chunks + 1)
        let meaningful = (maxMapnr + 7) / 8
        let limit = min(half, (meaningful + 511) / 512 * 512)
        // (no bigger than the bitmap: a small dump's index costs no 1 MiB buffer)
        let piece = Int(min(2048 * 512, limit))
        var buf = [UInt8](repeating: 0, count: piece)
        var total: UInt64 = 0, c = 0
        while c < chunks {
            let at = UInt64(c) * 512
            guard at < limit else { break }   // (half * 8 >= max_mapnr was checked: never taken)
            let n = Int(min(UInt64(piece), limit - at))
            try buf.withUnsafeMutableBytes { try f.read(offset: dumpableAt + at, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n])) }
            buf.withUnsafeBytes { raw in
                var i = 0
                while i < n, c < chunks {
                    let end = min(i + 512, n)
                    var w = i
                    while w + 8 <= end {
                        var v = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: w, as: UInt64.self))
                        let frame0 = (UInt64(c) * 512 + UInt64(w - i)) * 8
                        if frame0 + 64 > mapnr { v = frame0 >= mapnr ? 0 : v & ((1 << (mapnr - frame0)) - 1) }
                        total += UInt64(v.nonzeroBitCount)
                        w += 8
                    }
                    c += 1
                    cr[c] = total
                    i = end
                }
            }
        }
        let stored = total
        guard descBase + stored * 24 <= f.size else {
            throw fail(descBase, "\(stored) page descriptors at 0x\(String(descBase, radix: 16)) run past the end of the \(f.size)-byte file: truncated dump")
        }
        var cut: UInt64? = nil
        if stored > 0, let last = try? f.read(offset: descBase + (stored - 1) * 24, count: 24) {
            let off = rd(last, 0), size = UInt64(rd4(last, 8))
            let (end, o) = off.addingReportingOverflow(size)
            if o || end > f.size { cut = f.size }
        }
        return (cr, cut)
    }

    public func recordedRoots() throws -> [RecordedRoot] { crashRegRoots }

    static let lzoReady: Bool = p2m_lzo_init() == LZO_E_OK

    /// Every stored frame's page, in frame order (for a content hash).
    public func forEachStoredPage(_ body: (UInt64, [UInt8]) throws -> Void) throws {
        let rank = try chunkRank
        for c in 0..<(rank.count - 1) where rank[c + 1] > rank[c] {
            for w in 0..<64 {
                var bits = try dumpableWord(c * 64 + w)
                while bits != 0 {
                    let f = UInt64(c * 64 + w) * 64 + UInt64(bits.trailingZeroBitCount)
                    try body(f, try page(f))
                    bits &= bits - 1
                }
            }
        }
    }

    /// Word `w` (frames 64w..64w+63) of the dumpable bitmap, through the chunk cache; bits at or
    /// past max_mapnr are clear.
    private func dumpableWord(_ w: Int) throws -> UInt64 {
        let c = w / 64
        let slot = c % KdumpCompressed.chunkSlots
        if chunkTags[slot] != c {
            chunkTags[slot] = -1
            let at = UInt64(c) * 512
            let n = Int(min(512, bitmapBytes - min(at, bitmapBytes)))
            try chunkWords.withUnsafeMutableBytes { b in
                let dst = UnsafeMutableRawBufferPointer(rebasing: b[(slot * 512)..<(slot * 512 + 512)])
                dst.initializeMemory(as: UInt8.self, repeating: 0)
                if n > 0 { try file.read(offset: dumpableOff + at, into: UnsafeMutableRawBufferPointer(rebasing: dst[0..<n])) }
            }
            chunkTags[slot] = c
        }
        var v = UInt64(littleEndian: chunkWords[slot * 64 + w % 64])
        let frame0 = UInt64(w) * 64
        if frame0 + 64 > maxMapnr { v = frame0 >= maxMapnr ? 0 : v & ((1 << (maxMapnr - frame0)) - 1) }
        return v
    }

    private func isDumpable(_ frame: UInt64) throws -> Bool { try dumpableWord(Int(frame >> 6)) >> (frame & 63) & 1 == 1 }

    /// The first bitmap's bit (in RAM at all), read from the file: only the error path asks.
    private func isPresent(_ frame: UInt64) -> Bool {
        guard let b = try? file.read(offset: presentOff + frame / 8, count: 1) else { return false }
        return b[0] >> (frame & 7) & 1 == 1
    }

    /// Descriptor index of a dumpable frame: O(1) through the rank index.
    private func descriptorIndex(_ frame: UInt64) throws -> UInt64 {
        let w = Int(frame >> 6)
        var n = try chunkRank[w / 64]
        for i in (w / 64 * 64)..<w { n += UInt64(try dumpableWord(i).nonzeroBitCount) }
        let below = try dumpableWord(w) & ((1 << (frame & 63)) - 1)
        return n + UInt64(below.nonzeroBitCount)
    }

    /// The 4096 bytes of machine frame `frame`.
    public func page(_ frame: UInt64) throws -> [UInt8] {
        if let p = cache[frame] { return p }
        guard frame < maxMapnr else { throw DumpError(path, "machine frame 0x\(String(frame, radix: 16)) is beyond max_mapnr 0x\(String(maxMapnr, radix: 16))") }
        guard try isDumpable(frame) else {
            throw DumpError.notInDump(path, isPresent(frame)
                ? "machine frame 0x\(String(frame, radix: 16)) was excluded by makedumpfile's dump level \(dumpLevel) (not zeros: not in the dump)"
                : "machine frame 0x\(String(frame, radix: 16)) is not in the dump (no RAM there)")
        }
        let dOff = descBase + (try descriptorIndex(frame)) * 24
        let d = try file.read(offset: dOff, count: 24)
        let off = rd(d, 0), size = UInt64(rd4(d, 8)), flags = rd4(d, 12)
        let fr = "kdump-compressed: page descriptor of frame 0x\(String(frame, radix: 16))"
        guard size > 0 else { throw DumpError(path, offset: dOff + 8, "\(fr) says 0 bytes (a page is 1 to \(2 * blockSize) bytes)") }
        guard size <= 2 * blockSize else {
            throw DumpError(path, offset: dOff + 8, "\(fr) says \(size) bytes, more than two pages (\(2 * blockSize)): a damaged descriptor or a decompression bomb")
        }
        guard off >= descBase, off <= file.size, size <= file.size - off else {
            throw DumpError(path, offset: dOff, "\(fr) points at \(size) bytes at 0x\(String(off, radix: 16)), outside the page data [0x\(String(descBase, radix: 16)), 0x\(String(file.size, radix: 16)))\(truncatedAt != nil ? " (the file is truncated at byte \(file.size))" : "")")
        }
        if off == blobOffset, blobPage.count == Int(blockSize) {
            if cacheOrder.count >= 64 { cache[cacheOrder.removeFirst()] = nil }
            cache[frame] = blobPage; cacheOrder.append(frame)
            return blobPage
        }
        let raw = try file.read(offset: off, count: Int(size))
        var out = [UInt8](repeating: 0, count: Int(blockSize))
        switch flags {
        case 0:
            guard size == blockSize else { throw DumpError(path, offset: dOff, "kdump-compressed: an uncompressed page of \(size) bytes (expected \(blockSize))") }
            out = raw
        case 0x1:
            var n = uLongf(blockSize)
            let rc = out.withUnsafeMutableBufferPointer { o in raw.withUnsafeBufferPointer { i in uncompress(o.baseAddress, &n, i.baseAddress, uLong(size)) } }
            guard rc == Z_OK, n == blockSize else {
                throw DumpError(path, offset: off, "kdump-compressed: zlib page of frame 0x\(String(frame, radix: 16)) does not decompress to one page (zlib \(rc), \(n) bytes)")
            }
        case 0x2:
            guard KdumpCompressed.lzoReady else { throw DumpError(path, "liblzo2 failed to initialise") }
            var n = lzo_uint(blockSize)
            let rc = out.withUnsafeMutableBufferPointer { o in raw.withUnsafeBufferPointer { i in
                lzo1x_decompress_safe(i.baseAddress, lzo_uint(size), o.baseAddress, &n, nil) } }
            guard rc == LZO_E_OK, n == blockSize else {
                throw DumpError(path, offset: off, "kdump-compressed: LZO page of frame 0x\(String(frame, radix: 16)) does not decompress to one page (lzo \(rc), \(n) bytes)")
            }
        case 0x4:
            var n = Int(blockSize)
            let rc = out.withUnsafeMutableBufferPointer { o in raw.withUnsafeBufferPointer { i in
                i.baseAddress!.withMemoryRebound(to: CChar.self, capacity: i.count) { ip in
                    o.baseAddress!.withMemoryRebound(to: CChar.self, capacity: o.count) { op in
                        // Check the announced length first: a bomb never reaches the decoder.
                        var len = 0
                        guard snappy_uncompressed_length(ip, Int(size), &len) == SNAPPY_OK, len == Int(blockSize) else { return SNAPPY_INVALID_INPUT }
                        return snappy_uncompress(ip, Int(size), op, &n)
                    } } } }
            guard rc == SNAPPY_OK, n == Int(blockSize) else {
                throw DumpError(path, offset: off, "kdump-compressed: snappy page of frame 0x\(String(frame, radix: 16)) does not decompress to one page")
            }
        case 0x20:
            let n = out.withUnsafeMutableBytes { o in raw.withUnsafeBytes { i in ZSTD_decompress(o.baseAddress, o.count, i.baseAddress, i.count) } }
            guard ZSTD_isError(n) == 0, n == Int(blockSize) else {
                throw DumpError(path, offset: off, "kdump-compressed: zstd page of frame 0x\(String(frame, radix: 16)) does not decompress to one page")
            }
        default:
            throw DumpError(path, offset: dOff + 12, "kdump-compressed: unknown page flags 0x\(String(flags, radix: 16))")
        }
        if cacheOrder.count >= 64 { cache[cacheOrder.removeFirst()] = nil }
        cache[frame] = out; cacheOrder.append(frame)
        blobOffset = off; blobPage = out
        return out
    }

    private func readMachine(_ addr: UInt64, into buf: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        var a = addr
        while done < buf.count {
            let p = try page(PageGeometry.x86.frame(a))
            let o = Int(PageGeometry.x86.offset(a))
            let n = min(buf.count - done, 4096 - o)
            p.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buf[done..<done + n]).copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[o..<o + n])) }
            done += n
            a += UInt64(n)
        }
    }
}
