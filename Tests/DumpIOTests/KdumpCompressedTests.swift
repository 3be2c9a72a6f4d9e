import CZlib
import DumpIO
import Foundation
import P2MFormat
import Testing
import TestSupport

/// A small kdump-compressed file laid out as makedumpfile's diskdump_mod.h says: frames 0x10
/// (raw), 0x11 (zlib), 0x13 present in RAM but excluded; everything else absent.
func smallKdump(version: Int32 = 6, split: Int32 = 0) -> [UInt8] {
    func put(_ b: inout [UInt8], _ o: Int, _ v: UInt64, _ n: Int) { for i in 0..<n { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
    var f = [UInt8](repeating: 0, count: 4096 * 3)
    f.replaceSubrange(0..<8, with: Array("KDUMP   ".utf8))
    put(&f, 8, UInt64(UInt32(bitPattern: version)), 4)
    put(&f, 424, 1, 4)                   // status: zlib
    put(&f, 428, 4096, 4)                // block_size
    put(&f, 432, 1, 4)                   // sub_hdr_size (blocks)
    put(&f, 436, 2, 4)                   // bitmap_blocks: two bitmaps of one block
    put(&f, 440, 0x40, 4)                // max_mapnr
    let sub = 4096
    put(&f, sub + 12, UInt64(UInt32(bitPattern: split)), 4)
    put(&f, sub + 96, 0x40, 8)           // max_mapnr_64
    // Bitmaps at (1 + 1) blocks: present 0x10, 0x11, 0x13; dumpable 0x10, 0x11.
    f += [UInt8](repeating: 0, count: 4096 * 2)
    let b1 = 2 * 4096, b2 = 3 * 4096       // each bitmap is bitmap_blocks / 2 blocks
    f[b1 + 2] = 0b1011; f[b2 + 2] = 0b0011
    let descs = 4 * 4096
    let raw = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7) }
    var zsrc = (0..<4096).map { UInt8(truncatingIfNeeded: $0 / 16) }
    var zlen = uLongf(8192)
    var z = [UInt8](repeating: 0, count: 8192)
    _ = compress(&z, &zlen, &zsrc, uLong(4096))
    z = Array(z[0..<Int(zlen)])
    let data = f.count                      // page data right after the descriptor block
    put(&f, descs, UInt64(data), 8); put(&f, descs + 8, 4096, 4); put(&f, descs + 12, 0, 4)
    put(&f, descs + 24, UInt64(data + 4096), 8); put(&f, descs + 32, UInt64(z.count), 4); put(&f, descs + 36, 1, 4)
    return f + raw + z
}

/// The flattened form (-F) of a file: records of `chunk` bytes, plus optional extra records.
func flattened(_ file: [UInt8], chunk: Int = 1000, extra: [(UInt64, [UInt8])] = [], sizeOverride: Int64? = nil, offsetOverride: Int64? = nil) -> [UInt8] {
    func be(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64($0))) } }
    var out = Array("makedumpfile".utf8) + [UInt8](repeating: 0, count: 4) + be(1) + be(1)
    out += [UInt8](repeating: 0, count: 4096 - out.count)
    var first = true
    for o in stride(from: 0, to: file.count, by: chunk) {
        let d = Array(file[o..<min(file.count, o + chunk)])
        let off = first ? (offsetOverride.map { UInt64(bitPattern: $0) } ?? UInt64(o)) : UInt64(o)
        let len = first ? (sizeOverride.map { UInt64(bitPattern: $0) } ?? UInt64(d.count)) : UInt64(d.count)
        out += be(off) + be(len) + d
        first = false
    }
    for (o, d) in extra { out += be(o) + be(UInt64(d.count)) + d }
    return out + be(.max) + be(.max)
}

