// p2m-bench: the speed and size figures the issues ask for, measured against the named
// anchors (lz4 -1, zstd -19, cat, cp, a crash-style m2p scan) in the same run.
// Run with `swift run -c release p2m-bench all` (make bench). Not part of the tests.
import ArgumentParser
import DumpGen
import DumpIO
import Foundation
import GuestReader
import P2MFormat
import P2MTools
import Translation

struct P2MBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "p2m-bench", abstract: "p2mnote benchmarks.",
        subcommands: [All.self, FormatBench.self, EmitBench.self, InjectBench.self, AnalyzeBench.self, SymbolsBench.self, KdumpBench.self, KdumpReadBench.self, HostBench.self])
}

// MARK: helpers

func now() -> Double { Date().timeIntervalSince1970 }
func time<T>(_ body: () throws -> T) rethrows -> (T, Double) { let t = now(); let r = try body(); return (r, now() - t) }
@discardableResult
func sh(_ cmd: String) -> (Int32, Double, String) {
    let p = Process(); p.executableURL = URL(fileURLWithPath: "/bin/sh"); p.arguments = ["-c", cmd]
    let out = Pipe(); p.standardOutput = out; p.standardError = FileHandle.nullDevice   // `2>&1` inside cmd to keep stderr
    let t = now(); try? p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, now() - t, String(decoding: data, as: UTF8.self))
}
func fileSize(_ p: String) -> UInt64 { (try? FileManager.default.attributesOfItem(atPath: p)[.size] as? UInt64) ?? 0 }
func scratch() throws -> String {
    let d = NSTemporaryDirectory() + "p2m-bench-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}
func mb(_ b: Double) -> String { String(format: "%.1f", b / 1e6) }

struct All: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every benchmark.")
    func run() throws {
        try FormatBench().run(); try EmitBench().run(); try InjectBench().run(); try AnalyzeBench().run(); try SymbolsBench().run(); try KdumpBench().run(); try KdumpReadBench().run(); try HostBench().run()
    }
}

// MARK: format

