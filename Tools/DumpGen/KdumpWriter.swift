// makedumpfile's kdump-compressed and flattened formats, written from an ELF vmcore, so that the
// readers are tested on every compression, header version and edge case (split, eraseinfo)
// makedumpfile itself can write (Debian's is built without snappy and zstd). The layout follows
// makedumpfile's diskdump_mod.h; this file does not use the reader (DumpIO) it tests.
import CLZO
import CSnappy
import CZlib
import CZstd
import Foundation
import P2MFormat

public enum KdumpCompression: String, CaseIterable, Sendable, Codable {
    case none, zlib, lzo, snappy, zstd
    var flag: UInt32 { switch self { case .none: 0; case .zlib: 1; case .lzo: 2; case .snappy: 4; case .zstd: 0x20 } }
}

public struct KdumpWriteOptions: Sendable {
    public var compression: KdumpCompression = .zlib
    public var headerVersion: Int32 = 6
    /// Mark the file as one part of a `--split` dump (readers must refuse it).
    public var split = false
    /// Append an eraseinfo blob (header version ≥ 5).
    public var eraseinfo = false
    /// Leave these machine frames out of the second (dumpable) bitmap: "excluded".
    public var excludeFrames: Set<UInt64> = []
    /// Leave out every all-zero page, as `makedumpfile -d 1` does (small files: fuzz seeds).
    public var excludeZeroPages = false
    public init() {}
}