@Suite struct KdumpCompressedTests {
    @Test func flattenedReadsAsTheFileItDescribesAndLaterRecordsWin() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let k = smallKdump()
        // A later record rewrites bytes 5–7 of frame 0x10's raw page (page data at 5·4096).
        let pageAt = 5 * 4096
        try Data(flattened(k, extra: [(UInt64(pageAt + 5), [1, 2, 3])])).write(to: URL(fileURLWithPath: d + "/f"))
        let f = try openDump(path: d + "/f")
        #expect(f.layoutDescription.hasPrefix("flattened"))
        #expect(try f.memory.readBytes(MachAddr(rawValue: 0x10 << 12 | 4), count: 5) == [28, 1, 2, 3, 56])
        #expect(try f.memory.readBytes(MachAddr(rawValue: 0x11 << 12 | 0x100), count: 2) == [16, 16])
        // Bad records: size 0, a negative offset, no end marker.
        for (name, bytes, what) in [("zero", flattened(k, sizeOverride: 0), "size 0"),
                                    ("negative", flattened(k, offsetOverride: -4096), "negative offset"),
                                    ("cut", Array(flattened(k).dropLast(16)), "end marker")] {
            try Data(bytes).write(to: URL(fileURLWithPath: d + "/" + name))
            do { _ = try openDump(path: d + "/" + name); Issue.record("\(name) opened") } catch {
                #expect("\(error)".contains(what), "\(name): \(error)")
            }
        }
    }

    /// Overlapping records: the bytes read are those of the records painted in stream order
    /// (an independent byte-by-byte oracle), and makedumpfile -R, the format's own reader,
    /// rebuilds the same file. A chain of 20,000 overlapping 3-byte records (34 s to open when
    /// records were painted one over another) opens and reads the same.
    @Test func overlappingRecordsReadAsMakedumpfileRestoresThem() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        func stream(_ recs: [(UInt64, [UInt8])]) -> [UInt8] { flattened([], extra: recs) }    // only these records
        func painted(_ recs: [(UInt64, [UInt8])]) -> [UInt8] {
            var img = [UInt8](repeating: 0, count: Int(recs.map { $0.0 + UInt64($0.1.count) }.max() ?? 0))
            for (o, b) in recs { img.replaceSubrange(Int(o)..<Int(o) + b.count, with: b) }
            return img
        }
        func readAll(_ path: String) throws -> [UInt8] {
            let f = try FlattenedFile(try OpenFile(path: path))
            return try f.read(offset: 0, count: Int(f.size))
        }
        var rng = SystemRandomNumberGenerator()
        for round in 0..<200 {
            var recs: [(UInt64, [UInt8])] = []
            for _ in 0..<Int.random(in: 1...40, using: &rng) {
                let n = Int.random(in: 1...64, using: &rng)
                recs.append((UInt64.random(in: 0...300, using: &rng), (0..<n).map { _ in UInt8.random(in: 1...255, using: &rng) }))
            }
            try Data(stream(recs)).write(to: URL(fileURLWithPath: d + "/r.flat"))
            let got = try readAll(d + "/r.flat"), want = painted(recs)
            #expect(got == want, "round \(round): \(recs.map { ($0.0, $0.1.count) })")
            if got != want { break }
        }
        let chain = (0..<20_000).map { (UInt64(2 * $0), [UInt8(truncatingIfNeeded: $0), 0xAA, UInt8(truncatingIfNeeded: $0 >> 8)]) }
        try Data(stream(chain)).write(to: URL(fileURLWithPath: d + "/chain.flat"))
        #expect(try readAll(d + "/chain.flat") == painted(chain))
        // makedumpfile -R as the peer, on the chain and the last random stream.
        let mdf = "/usr/bin/makedumpfile"
        requireTool(mdf)
        for name in ["chain.flat", "r.flat"] {
            let r = try runTool(["/bin/sh", "-c", "\(mdf) -R '\(d)/\(name).out' < '\(d)/\(name)'"])
            #expect(r.status == 0, "makedumpfile -R \(name): \(r.stderr)")
            let restored = [UInt8](try Data(contentsOf: URL(fileURLWithPath: d + "/" + name + ".out")))
            #expect(restored == (try readAll(d + "/" + name)), "\(name): makedumpfile -R rebuilds other bytes")
        }
    }

    @Test func readsRawAndZlibPagesAndNamesExcludedOnes() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let p = d + "/k"
        try Data(smallKdump()).write(to: URL(fileURLWithPath: p))
        let k = try openDump(path: p)
        #expect(k.kind == .kdumpCompressed)
        #expect(try k.memory.readBytes(MachAddr(rawValue: 0x10 << 12 | 5), count: 3) == [35, 42, 49])
        #expect(try k.memory.readBytes(MachAddr(rawValue: 0x11 << 12 | 0x100), count: 2) == [16, 16])
        do { _ = try k.memory.readU64(MachAddr(rawValue: 0x13 << 12)); Issue.record("excluded page read") } catch {
            #expect("\(error)".contains("excluded by makedumpfile's dump level"), "\(error)")
        }
        do { _ = try k.memory.readU64(MachAddr(rawValue: 0x12 << 12)); Issue.record("absent page read") } catch {
            #expect("\(error)".contains("not in the dump"), "\(error)")
        }
        // Memory kept after its container is gone: an error, not a use-after-free.
        let orphan = try openDump(path: p).memory
        #expect(throws: DumpError.self) { _ = try orphan.readU64(MachAddr(rawValue: 0x10 << 12)) }
        try Data(smallKdump(split: 1)).write(to: URL(fileURLWithPath: p))
        do { _ = try openDump(path: p); Issue.record("split dump opened") } catch { #expect("\(error)".contains("--reassemble"), "\(error)") }
        try Data(smallKdump(version: 7)).write(to: URL(fileURLWithPath: p))
        do { _ = try openDump(path: p); Issue.record("version 7 opened") } catch { #expect("\(error)".contains("header_version 7"), "\(error)") }
    }

    /// Thousands of corrupted files: typed errors, never a trap.
    @Test func corruptedFilesNeverTrap() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let good = smallKdump()
        var rng = SystemRandomNumberGenerator()
        var refused = 0, opened = 0
        let p = d + "/m"
        for _ in 0..<3000 {
            var m = good
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                // Mostly the headers, bitmaps and descriptors; sometimes the data.
                let i = Bool.random(using: &rng) ? Int.random(in: 0..<(5 * 4096 + 48), using: &rng) : Int.random(in: 0..<m.count, using: &rng)
                m[i] = UInt8.random(in: 0...255, using: &rng)
            }
            if Int.random(in: 0..<10, using: &rng) == 0 { m = Array(m.prefix(Int.random(in: 0..<m.count, using: &rng))) }
            try Data(m).write(to: URL(fileURLWithPath: p))
            do {
                let k = try openDump(path: p)
                for f in [0x10, 0x11, 0x12, 0x13, 0x3f] as [UInt64] { _ = try? k.memory.readU64(MachAddr(rawValue: f << 12)) }
                opened += 1
            } catch is DumpError { refused += 1 }
        }
        #expect(refused > 0 && opened > 0, "refused \(refused), opened \(opened)")
    }
}