struct FormatBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "format", abstract: "Note size vs raw/lz4/zstd; encode, decode and m2p speed.")
    func layout(_ p: LayoutProfile, guestGiB: UInt64, nrPfns: UInt64, seed: UInt64 = 1) throws -> P2MLayout {
        let pages = guestGiB << 18
        return try P2MLayout.generate(profile: p, guestPages: pages, nrPfns: nrPfns,
                                      free: [FrameRange(start: 0x100000, count: pages + pages / 2 + (1 << 20))], width: .eight, seed: seed)
    }

    func run() throws {
        let d = try scratch(); defer { try? FileManager.default.removeItem(atPath: d) }
        print("== note size (bytes) and encode speed; anchors measured on the same raw table in this run")
        print("layout        guest     pfns        raw          lz4 -1      zstd -19     note   raw/note  ≤zstd  encode GB/s  lz4 -1 GB/s")
        let cases: [(String, LayoutProfile, UInt64, UInt64)] = [
            ("dom0", .dom0, 4, 1 << 27), ("ballooned", .ballooned, 16, 1 << 27),
            ("fragmented", .fragmented, 64, 1 << 24), ("scattered", .scattered, 64, 1 << 24), ("random", .random, 1, 1 << 18)]
        for (name, prof, gib, n) in cases {
            let l = try layout(prof, guestGiB: gib, nrPfns: n)
            var raw = [UInt64](repeating: 0, count: Int(n))
            raw.withUnsafeMutableBufferPointer { l.fill(from: 0, into: $0) }
            let rawPath = d + "/\(name).raw"
            try raw.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: rawPath)) }
            // Encode from memory, best of 3.
            var best = Double.infinity
            var note: P2MNote? = nil
            for _ in 0..<3 {
                let (nt, dt) = try time { () -> P2MNote in
                    let e = P2MEncoder(width: .eight)
                    try raw.withUnsafeBufferPointer { try e.append(entries: $0) }
                    return try e.finish(metadata: .init(source: .rawTable))
                }
                best = min(best, dt); note = nt
            }
            sh("cat \(rawPath) > /dev/null")
            let (_, lzT, _) = sh("lz4 -1 -q -f \(rawPath) \(rawPath).lz4")
            let lz = fileSize(rawPath + ".lz4")
            let (_, _, _) = sh("zstd -19 -T2 -q -f \(rawPath) -o \(rawPath).zst")
            let zs = fileSize(rawPath + ".zst")
            let noteBytes = note!.elfNoteBytes.count
            let rawBytes = Double(n * 8)
            print(String(format: "%-12@ %4llu GiB  %-10llu %-12.0f %-11llu %-12llu %-6d %9.0f  %@  %8.2f  %10.2f",
                         name as NSString, gib, n, rawBytes, lz, zs, noteBytes, rawBytes / Double(noteBytes),
                         (UInt64(noteBytes) <= zs ? "yes" : "NO ") as NSString, rawBytes / best / 1e9, rawBytes / lzT / 1e9))
            if prof == .random { print(String(format: "              random: note / raw = %.4f (target ≤ 1.01 + 256 B)", Double(noteBytes) / rawBytes)) }
            try? FileManager.default.removeItem(atPath: rawPath)
        }
        // A 1 TiB fragmented guest: decode to lookups, and m2p speed.
        print("== 1 TiB fragmented guest (2^28 pfns)")
        let (big, genT) = try time { try layout(.fragmented, guestGiB: 1024, nrPfns: 1 << 28, seed: 3) }
        let e = P2MEncoder(width: .eight)
        var buf = [UInt64](repeating: 0, count: 1 << 20)
        var p: UInt64 = 0
        let (_, encT) = try time {
            while p < big.nrPfns {
                buf.withUnsafeMutableBufferPointer { big.fill(from: p, into: $0) }
                try buf.withUnsafeBufferPointer { try e.append(entries: $0) }
                p += UInt64(buf.count)
            }
        }
        let note = try e.finish(metadata: .init(source: .rawTable))
        let (dec, decT) = try time { try P2MNote.decode(descriptor: note.descriptor) }
        print(String(format: "layout generated in %.2f s; encoded 2 GiB of raw table in %.2f s (%.2f GB/s); note %d bytes, %llu records",
                     genT, encT, Double(1 << 31) / encT / 1e9, note.elfNoteBytes.count, note.header.nrRecords))
        print(String(format: "decode to lookups: %.3f s (target < 1 s)", decT))
        // m2p: random mfns that are in use.
        var rng = SplitMix64(seed: 9)
        let probes: [UInt64] = (0..<(1 << 16)).map { _ in big.entry(at: rng.below(big.nrPfns / 2)).raw }.filter { $0 != .max }
        var hits = 0
        let lookups = 10_000_000
        let (_, m2pT) = time {
            for i in 0..<lookups { if case .unique = dec.map.m2p(MFN(rawValue: probes[i & (probes.count - 1)])) { hits += 1 } }
        }
        print(String(format: "m2p: %d lookups in %.2f s = %.1f M/s (target ≥ 10 M/s), %d unique hits", lookups, m2pT, Double(lookups) / m2pT / 1e6, hits))
    }
}

// MARK: emit

