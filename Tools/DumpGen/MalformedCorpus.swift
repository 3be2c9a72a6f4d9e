// The malformed-dump corpus: small generated dumps of every container, each broken in one
// way a crashed machine, a failing disk or a hostile file can break it, with what every tool must
// say about it. Written by `p2m-gendump malformed -o DIR` (DIR/cases.json lists them); the Swift
// tests run p2m-emit, p2m-inject and p2m-analyze on each, the Python tests the library.
//
// `expect`: words the error must contain (written here from what is wrong with the file, not
// from what the reader prints); `fail`: the tools that must refuse it (the others may succeed:
// a broken p2m note does not stop emit, which reads the dump's own tables).
import Foundation
import P2MFormat

public struct MalformedCase: Codable, Sendable {
    public var name: String
    public var file: String
    public var what: String
    public var expect: [String]
    public var fail: [String]
    /// Whether the error must name a file offset ("offset 0x…").
    public var offset: Bool
    /// The p2m-analyze command to run (default `info`).
    public var analyze: [String] = ["info"]
    /// For damaged page data: the machine address whose read must fail (analyze `rd -m`, the library).
    public var readMachine: UInt64? = nil
    /// Tools that may succeed but must say what is wrong on stderr.
    public var warn: [String] = []
}

public enum MalformedCorpus {
    static let all = ["emit", "inject", "analyze", "library"]

