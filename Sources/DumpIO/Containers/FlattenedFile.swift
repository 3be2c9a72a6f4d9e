// makedumpfile's flattened format (-F): a 4096-byte header ("makedumpfile", type 1, version 1,
// big-endian int64s), then records {int64 offset, int64 size} (big-endian), each followed by its
// data, ended by offset = size = −1. Applied in order the records rebuild a kdump-compressed
// file; reading a flattened file *is* reading that file. The records are indexed once at open
// (O(records) memory, never O(dump)); where two overlap the later wins, as `makedumpfile -R`
// and libkdumpfile's flatmap do. Bytes no record wrote read as zeros (the holes -R leaves).
import Foundation

/// Bytes at offsets: a plain file, or the file a flattened stream describes.
public protocol ByteSource: AnyObject {
    var path: String { get }
    var size: UInt64 { get }
    func read(offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws
}

extension ByteSource {
    public func read(offset: UInt64, count: Int) throws -> [UInt8] {
        guard count >= 0 else { throw DumpError(path, offset: offset, "negative read size") }
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try read(offset: offset, into: $0) }
        return out
    }
}

extension OpenFile: ByteSource {}

public final class FlattenedFile: ByteSource {
    public let file: OpenFile
    public var path: String { file.path }
    /// The size of the rebuilt file.
    public let size: UInt64
    /// Non-overlapping pieces of the rebuilt file, sorted: (offset, length, file offset of the data).
    private var pieces: [(off: UInt64, len: UInt64, at: UInt64)] = []
    public var recordCount = 0