struct EmitBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "emit", abstract: "Emit from a 64 GiB dom0 dump vs cat of its p2m pages; peak memory.")
    @Option var guestGib: UInt64 = 64
    func run() throws {
        let d = try scratch(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = Dom0DumpOptions(); o.guestMiB = guestGib << 10
        let (g, genT) = try time { try DumpGenerator.generateDom0(o, to: d + "/dom0.vmcore") }
        print("== emit from a \(guestGib) GiB dom0 dump (generated in \(String(format: "%.1f", genT)) s, \(mb(Double(fileSize(g.path)))) MB apparent)")
        // The list pages' bytes, gathered into one file, for the cat anchor.
        let dump = try openDump(path: g.path)
        let mem = dump.memory
        let view = try GuestKernel(dump: dump, symbols: try SymbolTable.systemMap(path: g.systemMapPath), walker: PageTableWalker(memory: mem))
        let (va, size) = try view.linearList()
        let pages = (size * 8 + 4095) / 4096
        let fh = FileManager.default.createFile(atPath: d + "/list.bin", contents: nil) ? FileHandle(forWritingAtPath: d + "/list.bin") : nil
        var page = [UInt8](repeating: 0, count: 4096)
        let shared = try view.sharedFrames()
        var real: UInt64 = 0
        for k in 0..<pages {
            // Only the list's own pages: the shared missing/identity pages are one frame each.
            if k % 512 == 0, let pt = try? view.walker.frame(for: va.rawValue + k * 4096, atLevel: 2, root: view.root, form: .x86_64),
               pt == shared.missingPte { continue }
            guard let m = try? view.pageTables.translate(KVAddr(rawValue: va.rawValue + k * 4096)),
                  m.mfn() != shared.missing, m.mfn() != shared.identity else { continue }
            try page.withUnsafeMutableBytes { try mem.read(m, into: $0) }
            fh?.write(Data(page))
            real += 1
        }
        try fh?.close()
        sh("cat \(d)/list.bin > /dev/null; cat \(g.path) > /dev/null 2>&1 &")
        var catBest = Double.infinity
        for _ in 0..<3 { catBest = min(catBest, sh("cat \(d)/list.bin > /dev/null").1) }
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("p2m-emit").path
        var best = Double.infinity
        for _ in 0..<3 { best = min(best, sh("\(bin) \(g.path) --system-map \(g.systemMapPath) -o \(d)/n --no-compare > /dev/null").1) }
        // Peak RSS of the emitter process alone (GNU time's %M, KiB), with the cross-check on.
        let rss = Double(sh("/usr/bin/time -f %M \(bin) \(g.path) --system-map \(g.systemMapPath) -o \(d)/n2 2>&1 >/dev/null | tail -1").2
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        print(String(format: "list: %llu pages, %llu of them the list's own (%.0f MiB); cat of those bytes %.3f s; p2m-emit (whole process, no cross-check) %.3f s = %.2f× cat (target ≤ 2×)",
                     pages, real, Double(real * 4096) / 1048576, catBest, best, best / catBest))
        print(String(format: "peak RSS of the emitter (with the cross-check): %.1f MiB (target < 64 MiB)", rss / 1024))
        let n = try P2MNote.decode(descriptor: P2MNote.descriptor(fromElfNote: [UInt8](FileManager.default.contents(atPath: d + "/n") ?? Data())))
        print("note: \(fileSize(d + "/n")) bytes for \(n.header.nrPfns) pfns (\(n.header.nrRecords) records); digest matches manifest: \(n.header.mapDigest == g.manifest.p2mDigest)")
    }
}

// MARK: inject

struct InjectBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inject", abstract: "Inject into 1 GiB and 256 GiB sparse dumps vs a full copy.")
    func run() throws {
        let d = try scratch(); defer { try? FileManager.default.removeItem(atPath: d) }
        print("== inject (in place) vs a full copy (cp --sparse=always), same run")
        print("machine    layout            inject s   bytes written   copy s")
        for machineGiB in [UInt64(1), 256] {
            for mdf in [false, true] {
                var o = Dom0DumpOptions(); o.guestMiB = 512; o.machineMiB = max(machineGiB << 10, 1024); o.makedumpfileELayout = mdf
                let g = try DumpGenerator.generateDom0(o, to: d + "/m\(machineGiB)-\(mdf).vmcore")
                var e = EmitOptions(input: g.path); e.guest.systemMap = g.systemMapPath; e.compare = false
                let note = try Emitter.emit(e).note.elfNoteBytes
                let (rep, t) = try time { try NoteInjector(path: g.path).run(action: .add, note: note) }
                let (_, cpT, _) = sh("cp --sparse=always \(g.path) \(g.path).copy")
                try? FileManager.default.removeItem(atPath: g.path + ".copy")
                print(String(format: "%4llu GiB   %-16@ %8.4f   %13llu   %6.3f", machineGiB, (mdf ? "makedumpfile -E" : "/proc/vmcore") as NSString, t, rep.bytesWritten, cpT))
                try? FileManager.default.removeItem(atPath: g.path)
            }
        }
    }
}

// MARK: analyze

