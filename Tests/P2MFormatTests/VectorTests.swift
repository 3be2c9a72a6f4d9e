import Foundation
import Testing
@testable import P2MFormat

/// Spec/vectors: each NAME.note (a complete ELF note) with NAME.json (its decoded form).
/// Set P2M_WRITE_VECTORS=1 to (re)write them from the definitions below.
struct VectorDef {
    let name: String
    let description: String
    let width: EntryWidth
    let entries: [UInt64]
    let meta: P2MNoteMetadata
    let frames: [MFN?]?
}

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let vectorsDir = repoRoot.appendingPathComponent("Spec/vectors")

func vectorDefs() -> [VectorDef] {
    var v: [VectorDef] = []
    var e: [UInt64] = [0x1000, 0x1001] + (2...4).map { UInt64($0) | P2MEntry.identityBit } + [0x2002, 0x2001, 0x2000, 0x77, 0x10]
    e += Array(repeating: .max, count: 14)
    v.append(VectorDef(name: "worked-example", description: "Spec §11: ASC, IDENTITY, DESC, LITERAL, INVALID", width: .eight, entries: e, meta: .init(source: .rawTable), frames: nil))
    // A 32-bit guest: 4-byte slots, flags at bits 31/30.
    var w4: [UInt64] = Array(0x3000..<0x3100) + Array(repeating: .max, count: 64)
    w4 += (0x140..<0x150).map { UInt64($0) | P2MEntry.identityBit } + [0x3FFF_FFFF, 5 | P2MEntry.foreignBit, 0x123]
    w4 += Array(repeating: .max, count: 1024 - w4.count)
    v.append(VectorDef(name: "guest32", description: "32-bit PV guest (entry_width 4): runs, identity, a foreign frame, the largest mfn", width: .four, entries: w4, meta: .init(source: .rawTable, domainID: 7), frames: nil))
    // dom0-like: chunks, 64-page chunks stepping down, identity hole, invalid tail.
    var d: [UInt64] = Array(0x19f..<0x19f + 0x9f)
    d += (0x9f..<0x100).map { UInt64($0) | P2MEntry.identityBit }
    d += Array(0x10000..<0x14000)
    for k in 0..<8 { d += (0..<64).map { 0x30000 - UInt64(k) * 0x40 + $0 } }
    d += (0..<16).map { 0x5000 - UInt64($0) }
    d += Array(repeating: .max, count: 512 * 64 - d.count)
    v.append(VectorDef(name: "dom0-like", description: "dom0-like: ascending chunks, 64-page chunks stepping down, a descending run, identity hole 0x9f-0xff, INVALID tail", width: .eight, entries: d, meta: .init(source: .linearList, domainID: 0, listVAddr: KVAddr(0xffffc90000000000), fllMFN: MFN(0x1da4), missingPageMFN: MFN(0x1d9f), identityPageMFN: MFN(0x1da0), identityKnown: true, crossChecked: true), frames: nil))
    // Foreign runs, repeats, a raw literal block.
    var f: [UInt64] = (0..<20).map { (0x8000 + $0) | P2MEntry.foreignBit } + (0..<5).map { (0x9000 - $0) | P2MEntry.foreignBit }
    f += Array(repeating: 0x4242, count: 30) + [0xdead_beef_0000, 0x1, 0x7777_0000_0000, 0x2, 0x3333_3333_3333]
    f += [(9 | P2MEntry.identityBit), 0xC000_0000_0000_0001]
    f += Array(repeating: .max, count: 3)
    v.append(VectorDef(name: "foreign-repeat-raw", description: "FOREIGN_ASC, FOREIGN_DESC, REPEAT, LITERAL_RAW, odd flag classes", width: .eight, entries: f, meta: .init(source: .textTable), frames: nil))
    // With a frames stream: 4 list pages.
    let fr: [UInt64] = Array(0x500..<0x700) + Array(repeating: .max, count: 2048 - 0x200)
    v.append(VectorDef(name: "with-frames", description: "a frames stream (FRAMES flag): list page index → backing mfn", width: .eight, entries: fr, meta: .init(source: .linearList, listVAddr: KVAddr(0xffffc90000000000), missingPageMFN: MFN(0x99), identityKnown: true), frames: [MFN(0x1234), MFN(0x99), MFN(0x99), MFN(0x99)]))
    return v
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

func decodedJSON(_ d: DecodedP2MNote, entries: [UInt64]?) -> [String: Any] {
    let h = d.header
    let canon = d.map.canonical()
    func recs(_ r: [DecodedRecord], _ lits: P2MMap) -> [[String: Any]] {
        r.map { rec in
            var o: [String: Any] = ["kind": rec.kind.description, "start": rec.start, "length": rec.length]
            if rec.kind != .invalid && rec.kind != .identity { o["first"] = hex(rec.first) }
            return o
        }
    }
    var j: [String: Any] = [
        "header": [
            "version_major": h.versionMajor, "version_minor": h.versionMinor, "header_size": h.headerSize,
            "flags": hex(UInt64(h.flags)), "page_shift": h.pageShift, "entry_width": h.entryWidth, "source": h.sourceCode,
            "domain_id": h.domainID, "nr_pfns": h.nrPfns, "count_mfn": h.counts.mfn, "count_invalid": h.counts.invalid,
            "count_identity": h.counts.identity, "count_foreign": h.counts.foreign, "nr_records": h.nrRecords,
            "encoded_size": h.encodedSize, "decoded_size": h.decodedSize, "map_stream_size": h.mapStreamSize,
            "map_digest": hex(h.mapDigest), "list_vaddr": hex(h.listVAddr), "fll_mfn": hex(h.fllMFN),
            "missing_page_mfn": hex(h.missingPageMFN), "identity_page_mfn": hex(h.identityPageMFN),
            "nr_list_frames": h.nrListFrames, "header_checksum": hex(h.headerChecksum),
        ] as [String: Any],
        "records": recs(d.records, d.map),
        "canonical_runs": canon.runs.map { ["start": $0.start, "length": $0.length, "first": hex($0.first), "step": $0.step == .max ? -1 : Int($0.step)] as [String: Any] },
    ]
    if !d.frameRecords.isEmpty { j["frame_records"] = recs(d.frameRecords, d.map) }
    if let e = entries, e.count <= 4096 { j["entries"] = e.map(hex) }
    return j
}

@Suite struct VectorTests {
    @Test func vectorsDecodeAndReencode() throws {
        let write = ProcessInfo.processInfo.environment["P2M_WRITE_VECTORS"] != nil
        for v in vectorDefs() {
            let enc = P2MEncoder(width: v.width)
            try enc.append(entries: v.entries)
            let note = try enc.finish(metadata: v.meta, listFrames: v.frames)
            let bytes = note.elfNoteBytes
            let notePath = vectorsDir.appendingPathComponent(v.name + ".note")
            let dec = try P2MNote.decode(descriptor: note.descriptor, keepRecords: true)
            var j = decodedJSON(dec, entries: v.entries)
            j["description"] = v.description
            let json = try JSONSerialization.data(withJSONObject: j, options: [.prettyPrinted, .sortedKeys])
            if write {
                try Data(bytes).write(to: notePath)
                try json.write(to: vectorsDir.appendingPathComponent(v.name + ".json"))
            }
            // The stored vector decodes to the stored JSON and re-encodes byte for byte.
            let stored = try #require(FileManager.default.contents(atPath: notePath.path), "missing vector \(v.name)")
            #expect([UInt8](stored) == bytes, "\(v.name): re-encoding differs from the stored vector")
            let sdec = try P2MNote.decode(descriptor: try P2MNote.descriptor(fromElfNote: [UInt8](stored)), keepRecords: true)
            let storedJSON = try #require(FileManager.default.contents(atPath: vectorsDir.appendingPathComponent(v.name + ".json").path))
            let a = try JSONSerialization.jsonObject(with: storedJSON) as? NSDictionary
            var sj = decodedJSON(sdec, entries: v.entries); sj["description"] = v.description
            let b = try JSONSerialization.jsonObject(with: JSONSerialization.data(withJSONObject: sj)) as? NSDictionary
            #expect(a == b, "\(v.name): decoded form differs from \(v.name).json")
            for (p, e) in v.entries.enumerated() where p % 7 == 0 { #expect(sdec.map.entry(PFN(UInt64(p)))?.raw == e) }
        }
    }

    @Test func truncationAtEveryOffsetIsATypedError() throws {
        for v in vectorDefs() {
            let bytes = [UInt8](try #require(FileManager.default.contents(atPath: vectorsDir.appendingPathComponent(v.name + ".note").path)))
            let desc = try P2MNote.descriptor(fromElfNote: bytes)
            for cut in 0..<desc.count {
                #expect(throws: P2MFormatError.self) { _ = try P2MNote.decode(descriptor: Array(desc[0..<cut])) }
            }
            for cut in 0..<bytes.count - 3 {
                #expect(throws: (any Error).self) {
                    _ = try P2MNote.decode(descriptor: try P2MNote.descriptor(fromElfNote: Array(bytes[0..<cut])))
                }
            }
        }
    }

    @Test func badVectorsAreRejectedWithTheirRule() throws {
        let dir = vectorsDir.appendingPathComponent("bad")
        let write = ProcessInfo.processInfo.environment["P2M_WRITE_VECTORS"] != nil
        let bad = try badNotes()
        if write {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            var readme = "# Notes a decoder must reject\n\nEach file is a complete ELF note; the rule is Spec §8's number.\n\n| file | rule | what is wrong |\n|---|---|---|\n"
            for b in bad {
                try Data(b.bytes).write(to: dir.appendingPathComponent(b.name + ".note"))
                readme += "| \(b.name).note | \(b.rule) | \(b.what) |\n"
            }
            try readme.write(to: dir.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)
        }
        for b in bad {
            let stored = [UInt8](try #require(FileManager.default.contents(atPath: dir.appendingPathComponent(b.name + ".note").path)))
            #expect(stored == b.bytes, "\(b.name) changed")
            do {
                _ = try P2MNote.decode(descriptor: try P2MNote.descriptor(fromElfNote: stored))
                Issue.record("\(b.name) was accepted")
            } catch let e as P2MFormatError {
                #expect(e.rule == b.rule, "\(b.name): rule \(e.rule) (\(e)), expected \(b.rule)")
            }
        }
    }
}

struct BadNote { let name: String; let rule: Int; let what: String; let bytes: [UInt8] }

/// Corrupt notes made from the worked example by editing fields (and fixing the header
/// checksum where the point is a later rule).
func badNotes() throws -> [BadNote] {
    let v = vectorDefs()[0]
    let enc = P2MEncoder(width: v.width)
    try enc.append(entries: v.entries)
    let good = try enc.finish(metadata: v.meta)
    var out: [BadNote] = []
    func fixSum(_ d: inout [UInt8]) {
        for i in 0x98..<0xA0 { d[i] = 0 }
        let s = XXH64.hash(Array(d[0..<Int(160)]))
        for i in 0..<8 { d[0x98 + i] = UInt8(truncatingIfNeeded: s >> (8 * UInt64(i))) }
    }
    func put(_ d: inout [UInt8], _ off: Int, _ v: UInt64, _ n: Int) { for i in 0..<n { d[off + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
    func make(_ name: String, _ rule: Int, _ what: String, fix: Bool = true, _ edit: (inout [UInt8]) throws -> Void) rethrows {
        var d = good.descriptor
        try edit(&d)
        if fix { fixSum(&d) }
        out.append(BadNote(name: name, rule: rule, what: what, bytes: P2MNote.elfNote(descriptor: d)))
    }
    var wrongType = good.elfNoteBytes; wrongType[8] ^= 1
    out.append(BadNote(name: "wrong-type", rule: 1, what: "n_type is not 0x50324d4e", bytes: wrongType))
    make("bad-magic", 2, "magic is not p2mnote\\0") { $0[0] = 0x50 }
    make("version-2", 2, "version_major 2 (unsupported version)") { put(&$0, 8, 2, 2) }
    make("header-size-small", 3, "header_size 96") { put(&$0, 0x0C, 96, 4) }
    make("header-checksum", 4, "header checksum does not match", fix: false) { $0[0x20] ^= 0xff }
    make("unknown-flag", 5, "must-understand flag bit 3 set") { put(&$0, 0x10, 8, 4) }
    make("page-shift-13", 6, "page_shift 13") { $0[0x14] = 13 }
    make("nr-pfns-zero", 7, "nr_pfns 0") { put(&$0, 0x20, 0, 8) }
    make("counts-dont-add-up", 8, "count_mfn + … ≠ nr_pfns") { put(&$0, 0x28, 8, 8) }
    make("records-zero", 9, "nr_records 0") { put(&$0, 0x48, 0, 8) }
    make("encoded-size", 10, "encoded_size ≠ descsz − header_size") { put(&$0, 0x50, 1, 8) }
    make("bomb", 11, "decoded_size above 21 × nr_pfns (decompression bomb)") { put(&$0, 0x58, 1 << 40, 8) }
    make("frames-flag", 12, "FRAMES set without a frames stream") { put(&$0, 0x10, 1, 4) }
    make("lz4-no-checksum", 13, "LZ4 frame without content checksum") { $0[160 + 4] &= ~0x04 }
    make("lz4-corrupt", 13, "LZ4 content checksum fails") { $0[$0.count - 6] ^= 0x55 }
    make("record-count", 15, "nr_records ≠ the records in the stream") { put(&$0, 0x48, 6, 8) }
    make("digest", 15, "map_digest ≠ the digest of the decoded map") { $0[0x68] ^= 1 }
    // Streams that break rule 14, framed properly.
    func streamNote(_ name: String, _ what: String, _ stream: [UInt8], pfns: UInt64 = 24) throws {
        var h = good.header
        h.nrPfns = pfns; h.counts = EntryCounts(mfn: 0, invalid: pfns, identity: 0, foreign: 0); h.nrRecords = 1
        let frame = try LZ4Frame.compress(stream)
        h.decodedSize = UInt64(stream.count); h.mapStreamSize = UInt64(stream.count); h.encodedSize = UInt64(frame.count)
        out.append(BadNote(name: name, rule: 14, what: what, bytes: P2MNote.elfNote(descriptor: h.encoded() + frame)))
    }
    try streamNote("run-past-end", "INVALID record of 25 entries in a 24-entry map", [0x01, 25])
    try streamNote("stream-ends-early", "records cover 14 of 24 entries", [0xE1])
    try streamNote("reserved-kind", "record kind 0xA", [0x1A, 0x81])
    try streamNote("overlong-varint", "non-minimal LEB128 length", [0x01, 0x98, 0x00])
    try streamNote("short-long-form", "long-form length 5 (< 16)", [0x01, 0x05])
    try streamNote("trailing-bytes", "bytes after the last record", [0x01, 24, 0x00])
    try streamNote("desc-below-zero", "DESC of 24 from mfn 3", [0x04, 24, 0x06])
    return out
}