    public static func write(to dir: String) throws -> [MalformedCase] {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tmp = dir + "/.bases"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        // Bases: small (only the frames that hold something).
        var d = Dom0DumpOptions(); d.guestMiB = 96; d.machineMiB = 256; d.seed = 7; d.onlyWrittenPages = true; d.dom0VMCoreInfo = true
        let g = try DumpGenerator.generateDom0(d, to: tmp + "/dom0.vmcore")
        try FileManager.default.copyItem(atPath: g.systemMapPath, toPath: dir + "/guest.System.map")
        let elf = [UInt8](try Data(contentsOf: URL(fileURLWithPath: g.path)))
        var x = XLDumpOptions(); x.guestMiB = 96; x.seed = 7; x.onlyWrittenPages = true
        let xg = try DumpGenerator.generateXL(x, to: tmp + "/domU.xcore")
        let xl = [UInt8](try Data(contentsOf: URL(fileURLWithPath: xg.path)))
        var ko = KdumpWriteOptions(); ko.excludeZeroPages = true
        try KdumpWriter.write(fromELF: g.path, to: tmp + "/k", ko)
        let kd = [UInt8](try Data(contentsOf: URL(fileURLWithPath: tmp + "/k")))
        try KdumpWriter.flatten(tmp + "/k", to: tmp + "/f")
        let flat = [UInt8](try Data(contentsOf: URL(fileURLWithPath: tmp + "/f")))

        var cases: [MalformedCase] = []
        // Every refusal names an offset unless the case says otherwise.
        func add(_ name: String, _ bytes: [UInt8], _ what: String, _ expect: [String], fail: [String] = all, offset: Bool = true,
                 readMachine: UInt64? = nil, warn: [String] = []) throws {
            let f = name + ".dump"
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + f))
            var c = MalformedCase(name: name, file: f, what: what, expect: expect, fail: fail, offset: offset)
            if let m = readMachine { c.readMachine = m; c.analyze = ["rd", "-m", "0x" + String(m, radix: 16), "2"] }
            c.warn = warn
            cases.append(c)
        }
        func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
        func set(_ b: [UInt8], _ at: Int, _ v: UInt64, _ n: Int) -> [UInt8] { var c = b; c.replaceSubrange(at..<at + n, with: le(v, n)); return c }
        // The flattened format's records are big-endian.
        func be(_ b: [UInt8], _ at: Int, _ v: UInt64) -> [UInt8] { var c = b; c.replaceSubrange(at..<at + 8, with: le(v.byteSwapped, 8)); return c }
        func rd(_ b: [UInt8], _ at: Int, _ n: Int) -> UInt64 { (0..<n).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) } }

        // --- ELF vmcore ---
        let phoff = Int(rd(elf, 0x20, 8)), phnum = Int(rd(elf, 0x38, 2))
        func ph(_ i: Int) -> Int { phoff + 56 * i }
        let notesOff = Int(rd(elf, ph(0) + 8, 8)), notesSize = Int(rd(elf, ph(0) + 32, 8))
        let load1 = ph(1)
        try add("elf-empty", [], "an empty file", ["empty"])
        try add("elf-10-bytes", Array(elf[0..<10]), "an ELF cut after 10 bytes", ["10 bytes", "ELF header"])
        try add("elf-bad-magic", set(elf, 0, 0x46454c7f ^ 0xff, 4), "the ELF magic damaged", ["not", "dump"])
        try add("elf-class32", set(elf, 4, 1, 1), "EI_CLASS says 32-bit", ["64-bit"])
        try add("elf-big-endian", set(elf, 5, 2, 1), "EI_DATA says big-endian", ["little-endian"])
        try add("elf-type-exec", set(elf, 0x10, 2, 2), "e_type ET_EXEC, not a core", ["ET_CORE"])
        try add("elf-machine-i386", set(elf, 0x12, 3, 2), "e_machine i386", ["x86_64"])
        try add("elf-phoff-past-end", set(elf, 0x20, UInt64(elf.count) + 4096, 8), "e_phoff beyond the end of the file", ["program header", "past the end"])
        try add("elf-phoff-1", set(elf, 0x20, 1, 8), "e_phoff 1: the table overlaps the ELF header", ["e_phoff"])
        try add("elf-phnum-ffff", set(elf, 0x38, 0xffff, 2), "e_phnum 0xffff", ["program header"])
        try add("elf-phnum-60000", set(elf, 0x38, 60000, 2), "e_phnum 60000", ["program header"])
        try add("elf-phentsize-32", set(elf, 0x36, 32, 2), "e_phentsize 32", ["e_phentsize"])
        try add("elf-phnum-0", set(elf, 0x38, 0, 2), "no program headers at all", ["program headers"])
        try add("elf-note-past-end", set(elf, ph(0) + 8, UInt64(elf.count) - 8, 8), "PT_NOTE's data beyond the end of the file", ["PT_NOTE", "past the end"])
        try add("elf-note-huge", set(elf, ph(0) + 32, 1 << 40, 8), "PT_NOTE of 1 TiB", ["PT_NOTE"])
        try add("elf-note-odd-size", set(elf, ph(0) + 32, UInt64(notesSize - 3), 8), "PT_NOTE's size cuts the last note", ["note"])
        // What inject wrote into and then could not find (it now refuses before writing, and
        // undoes every write when a check after writing fails): emit and analyze read these.
        // The last note's header zeroed (the notes before it, crash registers among them, still
        // read, so emit works and inject gets as far as the layout): the notes end early.
        var lastNote = notesOff, at = notesOff
        while at + 12 <= notesOff + notesSize {
            lastNote = at
            at += 12 + Int((rd(elf, at, 4) + 3) & ~3) + Int((rd(elf, at + 4, 4) + 3) & ~3)
        }
        let zeroLast = set(set(set(elf, lastNote, 0, 4), lastNote + 4, 0, 4), lastNote + 8, 0, 4)
        try add("elf-note-zero-last-header", zeroLast, "the last note header all zero: the notes end before PT_NOTE does", ["zero note header"], fail: ["inject"])
        try add("elf-note-zero-last-header-appended", zeroLast + [UInt8](repeating: 0x5a, count: 4096),
                "the same with 4 KiB of data appended after the last PT_LOAD", ["zero note header"], fail: ["inject"])
        try add("elf-note-odd-size-overrun", set(elf, ph(0) + 32, UInt64(notesSize + 1), 8), "PT_NOTE one byte longer than its notes (odd size)", ["PT_NOTE", "multiple of 4"], fail: ["inject"])
        // Notes overrunning PT_NOTE, PT_NOTE over other bytes, segments of no size or crossing
        // the notes: every tool reads or refuses, none traps or hangs; inject changes nothing
        // when it refuses. (fail: [] where the tools may read what is left.)
        let name0 = Int((rd(elf, notesOff, 4) + 3) & ~3)
        try add("elf-note-first-desc-overruns-4", set(elf, notesOff + 4, UInt64(notesSize - 12 - name0 + 4), 4), "the first note's descsz overruns PT_NOTE by 4 bytes", ["note", "overruns"])
        try add("elf-note-first-namesz-overruns", set(elf, notesOff, UInt64(notesSize), 4), "the first note's namesz as large as PT_NOTE", ["note"])
        let lastName = Int((rd(elf, lastNote, 4) + 3) & ~3)
        try add("elf-note-last-desc-overruns", set(elf, lastNote + 4, UInt64(notesOff + notesSize - lastNote - 12 - lastName + 8), 4), "the last note's descsz overruns PT_NOTE by 8 bytes", ["note", "overruns"])
        try add("elf-note-size-0", set(set(elf, ph(0) + 32, 0, 8), ph(0) + 40, 0, 8), "PT_NOTE of no bytes (no notes at all)", [], fail: [])
        try add("elf-note-odd-size-plus-5", set(elf, ph(0) + 32, UInt64(notesSize + 5), 8), "PT_NOTE 5 bytes longer than its notes", ["multiple of 4"], fail: ["inject"])
        let firstLoadOff = Int(rd(elf, load1 + 8, 8))
        try add("elf-note-over-load-data", set(elf, ph(0) + 8, UInt64(firstLoadOff), 8), "PT_NOTE's offset moved onto the first PT_LOAD's data", [], fail: [])
        try add("elf-load-filesz-0", set(elf, load1 + 32, 0, 8), "a PT_LOAD with memory but no file bytes (p_filesz 0)", [], fail: [])
        try add("elf-load-memsz-below-filesz", set(elf, load1 + 40, rd(elf, load1 + 32, 8) / 2, 8), "a PT_LOAD whose p_memsz is half its p_filesz", [], fail: [])
        try add("elf-load-offset-in-notes", set(elf, load1 + 8, UInt64(notesOff), 8), "a PT_LOAD whose data starts inside PT_NOTE", [], fail: [])
        try add("elf-second-pt-note", set(elf, ph(1), 4, 4), "the first PT_LOAD's header turned into a second PT_NOTE", [], fail: [])
        try add("elf-phnum-1", set(elf, 0x38, 1, 2), "PT_NOTE only: no PT_LOAD", [], fail: [])
        try add("elf-truncated-in-notes", Array(elf[0..<(notesOff + notesSize / 2)]), "cut inside the notes", [], fail: [])
        try add("elf-header-only", Array(elf[0..<64]), "the ELF header alone", [], fail: [])
        try add("elf-note-namesz-huge", set(elf, notesOff, 0x7fff_ffff, 4), "the first note's namesz 2^31", ["note"])
        try add("elf-note-descsz-huge", set(elf, notesOff + 4, 0xffff_fff0, 4), "the first note's descsz overruns PT_NOTE", ["note"])
        try add("elf-load-past-end", set(elf, load1 + 8, UInt64(elf.count) + (1 << 20), 8), "a PT_LOAD's data beyond the end of the file", ["PT_LOAD", "truncated"])
        try add("elf-load-offset-wraps", set(elf, load1 + 8, .max - 100, 8), "a PT_LOAD offset + size wraps past 2^64", ["PT_LOAD"])
        try add("elf-load-paddr-wraps", set(elf, load1 + 24, .max - 4095, 8), "a PT_LOAD machine range wraps past 2^64", ["wraps"])
        try add("elf-load-empty", set(set(elf, load1 + 32, 0, 8), load1 + 40, 0, 8), "a PT_LOAD of no bytes (p_filesz = p_memsz = 0)", ["PT_LOAD", "empty"])
        if phnum >= 3 {
            try add("elf-loads-overlap", set(elf, ph(2) + 24, rd(elf, load1 + 24, 8), 8), "two PT_LOADs at the same machine address", ["overlaps"])
            try add("elf-loads-same-file-bytes", set(elf, ph(2) + 8, rd(elf, load1 + 8, 8), 8), "two PT_LOADs over the same file bytes", ["PT_LOAD"], fail: ["inject"])
        }
        try add("elf-truncated-half", Array(elf[0..<(elf.count / 2)]), "an ELF vmcore cut in half (a full disk)", ["truncated"])
        try add("elf-truncated-in-headers", Array(elf[0..<(phoff + 56 * phnum - 20)]), "cut inside the program headers", ["program header", "past the end"])
        // --- xl dump-core (section headers only) ---
        let shoff = Int(rd(xl, 0x28, 8)), shnum = Int(rd(xl, 0x3c, 2)), shstrndx = Int(rd(xl, 0x3e, 2))
        func sh(_ i: Int) -> Int { shoff + 64 * i }
        let strOff = Int(rd(xl, sh(shstrndx) + 24, 8))
        func secName(_ i: Int) -> String {
            let o = strOff + Int(rd(xl, sh(i), 4))
            return String(decoding: xl[o...].prefix { $0 != 0 }, as: UTF8.self)
        }
        let names = (0..<shnum).map(secName)
        guard let p2mIdx = names.firstIndex(of: ".xen_p2m"), let pagesIdx = names.firstIndex(of: ".xen_pages") else { throw GenError.parameter("xl base without .xen_p2m/.xen_pages") }
        let p2mOff = Int(rd(xl, sh(p2mIdx) + 24, 8)), p2mSize = rd(xl, sh(p2mIdx) + 32, 8)
        try add("xl-shoff-past-end", set(xl, 0x28, UInt64(xl.count) + 64, 8), "e_shoff beyond the end of the file", ["section header"])
        try add("xl-shnum-0", set(xl, 0x3c, 0, 2), "no section headers", ["section"])
        try add("xl-shstrndx-out-of-range", set(xl, 0x3e, 999, 2), "e_shstrndx names no section", ["e_shstrndx"])
        try add("xl-shstrndx-nobits", set(set(xl, sh(shstrndx) + 4, 8, 4), sh(shstrndx) + 24, 1 << 63, 8), "the section-name table is SHT_NOBITS at offset 2^63", ["section"])
        try add("xl-p2m-size-odd", set(xl, sh(p2mIdx) + 32, p2mSize - 8, 8), ".xen_p2m not a multiple of 16 bytes", [".xen_p2m", "16"])
        try add("xl-p2m-half", set(xl, sh(p2mIdx) + 32, p2mSize / 2, 8), ".xen_p2m lists half the pages .xen_pages holds", [".xen_p2m"])
        try add("xl-p2m-past-end", set(xl, sh(p2mIdx) + 24, UInt64(xl.count), 8), ".xen_p2m beyond the end of the file", [".xen_p2m"])
        var noPages = xl
        let nameAt = strOff + Int(rd(xl, sh(pagesIdx), 4))
        noPages.replaceSubrange(nameAt..<nameAt + 10, with: Array(".xen_pagez".utf8))
        try add("xl-no-pages", noPages, "no .xen_pages section (renamed)", [".xen_pages"])
        var twoP2M = xl
        let other = names.firstIndex(of: ".xen_shared_info") ?? names.firstIndex(of: ".xen_prstatus") ?? 1
        twoP2M.replaceSubrange(sh(other)..<sh(other) + 4, with: Array(xl[sh(p2mIdx)..<sh(p2mIdx) + 4]))
        try add("xl-two-p2m", twoP2M, "two sections named .xen_p2m", [".xen_p2m"])
        var invalid = xl
        for k in 0..<3 { invalid.replaceSubrange((p2mOff + 16 * k + 8)..<(p2mOff + 16 * k + 16), with: le(.max, 8)) }
        try add("xl-p2m-mfn-all-ones", invalid, "three .xen_p2m pairs with mfn ~0 (key + count overflowed once)", [".xen_p2m"], fail: ["inject"], offset: false)  // a disagreement of two tables: named by pfn, both values shown
        var dup = xl
        dup.replaceSubrange((p2mOff + 16)..<(p2mOff + 24), with: Array(xl[p2mOff..<p2mOff + 8]))
        try add("xl-p2m-pfn-twice", dup, "a pfn listed twice in .xen_p2m", ["twice"])
        var unsorted = xl
        unsorted.replaceSubrange((p2mOff)..<(p2mOff + 8), with: Array(xl[(p2mOff + 32)..<(p2mOff + 40)]))
        try add("xl-p2m-unsorted", unsorted, ".xen_p2m out of pfn order", ["pfn order"])
        try add("xl-section-name-garbage", set(xl, sh(1), 0xffff_fff0, 4), "a section name offset beyond the name table", ["section"])
        try add("xl-truncated-half", Array(xl[0..<(xl.count / 2)]), "an xl dump-core cut in half", ["section"])
        let pagesShdr = sh(pagesIdx)
        try add("xl-pages-size-0", set(xl, pagesShdr + 32, 0, 8), ".xen_pages of no bytes", [], fail: [])
        try add("xl-pages-offset-wraps", set(xl, pagesShdr + 24, .max - 4095, 8), ".xen_pages at an offset that wraps past 2^64", [], fail: [])
        try add("xl-p2m-size-0", set(xl, sh(p2mIdx) + 32, 0, 8), ".xen_p2m of no bytes", [], fail: [])
        try add("xl-shentsize-32", set(xl, 0x3a, 32, 2), "e_shentsize 32", [], fail: [])
        if let noteIdx = names.firstIndex(of: ".note.Xen") {
            let o = Int(rd(xl, sh(noteIdx) + 24, 8)), n = Int(rd(xl, sh(noteIdx) + 32, 8))
            var z = xl; if o + n <= z.count { z.replaceSubrange(o..<o + n, with: [UInt8](repeating: 0, count: n)) }
            try add("xl-note-xen-zeroed", z, ".note.Xen all zero (no header note)", [], fail: [])
        }
        if let prIdx = names.firstIndex(of: ".xen_prstatus") {
            try add("xl-prstatus-size-0", set(xl, sh(prIdx) + 32, 0, 8), ".xen_prstatus of no bytes (no vCPU context)", [], fail: [])
        }
        if let siIdx = names.firstIndex(of: ".xen_shared_info") {
            try add("xl-shared-info-past-end", set(xl, sh(siIdx) + 24, UInt64(xl.count) + 8192, 8), ".xen_shared_info beyond the end of the file", [], fail: [])
        }
        try add("xl-truncated-in-p2m", Array(xl[0..<(p2mOff + Int(p2mSize) / 2)]), "cut inside .xen_p2m", [], fail: [])
        // --- kdump-compressed ---
        let bs = Int(rd(kd, 428, 4))
        try add("kdump-100-bytes", Array(kd[0..<100]), "a kdump-compressed header cut at 100 bytes", ["100 bytes"])
        try add("kdump-header-version-99", set(kd, 8, 99, 4), "header_version 99", ["header_version 99"])
        try add("kdump-header-version-0", set(kd, 8, 0, 4), "header_version 0", ["header_version 0"])
        try add("kdump-block-size-0", set(kd, 428, 0, 4), "block_size 0", ["block_size"])
        try add("kdump-block-size-3000", set(kd, 428, 3000, 4), "block_size 3000 (not a page size)", ["block_size"])
        try add("kdump-sub-hdr-huge", set(kd, 432, 0x7fff_ffff, 4), "sub_hdr_size 2^31 blocks", ["sub_hdr_size"])
        try add("kdump-bitmap-blocks-0", set(kd, 436, 0, 4), "bitmap_blocks 0", ["bitmap"])
        try add("kdump-bitmap-blocks-huge", set(kd, 436, 0x7fff_ffff, 4), "bitmap_blocks far beyond the file", ["bitmap"])
        try add("kdump-truncated-in-bitmap", Array(kd[0..<(bs * 3 + 100)]), "cut inside the bitmaps", ["truncated"])
        try add("kdump-split", set(kd, bs + 12, 1, 4), "one part of a --split dump", ["--reassemble"])
        try add("kdump-offset-note-past-end", set(kd, bs + 48, UInt64(kd.count) + 4096, 8), "offset_note beyond the end of the file", ["offset_note"])
        try add("kdump-size-note-huge", set(kd, bs + 56, 1 << 40, 8), "size_note 1 TiB", ["size_note"])
        try add("kdump-max-mapnr-huge", set(kd, bs + 96, 1 << 52, 8), "max_mapnr_64 2^52", ["max_mapnr"])
        // The page descriptor of the frame every reader needs first: the guest's top page table.
        let subBlocks = Int(rd(kd, 432, 4)), bitmapBlocks = Int(rd(kd, 436, 4))
        let dumpable = (1 + subBlocks) * bs + bitmapBlocks * bs / 2
        let root = g.manifest.cr3 >> 12
        var below = 0
        for f in 0..<Int(root) where kd[dumpable + f / 8] >> UInt8(f % 8) & 1 == 1 { below += 1 }
        let desc0 = (1 + subBlocks + bitmapBlocks) * bs + 24 * below
        try add("kdump-desc-past-end", set(kd, desc0, UInt64(kd.count) + 4096, 8), "a page descriptor pointing past the end of the file", ["page descriptor"], fail: ["analyze", "library"], readMachine: g.manifest.cr3, warn: ["emit"])
        try add("kdump-desc-size-0", set(kd, desc0 + 8, 0, 4), "a page descriptor of 0 bytes", ["page descriptor", "0 bytes"], fail: ["analyze", "library"], readMachine: g.manifest.cr3, warn: ["emit"])
        try add("kdump-desc-bomb", set(kd, desc0 + 8, 1 << 30, 4), "a page descriptor of 1 GiB (a decompression bomb)", ["page descriptor", "more than two pages"], fail: ["analyze", "library"], readMachine: g.manifest.cr3, warn: ["emit"])
        try add("kdump-desc-flags-unknown", set(kd, desc0 + 12, 0x40, 4), "an unknown compression flag", ["page flags"], fail: ["analyze", "library"], readMachine: g.manifest.cr3, warn: ["emit"])
        let page0 = Int(rd(kd, desc0, 8))
        try add("kdump-zlib-garbage", set(kd, page0, 0xdead_beef_dead_beef, 8), "a zlib page that does not decompress", ["decompress"], fail: ["analyze", "library"], readMachine: g.manifest.cr3, warn: ["emit"])
        try add("kdump-truncated-in-data", Array(kd[0..<(desc0 + (kd.count - desc0) / 2)]), "cut inside the page data", ["truncated"], fail: ["emit", "inject"])
        // Truncated and damaged bitmaps, descriptors pointing at the header.
        let firstBitmap = (1 + subBlocks) * bs
        try add("kdump-truncated-in-first-bitmap", Array(kd[0..<(firstBitmap + bitmapBlocks * bs / 4)]), "cut inside the first (valid-pages) bitmap", [], fail: [])
        try add("kdump-truncated-in-second-bitmap", Array(kd[0..<(dumpable + bitmapBlocks * bs / 4)]), "cut inside the second (dumpable-pages) bitmap", [], fail: [])
        var allOnes = kd
        allOnes.replaceSubrange(dumpable..<(dumpable + bitmapBlocks * bs / 2), with: [UInt8](repeating: 0xff, count: bitmapBlocks * bs / 2))
        try add("kdump-dumpable-bitmap-all-ones", allOnes, "every page claimed dumpable: the descriptors no longer line up", [], fail: [])
        var allZero = kd
        allZero.replaceSubrange(dumpable..<(dumpable + bitmapBlocks * bs / 2), with: [UInt8](repeating: 0, count: bitmapBlocks * bs / 2))
        try add("kdump-dumpable-bitmap-all-zero", allZero, "no page dumpable", [], fail: [])
        try add("kdump-desc-offset-0", set(kd, desc0, 0, 8), "a page descriptor pointing at the file's header", [], fail: [])
        try add("kdump-sub-hdr-size-0", set(kd, 432, 0, 4), "sub_hdr_size 0", [], fail: [])
        // --- flattened ---
        try add("flat-version-2", be(flat, 24, 2), "flattened header version 2", ["version"])
        try add("flat-record-size-0", be(flat, 4096 + 8, 0), "a record of size 0", ["size 0"])
        try add("flat-record-negative-offset", be(flat, 4096, UInt64(bitPattern: -4096)), "a record at a negative offset", ["negative"])
        try add("flat-record-huge", be(flat, 4096 + 8, 1 << 62), "a record of 2^62 bytes", ["record"])
        try add("flat-no-end-marker", Array(flat[0..<(flat.count - 16)]), "a stream cut before its end marker", ["end marker"])
        try add("flat-truncated-header", Array(flat[0..<2000]), "cut inside the 4096-byte header", ["flattened"])
        try add("flat-record-offset-2-63", be(flat, 4096, 1 << 63), "a record at offset 2^63", [], fail: [])
        try add("flat-record-end-past-2-63", be(be(flat, 4096, (1 << 63) - 100), 4096 + 8, 4096), "a record running past offset 2^63", [], fail: [])
        try add("flat-record-size-past-stream", be(flat, 4096 + 8, UInt64(flat.count)), "a record longer than the rest of the stream", [], fail: [])
        try add("flat-record-over-header", be(flat, 4096, 0), "the first record written over the kdump header at offset 0", [], fail: [])
        // --- not dumps ---
        try add("zeros-4k", [UInt8](repeating: 0, count: 4096), "4 KiB of zeros", [], fail: [])
        try add("xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] + [UInt8](repeating: 0x33, count: 300), "an xz file", [], fail: [])
        try add("gzip", [0x1f, 0x8b, 8, 0] + [UInt8](repeating: 0x55, count: 200), "a gzip file (a compressed dump not unpacked)", ["gzip"])
        var rng = SplitMix64(seed: 99)
        try add("random-bytes", (0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, "4 KiB of random bytes", ["not", "dump"])
        try add("a-note-file", Array(elf[notesOff..<(notesOff + min(notesSize, 512))]), "a bare note file given as a dump", ["not", "dump"])
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(cases).write(to: URL(fileURLWithPath: dir + "/cases.json"))
        return cases
    }
}