struct AnalyzeBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "analyze", abstract: "Start-up on 256 GiB, m2p bytes vs a crash-style scan, vtop rate.")
    func run() throws {
        let d = try scratch(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = Dom0DumpOptions(); o.guestMiB = 4096; o.machineMiB = 256 << 10
        let g = try DumpGenerator.generateDom0(o, to: d + "/big.vmcore")
        var e = EmitOptions(input: g.path); e.guest.systemMap = g.systemMapPath
        _ = try NoteInjector(path: g.path).run(action: .add, note: try Emitter.emit(e).note.elfNoteBytes)
        print("== analyzer on a \(mb(Double(fileSize(g.path)))) MB (apparent) dump, 4 GiB dom0")
        var a = GuestOptions(dump: g.path); a.guest.systemMap = g.systemMapPath
        let (s, openT) = try time { () -> GuestSession in let s = try GuestSession(a); _ = try s.p2m(); return s }
        print(String(format: "start-up (open, notes, symbols, decode the note): %.3f s (target ≤ 0.2 s)", openT))
        // m2p: bytes read per cold lookup. Ours: none after the note; crash-style: scan p2m pages.
        let (map, src) = try s.p2m()
        let noteBytes = Double((src as? NoteSource)?.decoded.header.encodedSize ?? 0) + 160
        let dump = try openDump(path: g.path)
        let mem = dump.memory
        let view = try GuestKernel(dump: dump, symbols: s.symbols, walker: PageTableWalker(memory: mem))
        let (va, size) = try view.linearList()
        var rng = SplitMix64(seed: 4)
        let probes = (0..<64).map { _ in g.manifest.samples[Int(rng.below(UInt64(g.manifest.samples.count)))].mfn }
        var scanBytes: UInt64 = 0
        var cache: [(lo: UInt64, hi: UInt64)] = []      // crash keeps 512 ranges; cold lookups miss it
        for m in probes {
            if cache.contains(where: { m >= $0.lo && m <= $0.hi }) { continue }
            // crash's __xen_pvops_m2p_hyper: read p2m pages in order until the mfn shows up.
            var page: UInt64 = 0
            var found = false
            var buf = [UInt64](repeating: 0, count: 512)
            while page < (size * 8 + 4095) / 4096 && !found {
                let ma = try view.pageTables.translate(KVAddr(rawValue: va.rawValue + page * 4096))
                try buf.withUnsafeMutableBytes { try mem.read(ma, into: $0) }
                scanBytes += 4096
                if buf.contains(m) { found = true }
                page += 1
            }
            if cache.count == 512 { cache.removeFirst() }
            cache.append((m, m))
            expectTrue(map.m2p(MFN(rawValue: m)) != .none)
        }
        let perLookup = Double(scanBytes) / Double(probes.count)
        print(String(format: "m2p cold lookup: crash-style scan reads %.0f bytes on average; p2mnote reads 0 per lookup (%.0f bytes once, for the note): %.0f× fewer over %d lookups (target ≥ 1000×)",
                     perLookup, noteBytes, Double(scanBytes) / noteBytes, probes.count))
        // vtop: random mapped kernel addresses (direct map of RAM pages and module space).
        let mapped = g.manifest.samples.map(\.vaddr)
        let n = 1_000_000
        let addrs: [UInt64] = (0..<n).map { _ in
            rng.below(4) == 0 ? mapped[Int(rng.below(UInt64(mapped.count)))]
                : 0xffff_8880_0000_0000 + ((0x10000 + rng.below(0x40000)) << 12) + rng.below(4096)
        }
        let w = PageTableWalker(memory: mem)
        var ok = 0
        let (_, vT) = time { for va in addrs { if (try? w.translate(va, root: view.root, form: .x86_64)) != nil { ok += 1 } } }
        print(String(format: "vtop: %d translations in %.3f s = %.2f M/s (target ≥ 1 M/s); %d mapped; %d table pages read", n, vT, Double(n) / vT / 1e6, ok, w.tableReads))
        // rd: reading and rendering grow linearly with the count (it was quadratic: 65,536 words
        // never finished). Medians of 5, machine memory, text and JSON as the CLI makes them.
        func rdTime(_ words: Int, json: Bool) throws -> Double {
            var ts: [Double] = []
            for _ in 0..<5 {
                let (_, t) = try time { () -> Int in
                    let out = try s.execute(["rd", "-m", "0x100000", String(words)])
                    return json ? out.jsonData.count : out.text.utf8.count
                }
                ts.append(t)
            }
            return ts.sorted()[2]
        }
        for json in [false, true] {
            let small = try rdTime(4096, json: json), big = try rdTime(65536, json: json)
            print(String(format: "rd -m %@: 4,096 words %.3f s, 65,536 words %.3f s: %.1f× the time for 16× the words (target ≤ 20×)",
                         json ? "(JSON)" : "(text)", small, big, big / small))
        }
    }
}