@Suite struct KdumpInjectTests {
    /// Add, replace, remove on a kdump-compressed file; the pages never change; an
    /// interruption at every step leaves the file byte-identical.
    @Test func injectReplaceRemoveAndInterruptions() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let p = d + "/k"
        var base = smallKdump()
        // A notes blob as makedumpfile writes it: a VMCOREINFO note right after the sub-header.
        func le(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
        let info = Array("OSRELEASE=6.1.0-test\nPAGESIZE=4096\n".utf8)
        var vm = [UInt8](repeating: 0, count: 12 + 12 + (info.count + 3) / 4 * 4)
        vm.replaceSubrange(0..<4, with: [11, 0, 0, 0]); vm.replaceSubrange(4..<8, with: le(UInt64(info.count)).prefix(4))
        vm.replaceSubrange(12..<22, with: Array("VMCOREINFO".utf8)); vm.replaceSubrange(24..<24 + info.count, with: info)
        let notesAt = 4096 + 104
        base.replaceSubrange(notesAt..<notesAt + vm.count, with: vm)
        base.replaceSubrange(4096 + 32..<4096 + 64, with: le(UInt64(notesAt + 24)) + le(UInt64(info.count)) + le(UInt64(notesAt)) + le(UInt64(vm.count)))
        try Data(base).write(to: URL(fileURLWithPath: p))
        let pagesBefore = try ContentHash.of(path: p)
        let note = try P2MEncoder(width: .eight).appendingForTest([0x10, 0x11]).finish(metadata: .init(source: .rawTable)).elfNoteBytes
        for step in ["write-blob", "switch"] {
            let inj = NoteInjector(path: p)
            inj.failpoint = { if $0 == step { throw DumpError(p, "simulated failure at \(step)") } }
            #expect(throws: DumpError.self) { _ = try inj.run(action: .add, note: note) }
            #expect(try Data(contentsOf: URL(fileURLWithPath: p)) == Data(base), "\(step): the dump changed")
            #expect(!FileManager.default.fileExists(atPath: p + ".p2minject.journal"))
        }
        _ = try NoteInjector(path: p).run(action: .add, note: note)
        var k = try openDump(path: p)
        #expect(try k.p2mNote() != nil && k.vmcoreInfo?.osRelease == "6.1.0-test", "VMCOREINFO follows the notes")
        #expect(try ContentHash.of(path: p) == pagesBefore)
        _ = try NoteInjector(path: p).run(action: .replace, note: note)
        _ = try NoteInjector(path: p).run(action: .remove, note: nil)
        k = try openDump(path: p)
        #expect(try k.p2mNote() == nil && k.vmcoreInfo?.osRelease == "6.1.0-test")
        #expect(try ContentHash.of(path: p) == pagesBefore)
    }
}

extension P2MEncoder {
    func appendingForTest(_ e: [UInt64]) throws -> P2MEncoder { try append(entries: e); return self }
}
