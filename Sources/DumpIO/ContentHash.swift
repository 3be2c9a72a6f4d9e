// A hash of what a dump holds of memory, independent of where the bytes sit in the file:
// XXH64 over (machine address, bytes) of every non-zero 4 KiB page of every PT_LOAD in
// address order (xl dump-core: of .xen_pages and .xen_p2m). Holes of sparse files are
// skipped with seekData/seekHole, so a 256 GiB sparse dump hashes in the time its data takes.
import Foundation
import P2MFormat

public enum ContentHash {
    /// Any container: ELF and xl files by their data; a kdump-compressed file by every stored
    /// page's decompressed bytes with its frame number.
    public static func of(path: String) throws -> UInt64 {
        let f = try OpenFile(path: path)
        if case .kdumpCompressed = DumpSniffer.identify(try f.read(offset: 0, count: Int(min(f.size, 64)))) {
            let k = try KdumpCompressed(file: f)
            var h = XXH64()
            try k.forEachStoredPage { frame, page in h.update(word: frame); h.update(page) }
            return h.finalize()
        }
        return try of(DumpFile.open(path: path))
    }

    public static func of(_ d: DumpFile) throws -> UInt64 {
        let fd = open(d.path, O_RDONLY)
        guard fd >= 0 else { throw DumpError(d.path, "cannot open") }
        defer { close(fd) }
        var h = XXH64()
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        func hashRange(fileOffset: UInt64, length: UInt64, address: UInt64) throws {
            var pos = fileOffset
            let end = fileOffset + length
            while pos < end {
                let data = lseek(fd, off_t(pos), seekData)
                if data < 0 || UInt64(data) >= end { break }
                let hole = min(UInt64(max(lseek(fd, off_t(data), seekHole), 0)), end)
                var p = UInt64(data) & ~PageGeometry.x86.mask < fileOffset ? UInt64(data) : UInt64(data) & ~PageGeometry.x86.mask
                p = max(p, fileOffset)
                while p < hole {
                    let n = Int(min(UInt64(buf.count), hole - p))
                    try buf.withUnsafeMutableBytes { try DumpFile.preadInto(fd, d.path, offset: p, UnsafeMutableRawBufferPointer(rebasing: $0[0..<n])) }
                    var i = 0
                    while i < n {
                        let m = min(4096, n - i)
                        if buf[i..<i + m].contains(where: { $0 != 0 }) {
                            h.update(word: address + (p - fileOffset) + UInt64(i))
                            buf.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[i..<i + m])) }
                        }
                        i += m
                    }
                    p += UInt64(n)
                }
                pos = max(hole, pos + 1)
            }
        }
        switch d.kind {
        case .kdumpELF:
            for l in d.loads { try hashRange(fileOffset: l.offset, length: l.filesz, address: l.paddr) }
        case .xenDumpCore:
            for name in [".xen_pages", ".xen_p2m"] {
                if let s = d.section(named: name) { try hashRange(fileOffset: s.offset, length: s.size, address: 0) }
            }
        case .kdumpCompressed:
            throw DumpError(d.path, "content hash of a kdump-compressed file: not supported yet")
        }
        return h.finalize()
    }
}

/// lseek whence values of Linux (not exported without _GNU_SOURCE).
public let seekData: Int32 = 3
public let seekHole: Int32 = 4