struct KdumpBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kdump", abstract: "kdump-compressed files (zlib, zero pages excluded as makedumpfile -d 31 does): open time, random page reads, inject cost, by machine size.")
    @Option var machineGib: [UInt64] = [1, 256, 1024]
    func run() throws {
        let d = try scratch(); defer { try? FileManager.default.removeItem(atPath: d) }
        print("== kdump-compressed (zlib): open, 10,000 random stored-page reads, inject (same run)")
        print("machine   file MB   open ms (median of 7)   page reads/s   inject ms   bytes written")
        for gib in machineGib {
            var o = Dom0DumpOptions(); o.guestMiB = 512; o.machineMiB = max(gib << 10, 1024)
            let g = try DumpGenerator.generateDom0(o, to: d + "/m.vmcore")
            let kd = d + "/m.kdump"
            var ko = KdumpWriteOptions(); ko.excludeZeroPages = true
            try KdumpWriter.write(fromELF: g.path, to: kd, ko)
            try? FileManager.default.removeItem(atPath: g.path)
            var opens: [Double] = []
            for _ in 0..<7 { opens.append(try time { _ = try openDump(path: kd) }.1) }
            opens.sort()
            let k = try openDump(path: kd)
            var rng = SplitMix64(seed: 3)
            let frames = g.manifest.samples.map(\.mfn)
            var buf = [UInt8](repeating: 0, count: 4096)
            let (_, rt) = try time {
                for _ in 0..<10_000 {
                    let f = frames[Int(rng.below(UInt64(frames.count)))]   // stored frames only (zero pages are excluded)
                    try? buf.withUnsafeMutableBytes { try k.memory.read(MachAddr(rawValue: f << 12), into: $0) }
                }
            }
            var e = EmitOptions(input: kd); e.guest.systemMap = g.systemMapPath; e.compare = false
            let note = try Emitter.emit(e).note.elfNoteBytes
            let (rep, it) = try time { try NoteInjector(path: kd).run(action: .add, note: note) }
            print(String(format: "%4llu GiB  %8.1f   %10.3f             %10.0f     %7.3f     %llu", gib, Double(fileSize(kd)) / 1e6, opens[3] * 1000, 10_000 / rt, it * 1000, rep.bytesWritten))
            try? FileManager.default.removeItem(atPath: kd)
        }
    }
}