public enum KdumpWriter {
    static func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }

    /// Write a kdump-compressed file holding the machine memory and the notes of an ELF vmcore.
    public static func write(fromELF src: String, to dst: String, _ o: KdumpWriteOptions = KdumpWriteOptions()) throws {
        let input = try Data(contentsOf: URL(fileURLWithPath: src), options: .alwaysMapped)
        func u(_ off: Int, _ n: Int) -> UInt64 { (0..<n).reduce(UInt64(0)) { $0 | UInt64(input[off + $1]) << (8 * UInt64($1)) } }
        let phoff = Int(u(32, 8)), phnum = Int(u(56, 2))
        // The input's data extents (SEEK_DATA/SEEK_HOLE): a page inside a hole is zeros without
        // reading it, so a sparse 1 TiB-machine dump converts in seconds.
        var extents: [(UInt64, UInt64)] = []
        let sfd = open(src, O_RDONLY)
        if sfd >= 0 {
            var pos: off_t = 0
            while true {
                let d = lseek(sfd, pos, 3 /* SEEK_DATA */); if d < 0 { break }
                let h = lseek(sfd, d, 4 /* SEEK_HOLE */); if h < 0 || h <= d { break }
                extents.append((UInt64(d), UInt64(h))); pos = h
            }
            close(sfd)
        }
        func inHole(_ off: Int) -> Bool {
            var lo = 0, hi = extents.count
            while lo < hi { let m = (lo + hi) / 2; if extents[m].1 <= UInt64(off) { lo = m + 1 } else { hi = m } }
            return lo == extents.count || extents[lo].0 >= UInt64(off) + 4096
        }
        func isZeroPage(_ off: Int) -> Bool {
            guard off >= 0, off + 4096 <= input.count else { return true }
            if !extents.isEmpty, inHole(off) { return true }
            return input.withUnsafeBytes { r in
                for i in stride(from: off, to: off + 4096, by: 8) where r.loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 { return false }
                return true
            }
        }
        var loads: [(offset: UInt64, paddr: UInt64, filesz: UInt64, memsz: UInt64)] = []
        var notes = [UInt8]()
        for i in 0..<phnum {
            let p = phoff + 56 * i
            let type = u(p, 4), off = u(p + 8, 8), paddr = u(p + 24, 8), filesz = u(p + 32, 8), memsz = u(p + 40, 8)
            if type == 4 { notes = Array(input[Int(off)..<Int(off + filesz)]) }
            if type == 1 { loads.append((off, paddr, filesz, memsz)) }
        }
        let maxMapnr = loads.map { ($0.paddr + $0.memsz + 4095) >> 12 }.max() ?? 0
        // Which frames are in RAM (first bitmap) and dumpable (second).
        let bitmapBytes = Int((maxMapnr + 7) / 8 + 4095) / 4096 * 4096
        var present = [UInt8](repeating: 0, count: bitmapBytes), dumpable = present
        var frames: [(frame: UInt64, fileOff: UInt64?)] = []
        for l in loads {
            for f in (l.paddr >> 12)..<((l.paddr + l.memsz) >> 12) {
                let inFile = (f << 12) - l.paddr < l.filesz ? l.offset + ((f << 12) - l.paddr) : nil
                present[Int(f >> 3)] |= 1 << (f & 7)
                if o.excludeZeroPages, inFile.map({ isZeroPage(Int($0)) }) ?? true { continue }
                if !o.excludeFrames.contains(f) { dumpable[Int(f >> 3)] |= 1 << (f & 7); frames.append((f, inFile)) }
            }
        }
        frames.sort { $0.frame < $1.frame }
        // Sub-header and notes blob in the blocks after the main header.
        let subLen = 104
        let blob = o.headerVersion >= 4 ? notes : []
        let subBlocks = (subLen + blob.count + 4095) / 4096
        let bitmapOff = (1 + subBlocks) * 4096
        let descOff = bitmapOff + 2 * bitmapBytes
        var out = [UInt8](repeating: 0, count: descOff)
        out.replaceSubrange(0..<8, with: Array("KDUMP   ".utf8))
        out.replaceSubrange(8..<12, with: le(UInt64(UInt32(bitPattern: o.headerVersion)), 4))
        let uts = ["Linux", "dom0", "6.1.0-56-amd64", "#1 SMP", "x86_64", "(none)"]
        for (i, f) in uts.enumerated() { out.replaceSubrange(12 + 65 * i..<12 + 65 * i + f.utf8.count, with: Array(f.utf8)) }
        out.replaceSubrange(424..<428, with: le(UInt64(o.compression.flag), 4))
        out.replaceSubrange(428..<432, with: le(4096, 4))
        out.replaceSubrange(432..<436, with: le(UInt64(subBlocks), 4))
        out.replaceSubrange(436..<440, with: le(UInt64(2 * bitmapBytes / 4096), 4))
        out.replaceSubrange(440..<444, with: le(min(maxMapnr, 0xffff_ffff), 4))
        out.replaceSubrange(460..<464, with: le(1, 4))                                  // nr_cpus
        let s = 4096
        if o.split { out.replaceSubrange(s + 12..<s + 16, with: le(1, 4)) }
        out.replaceSubrange(s + 16..<s + 24, with: le(0, 8)); out.replaceSubrange(s + 24..<s + 32, with: le(min(maxMapnr, 0xffff_ffff), 8))
        if o.headerVersion >= 4 && !blob.isEmpty {
            let at = s + subLen
            out.replaceSubrange(at..<at + blob.count, with: blob)
            out.replaceSubrange(s + 48..<s + 56, with: le(UInt64(at), 8)); out.replaceSubrange(s + 56..<s + 64, with: le(UInt64(blob.count), 8))
            // offset_vmcoreinfo (v3+): the VMCOREINFO note's descriptor inside the blob.
            var pos = 0
            while pos + 12 <= blob.count {
                let nsz = Int(u32(blob, pos)), dsz = Int(u32(blob, pos + 4))
                if nsz == 0 && dsz == 0 { break }
                let name = String(decoding: blob[(pos + 12)..<(pos + 12 + max(0, nsz - 1))], as: UTF8.self)
                let descAt = pos + 12 + (nsz + 3) / 4 * 4
                if name == "VMCOREINFO" {
                    out.replaceSubrange(s + 32..<s + 40, with: le(UInt64(at + descAt), 8)); out.replaceSubrange(s + 40..<s + 48, with: le(UInt64(dsz), 8))
                }
                pos = descAt + (dsz + 3) / 4 * 4
            }
        }
        if o.headerVersion >= 6 {
            out.replaceSubrange(s + 80..<s + 88, with: le(0, 8)); out.replaceSubrange(s + 88..<s + 96, with: le(maxMapnr, 8))
            out.replaceSubrange(s + 96..<s + 104, with: le(maxMapnr, 8))
        }
        out.replaceSubrange(bitmapOff..<bitmapOff + bitmapBytes, with: present)
        out.replaceSubrange(bitmapOff + bitmapBytes..<descOff, with: dumpable)
        // Descriptors, then data; all zero pages share one descriptor (as makedumpfile's pd_zero).
        var descs = [UInt8](); descs.reserveCapacity(frames.count * 24)
        var data = [UInt8]()
        let dataOff = UInt64(descOff + frames.count * 24)
        let zeroPage = [UInt8](repeating: 0, count: 4096)
        var zeroDesc: [UInt8]? = nil
        var lzoWork = [UInt8](repeating: 0, count: Int(p2m_lzo1x_1_mem_compress()))
        for (_, fo) in frames {
            let page = fo.map { o in Int(o) + 4096 <= input.count ? [UInt8](input[Int(o)..<Int(o) + 4096]) : zeroPage } ?? zeroPage
            if page == zeroPage, let z = zeroDesc { descs += z; continue }
            let (bytes, flag) = try compress(page, o.compression, &lzoWork)
            let d = le(dataOff + UInt64(data.count), 8) + le(UInt64(bytes.count), 4) + le(UInt64(flag), 4) + le(0, 8)
            if page == zeroPage { zeroDesc = d }
            descs += d
            data += bytes
        }
        out += descs + data
        if o.eraseinfo && o.headerVersion >= 5 {
            let e = Array("erase init_task.comm\n".utf8)
            out.replaceSubrange(s + 64..<s + 72, with: le(UInt64(out.count), 8)); out.replaceSubrange(s + 72..<s + 80, with: le(UInt64(e.count), 8))
            out += e
        }
        try Data(out).write(to: URL(fileURLWithPath: dst))
    }

    static func u32(_ b: [UInt8], _ o: Int) -> UInt32 { UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24 }

    /// One page compressed as makedumpfile does; stored raw when compression does not help.
    static func compress(_ page: [UInt8], _ c: KdumpCompression, _ lzoWork: inout [UInt8]) throws -> ([UInt8], UInt32) {
        var out = [UInt8](repeating: 0, count: 8192)
        var n = 0
        switch c {
        case .none: return (page, 0)
        case .zlib:
            var len = uLongf(out.count)
            guard compress2(&out, &len, page, uLong(page.count), 1) == Z_OK else { throw GenError.parameter("zlib failed") }
            n = Int(len)
        case .lzo:
            var len = lzo_uint(out.count)
            guard lzo1x_1_compress(page, lzo_uint(page.count), &out, &len, &lzoWork) == LZO_E_OK else { throw GenError.parameter("lzo failed") }
            n = Int(len)
        case .snappy:
            var len = out.count
            let rc = page.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { o in
                i.baseAddress!.withMemoryRebound(to: CChar.self, capacity: i.count) { ip in
                    o.baseAddress!.withMemoryRebound(to: CChar.self, capacity: o.count) { op in snappy_compress(ip, i.count, op, &len) } } } }
            guard rc == SNAPPY_OK else { throw GenError.parameter("snappy failed") }
            n = len
        case .zstd:
            let r = ZSTD_compress(&out, out.count, page, page.count, 1)
            guard ZSTD_isError(r) == 0 else { throw GenError.parameter("zstd failed") }
            n = r
        }
        return n < page.count ? (Array(out[0..<n]), c.flag) : (page, 0)
    }

    /// The flattened form (-F) of any file: the 4096-byte header, then {offset, size} records
    /// (big-endian) of at most `record` bytes each, then the end marker.
    public static func flatten(_ src: String, to dst: String, record: Int = 1 << 16) throws {
        let b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: src)))
        func be(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64($0))) } }
        var out = Array("makedumpfile".utf8) + [UInt8](repeating: 0, count: 4) + be(1) + be(1)
        out += [UInt8](repeating: 0, count: 4096 - out.count)
        for o in stride(from: 0, to: b.count, by: record) {
            let n = min(record, b.count - o)
            out += be(UInt64(o)) + be(UInt64(n)) + b[o..<o + n]
        }
        out += be(.max) + be(.max)
        try Data(out).write(to: URL(fileURLWithPath: dst))
    }
}