    public init(_ f: OpenFile) throws {
        file = f
        func fail(_ o: UInt64, _ m: String) -> DumpError { DumpError(f.path, offset: o, "flattened: " + m) }
        guard f.size >= 4096 else { throw fail(0, "file of \(f.size) bytes is shorter than the 4096-byte header") }
        let h = try f.read(offset: 0, count: 32)
        func be(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 << 8 | UInt64(b[o + $1]) } }
        guard h[0..<12].elementsEqual(Array("makedumpfile".utf8)) else { throw fail(0, "no \"makedumpfile\" signature") }
        guard be(h, 16) == 1 else { throw fail(16, "type \(Int64(bitPattern: be(h, 16))), expected 1") }
        guard be(h, 24) == 1 else { throw fail(24, "version \(Int64(bitPattern: be(h, 24))), expected 1") }
        var pos: UInt64 = 4096
        var recs: [(off: UInt64, len: UInt64, at: UInt64)] = []
        var end: UInt64 = 0
        while true {
            guard pos <= f.size, f.size - pos >= 16 else { throw fail(pos, "the stream ends without its end marker (truncated)") }
            let r = try f.read(offset: pos, count: 16)
            let off = be(r, 0), len = be(r, 8)
            if off == .max && len == .max { break }
            guard Int64(bitPattern: off) >= 0 else { throw fail(pos, "record with negative offset \(Int64(bitPattern: off))") }
            guard Int64(bitPattern: len) > 0 else { throw fail(pos + 8, "record of size \(Int64(bitPattern: len)) (makedumpfile -R refuses it too)") }
            guard len <= f.size - pos - 16 else { throw fail(pos + 8, "record of \(len) bytes runs past the end of the file") }
            let (e, o) = off.addingReportingOverflow(len)
            guard !o, e <= 1 << 56 else { throw fail(pos, "record [0x\(String(off, radix: 16)), +\(len)) past 2^56") }
            recs.append((off, len, pos + 16))
            end = max(end, e)
            pos += 16 + len
        }
        recordCount = recs.count
        size = end
        pieces = FlattenedFile.resolve(recs)
    }

    /// Later records win, as `makedumpfile -R` writes them in stream order. Records that overlap
    /// nothing (the usual case) go straight through; otherwise one sweep over the records'
    /// boundaries, with a heap of the records that cover the sweep point (the latest in the
    /// stream on top), gives each stretch its winner: O(n log n) however the records overlap.
    /// (Painting each record over the pieces so far was O(n²): a hostile 384 KB stream of 20,000
    /// chained 3-byte records took 34 s to open, a 1 GB one would never have.)
    static func resolve(_ recs: [(off: UInt64, len: UInt64, at: UInt64)]) -> [(off: UInt64, len: UInt64, at: UInt64)] {
        let order = recs.indices.sorted { recs[$0].off < recs[$1].off || (recs[$0].off == recs[$1].off && $0 < $1) }
        var overlaps = false
        for i in order.indices.dropFirst() where recs[order[i]].off < recs[order[i - 1]].off + recs[order[i - 1]].len {
            overlaps = true; break
        }
        guard overlaps else { return order.map { recs[$0] } }
        var bounds = recs.flatMap { [$0.off, $0.off + $0.len] }
        bounds.sort()
        var heap = MaxHeap()
        var next = 0
        var out: [(off: UInt64, len: UInt64, at: UInt64)] = []
        var i = 0
        while i + 1 < bounds.count {
            let x = bounds[i], y = bounds[i + 1]
            i += 1
            guard y > x else { continue }
            while next < order.count, recs[order[next]].off <= x { heap.push(order[next]); next += 1 }
            // Records that ended at or before x leave when they reach the top.
            while let t = heap.top, recs[t].off + recs[t].len <= x { heap.pop() }
            guard let w = heap.top else { continue }            // a hole no record wrote
            let at = recs[w].at + (x - recs[w].off)
            if let l = out.last, l.off + l.len == x, l.at + l.len == at { out[out.count - 1].len += y - x }
            else { out.append((x, y - x, at)) }
        }
        return out
    }

    /// A binary max-heap of record indices: the latest record in the stream on top.
    private struct MaxHeap {
        private var a: [Int] = []
        var top: Int? { a.first }
        mutating func push(_ v: Int) {
            a.append(v)
            var c = a.count - 1
            while c > 0, a[(c - 1) / 2] < a[c] { a.swapAt(c, (c - 1) / 2); c = (c - 1) / 2 }
        }
        mutating func pop() {
            a.swapAt(0, a.count - 1); a.removeLast()
            var p = 0
            while true {
                let l = 2 * p + 1, r = l + 1
                var m = p
                if l < a.count, a[l] > a[m] { m = l }
                if r < a.count, a[r] > a[m] { m = r }
                guard m != p else { return }
                a.swapAt(p, m); p = m
            }
        }
    }

    /// Write the kdump-compressed file the records describe (what `makedumpfile -R` does):
    /// each piece at its offset, holes left as holes, then the size; fsynced. `dest` must not
    /// exist. O(pieces) memory, 1 MiB at a time.
    public func restore(to dest: String) throws {
        let fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DumpError(dest, "cannot create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        for p in pieces {
            var done: UInt64 = 0
            while done < p.len {
                let n = Int(min(UInt64(buf.count), p.len - done))
                try buf.withUnsafeMutableBytes { try file.read(offset: p.at + done, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n])) }
                try buf.withUnsafeBytes { b in
                    var w = 0
                    while w < n {
                        let r = pwrite(fd, b.baseAddress! + w, n - w, off_t(p.off + done) + off_t(w))
                        if r < 0 && errno == EINTR { continue }
                        guard r > 0 else { throw DumpError(dest, offset: p.off + done + UInt64(w), "write failed: \(String(cString: strerror(errno)))") }
                        w += r
                    }
                }
                done += UInt64(n)
            }
        }
        guard ftruncate(fd, off_t(size)) == 0, fsync(fd) == 0 else { throw DumpError(dest, "cannot set the size or sync: \(String(cString: strerror(errno)))") }
    }

    public func read(offset: UInt64, into buf: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        while done < buf.count {
            let a = offset + UInt64(done)
            var lo = 0, hi = pieces.count - 1, hit = -1
            while lo <= hi { let m = (lo + hi) / 2; if pieces[m].off <= a { hit = m; lo = m + 1 } else { hi = m - 1 } }
            let dst = UnsafeMutableRawBufferPointer(rebasing: buf[done...])
            if hit >= 0, a < pieces[hit].off + pieces[hit].len {
                let p = pieces[hit]
                let n = Int(min(UInt64(dst.count), p.off + p.len - a))
                try file.read(offset: p.at + (a - p.off), into: UnsafeMutableRawBufferPointer(rebasing: dst[0..<n]))
                done += n
            } else {
                // A hole: zeros up to the next piece.
                let next = hit + 1 < pieces.count ? pieces[hit + 1].off : UInt64.max
                let n = Int(min(UInt64(dst.count), next - a))
                UnsafeMutableRawBufferPointer(rebasing: dst[0..<n]).initializeMemory(as: UInt8.self, repeating: 0)
                done += n
            }
        }
    }
}