/// Random 4 KiB page reads: p2mnote's reader against libkdumpfile's own C API (kdump_read,
/// Tools/bench/c/libkdumpfile-read.c, built here with libkdumpfile-dev) on the same files and
/// the same frame sequence, in one run, per compression.
struct KdumpReadBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kdump-read", abstract: "Random page reads from zlib/LZO/zstd/snappy kdump-compressed files: p2mnote vs libkdumpfile's kdump_read (target: at least its rate).")
    @Option var reads = 20_000
    func run() throws {
        let d = try scratch(); defer { try? FileManager.default.removeItem(atPath: d) }
        let src = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("c/libkdumpfile-read.c").path
        let peer = d + "/libkdumpfile-read"
        let cc = Process(); cc.executableURL = URL(fileURLWithPath: "/bin/sh")
        cc.arguments = ["-c", "cc -O2 -o \(peer) \(src) $(pkg-config --cflags --libs libkdumpfile)"]
        try cc.run(); cc.waitUntilExit()
        guard cc.terminationStatus == 0 else { throw ValidationError("cannot build \(src): install libkdumpfile-dev (make deps)") }
        var o = Dom0DumpOptions(); o.guestMiB = 512; o.machineMiB = 1024
        let g = try DumpGenerator.generateDom0(o, to: d + "/m.vmcore")
        // Frames: uniform over the machine's RAM (most are the shared zero page, as in a -d 0
        // dump), and a third from the pages that hold data (the kernel's, decompressed for real).
        let elf = try openDump(path: g.path)
        var rng = SplitMix64(seed: 12)
        let segs = elf.memory.segments
        let data = g.manifest.samples.map(\.mfn)
        var frames: [UInt64] = []
        for i in 0..<reads {
            if i % 3 == 0 { frames.append(data[Int(rng.below(UInt64(data.count)))] &+ rng.below(4)) }
            else { let s = segs[Int(rng.below(UInt64(segs.count)))]; frames.append((s.start >> 12) + rng.below(s.length >> 12)) }
        }
        let list = frames.map { String($0) }.joined(separator: "\n") + "\n"
        print("== kdump-compressed random page reads (\(reads) reads, 1 GiB machine, same frames): p2mnote vs libkdumpfile kdump_read")
        print("compression   p2mnote reads/s   libkdumpfile reads/s   ratio   same bytes")
        for c in [KdumpCompression.zlib, .lzo, .zstd, .snappy] {
            let kd = d + "/m.kdump-\(c.rawValue)"
            var ko = KdumpWriteOptions(); ko.compression = c
            try KdumpWriter.write(fromELF: g.path, to: kd, ko)
            // p2mnote: open, then the reads (the same checksum as the C program's).
            let k = try openDump(path: kd)
            var buf = [UInt8](repeating: 0, count: 4096)
            var sum: UInt64 = 0, failed = 0
            let (_, mine) = time {
                for f in frames {
                    do {
                        try buf.withUnsafeMutableBytes { try k.memory.read(MachAddr(rawValue: f << 12), into: $0) }
                        for i in stride(from: 0, to: 4096, by: 64) { sum &+= UInt64(buf[i]) &+ UInt64(i) &* UInt64(buf[i + 1]) }
                    } catch { failed += 1 }
                }
            }
            let p = Process(); p.executableURL = URL(fileURLWithPath: peer); p.arguments = [kd]
            let inp = Pipe(), out = Pipe(); p.standardInput = inp; p.standardOutput = out; p.standardError = out
            try p.run(); inp.fileHandleForWriting.write(Data(list.utf8)); try inp.fileHandleForWriting.close()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self); p.waitUntilExit()
            let w = text.split(separator: " ")
            if p.terminationStatus == 0, w.count >= 8, let secs = Double(w[5]), let theirSum = UInt64(w[7].trimmingCharacters(in: .whitespacesAndNewlines)), Int(w[3]) == 0 {
                let ours = Double(frames.count) / mine, theirs = Double(frames.count) / secs
                print(String(format: "%-12@  %15.0f   %20.0f   %5.2f   %@", c.rawValue, ours, theirs, ours / theirs, (theirSum == sum && failed == 0) ? "yes" : "NO (\(failed) failed)"))
            } else {
                print(String(format: "%-12@  %15.0f   %20@   %5@   -", c.rawValue, Double(frames.count) / mine, "cannot read: " + text.trimmingCharacters(in: .whitespacesAndNewlines).prefix(60), "-"))
            }
            try? FileManager.default.removeItem(atPath: kd)
        }
    }
}

struct SymbolsBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "symbols", abstract: "Load a real-size System.map (95,349 symbols, ~4 MB): target ≤ 30 ms.")
    @Option(help: "A real System.map to load instead of the generated one.") var systemMap: String?
    func run() throws {
        let d = try scratch(); defer { try? FileManager.default.removeItem(atPath: d) }
        var path = systemMap ?? ""
        if systemMap == nil {
            // The shape of Debian's 6.1 System.map: 95,349 lines, names of 3–60 characters.
            var rng = SplitMix64(seed: 9)
            var text = ""
            text.reserveCapacity(4 << 20)
            for i in 0..<95_349 {
                let len = 3 + Int(rng.below(40))
                let name = "s\(i)_" + String(repeating: "a", count: len)
                text += String(format: "%016llx %@ ", 0xffff_ffff_8100_0000 + UInt64(i) * 32, ["T", "t", "D", "d", "b", "r"][Int(rng.below(6))]) + name + "\n"
            }
            path = d + "/System.map"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        var times: [Double] = []
        var n = 0
        for _ in 0..<7 { let (t, dt) = try time { try SymbolTable.systemMap(path: path) }; n = t.count; times.append(dt) }
        times.sort()
        print(String(format: "== symbols: %d symbols from %@ (%d bytes): median %.1f ms (min %.1f, max %.1f) (target ≤ 30 ms)",
                     n, path, Int(fileSize(path)), times[3] * 1000, times[0] * 1000, times[6] * 1000))
    }
}

func expectTrue(_ b: Bool) { if !b { print("warning: a benchmark self-check failed") } }

P2MBench.main()

// MARK: host dumps

/// A generated crashed host (Xen 4.17's tables, several PV guests): `domains`, and rebuilding
/// every guest's map from the frame table and M2P, against reading those two tables with dd
/// (cat's read loop over the two byte ranges) in the same run, page cache warm for both.
struct HostBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "host", abstract: "Crashed-host dumps: domains, rebuild every guest's map vs reading the frame table and M2P, note sizes.")
    @Option var machineGib: UInt64 = 1024
    @Option(help: "Guests as ID:MIB:PROFILE, dom0 first.") var guest: [String] = ["0:4096:dom0", "1:65536:fragmented", "2:65536:scattered", "3:16384:ballooned", "4:8192:fragmented"]
    func run() throws {
        let d = try scratch(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = HostDumpOptions(); o.machineMiB = machineGib << 10
        o.guests = guest.map { g in let f = g.split(separator: ":"); return HostGuestSpec(domainID: UInt16(f[0])!, mib: UInt64(f[1])!, profile: LayoutProfile(rawValue: String(f[2]))!) }
        let (h, gt) = try time { try DumpGenerator.generateHost(o, to: d + "/host.vmcore") }
        print("== crashed host, \(machineGib) GiB machine, \(h.manifest.guests.count) PV guests (generated in \(String(format: "%.0f", gt)) s)")
        let elf = try DumpFile.open(path: h.path)
        func fileRange(_ mfn: UInt64, _ bytes: UInt64) -> (UInt64, UInt64) {
            let l = elf.loads.first { $0.paddr <= mfn << 12 && (mfn << 12) + bytes <= $0.paddr + $0.filesz }!
            return (l.offset + (mfn << 12) - l.paddr, bytes)
        }
        let ft = fileRange(h.manifest.frameTableMfn, h.manifest.maxPage * 32), m2p = fileRange(h.manifest.m2pMfn, h.manifest.maxPage * 8)
        let dd = "dd if='\(h.path)' bs=1M iflag=skip_bytes,count_bytes skip=\(ft.0) count=\(ft.1) of=/dev/null 2>/dev/null; dd if='\(h.path)' bs=1M iflag=skip_bytes,count_bytes skip=\(m2p.0) count=\(m2p.1) of=/dev/null 2>/dev/null"
        sh(dd)   // warm the page cache
        var cats: [Double] = [], rebuilds: [Double] = [], doms: [Double] = []
        var runs = 0
        for _ in 0..<3 {
            cats.append(sh(dd).1)
            rebuilds.append(try time {
                let host = try XenHost(dump: try openDump(path: h.path))
                let guests = try host.domains().filter { !$0.system }
                let m = try XenM2PSource.rebuild(host: host, domains: guests)
                runs = m.reduce(0) { $0 + $1.runs.count }
            }.1)
        }
        for _ in 0..<7 { doms.append(try time { _ = try XenHost(dump: try openDump(path: h.path)).domains() }.1) }
        cats.sort(); rebuilds.sort(); doms.sort()
        var ru = rusage(); getrusage(RUSAGE_SELF.rawValue, &ru)
        print(String(format: "frame table + M2P: %.2f GB; dd (cat) median %.2f s; rebuild every guest's map median %.2f s (%.2fx); %d runs in all; max RSS %.0f MB",
                     Double(ft.1 + m2p.1) / 1e9, cats[1], rebuilds[1], rebuilds[1] / cats[1], runs, Double(ru.ru_maxrss) / 1024))
        print(String(format: "domains: median %.2f ms (of 7)", doms[3] * 1000))
        print("guest   pages        raw table MB   note bytes   raw/note")
        var e = EmitOptions(input: h.path); e.compare = false
        for r in try Emitter.emitAllDomains(e) {
            let s = r.summary
            print(String(format: "dom%-4u %-12llu %10.1f   %10d   %8.0f", r.note.header.domainID, s.counts.mfn, Double(s.rawBytes) / 1e6, s.noteBytes, s.ratio))
        }
    }
}
