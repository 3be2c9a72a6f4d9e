import Foundation
import Testing
import TestSupport
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
    v.append(VectorDef(name: "dom0-like", description: "dom0-like: ascending chunks, 64-page chunks stepping down, a descending run, identity hole 0x9f-0xff, INVALID tail", width: .eight, entries: d, meta: .init(source: .linearList, domainID: 0, listVAddr: KVAddr(rawValue: 0xffffc90000000000), fllMFN: MFN(rawValue: 0x1da4), missingPageMFN: MFN(rawValue: 0x1d9f), identityPageMFN: MFN(rawValue: 0x1da0), identityKnown: true, crossChecked: true), frames: nil))
    // Foreign runs, repeats, a raw literal block.
    var f: [UInt64] = (0..<20).map { (0x8000 + $0) | P2MEntry.foreignBit } + (0..<5).map { (0x9000 - $0) | P2MEntry.foreignBit }
    f += Array(repeating: 0x4242, count: 30) + [0xdead_beef_0000, 0x1, 0x7777_0000_0000, 0x2, 0x3333_3333_3333]
    f += [(9 | P2MEntry.identityBit), 0xC000_0000_0000_0001]
    f += Array(repeating: .max, count: 3)
    v.append(VectorDef(name: "foreign-repeat-raw", description: "FOREIGN_ASC, FOREIGN_DESC, REPEAT, LITERAL_RAW, odd flag classes", width: .eight, entries: f, meta: .init(source: .textTable), frames: nil))
    // With a frames stream: 4 list pages.
    let fr: [UInt64] = Array(0x500..<0x700) + Array(repeating: .max, count: 2048 - 0x200)
    v.append(VectorDef(name: "with-frames", description: "a frames stream (FRAMES flag): list page index → backing mfn", width: .eight, entries: fr, meta: .init(source: .linearList, listVAddr: KVAddr(rawValue: 0xffffc90000000000), missingPageMFN: MFN(rawValue: 0x99), identityKnown: true), frames: [MFN(rawValue: 0x1234), MFN(rawValue: 0x99), MFN(rawValue: 0x99), MFN(rawValue: 0x99)]))
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
            for (p, e) in v.entries.enumerated() where p % 7 == 0 { #expect(sdec.map.entry(PFN(rawValue: UInt64(p)))?.raw == e) }
        }
    }

    /// Vectors hand-assembled by Spec/vectors/assemble.py (not made by the Swift encoder): the
    /// script reproduces the files on disk, and the Swift decoder agrees with the JSON it wrote.
    @Test func assembledVectorsDecodeToTheirJSON() throws {
        let check = try runTool(["python3", vectorsDir.appendingPathComponent("assemble.py").path, "--check"])
        #expect(check.status == 0, "assemble.py --check: \(check.stderr)\(check.stdout)")
        let names = assembledVectorNames()
        #expect(names.count >= 5, "assembled vectors: \(names)")
        for name in names {
            let note = [UInt8](try #require(FileManager.default.contents(atPath: vectorsDir.appendingPathComponent(name + ".note").path)))
            let dec = try P2MNote.decode(descriptor: try P2MNote.descriptor(fromElfNote: note), keepRecords: true)
            let storedJSON = try #require(FileManager.default.contents(atPath: vectorsDir.appendingPathComponent(name + ".json").path))
            let a = try #require(try JSONSerialization.jsonObject(with: storedJSON) as? [String: Any])
            var j = decodedJSON(dec, entries: dec.header.nrPfns <= 4096 ? entriesOf(dec.map) : nil)
            j["description"] = a["description"]
            let b = try JSONSerialization.jsonObject(with: JSONSerialization.data(withJSONObject: j)) as? NSDictionary
            #expect(a as NSDictionary == b, "\(name): the Swift decoder's form differs from \(name).json")
        }
    }

    /// Where an assembled vector follows Spec §9, the Swift reference encoder writes the same
    /// streams the script assembled by hand.
    @Test func assembledVectorsFollowTheReferenceEncoder() throws {
        for name in ["literal-raw-w8", "guest32-edges", "shared-pages", "lz4-frame-options", "host-domu-m2p"] {
            let note = [UInt8](try #require(FileManager.default.contents(atPath: vectorsDir.appendingPathComponent(name + ".note").path)))
            let desc = try P2MNote.descriptor(fromElfNote: note)
            let dec = try P2MNote.decode(descriptor: desc)
            let h = dec.header
            let payload = try desc.withUnsafeBytes {
                try LZ4Frame.decompress(UnsafeRawBufferPointer(rebasing: $0[Int(h.headerSize)...]), expected: Int(h.decodedSize))
            }
            let m = StreamEncoder(role: .map(try #require(h.width)))
            try m.append(entriesOf(dec.map))
            #expect(m.finish() == Array(payload[0..<Int(h.mapStreamSize)]), "\(name): map stream")
            if let f = dec.listFrames {
                let fe = StreamEncoder(role: .frames)
                try fe.append(entriesOf(f))
                #expect(fe.finish() == Array(payload[Int(h.mapStreamSize)...]), "\(name): frames stream")
            }
        }
    }

    /// Spec 1.1 §10: a note says the lowest version that describes it — minor 1 only for source 7
    /// (as the hand-assembled host-domu-m2p vector), 1.0 for everything else.
    @Test func versionMinorOnlyWhereANoteNeedsIt() throws {
        let v = [UInt8](try #require(FileManager.default.contents(atPath: vectorsDir.appendingPathComponent("host-domu-m2p.note").path)))
        let vh = try P2MNote.decode(descriptor: try P2MNote.descriptor(fromElfNote: v)).header
        #expect(vh.versionMinor == 1 && vh.source == .xenM2P && vh.domainID == 5 && !vh.identityKnown)
        for (src, minor) in [(P2MSource.xenM2P, UInt16(1)), (.linearList, 0), (.frameListTree, 0), (.xlP2M, 0)] {
            let e = P2MEncoder(width: .eight)
            try e.append(entries: (0..<300).map { 0x40000 + UInt64($0) }); try e.appendInvalid(count: 100)
            try e.append(entries: (0..<112).map { 0x50000 + UInt64($0) })
            let h = try P2MNote.decode(descriptor: e.finish(metadata: .init(source: src, domainID: 5)).descriptor).header
            #expect(h.versionMinor == minor && h.mapDigest == vh.mapDigest, "\(src)")
        }
    }

    @Test func width4EncoderRefusesTheValueThatReadsBackInvalid() throws {
        let enc = P2MEncoder(width: .four)
        #expect(throws: P2MFormatError.self) { try enc.append(entries: [0xC000_0000_3FFF_FFFF]) }
        let ok = P2MEncoder(width: .four)
        try ok.append(entries: [0xC000_0000_3FFF_FFFE, .max])
        let d = try P2MNote.decode(descriptor: ok.finish(metadata: .init(source: .rawTable)).descriptor)
        #expect(d.map.entry(PFN(rawValue: 0))?.raw == 0xC000_0000_3FFF_FFFE)
    }

    @Test func truncationAtEveryOffsetIsATypedError() throws {
        for name in vectorDefs().map(\.name) + assembledVectorNames() {
            let bytes = [UInt8](try #require(FileManager.default.contents(atPath: vectorsDir.appendingPathComponent(name + ".note").path)))
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
        let listed = try badVectorRules()
        // The Swift-made ones are what badNotes() makes, and README names the same rule.
        for b in try badNotes() {
            if write { try Data(b.bytes).write(to: dir.appendingPathComponent(b.name + ".note")) }
            let stored = [UInt8](try #require(FileManager.default.contents(atPath: dir.appendingPathComponent(b.name + ".note").path)))
            #expect(stored == b.bytes, "\(b.name) changed")
            #expect(listed[b.name] == b.rule, "\(b.name): bad/README.md says rule \(listed[b.name] ?? -1), badNotes() \(b.rule)")
        }
        // Every file in bad/ is listed, and every listed file is rejected with its rule.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".note") }
        #expect(Set(files.map { String($0.dropLast(5)) }) == Set(listed.keys), "bad/README.md and bad/*.note differ")
        for (name, rule) in listed.sorted(by: { $0.key < $1.key }) {
            let stored = [UInt8](try #require(FileManager.default.contents(atPath: dir.appendingPathComponent(name + ".note").path)))
            do {
                _ = try P2MNote.decode(descriptor: try P2MNote.descriptor(fromElfNote: stored))
                Issue.record("\(name) was accepted")
            } catch let e as P2MFormatError {
                #expect(e.rule == rule, "\(name): rule \(e.rule) (\(e)), expected \(rule)")
            }
        }
    }
}

/// The good vectors that Spec/vectors/assemble.py writes (every NAME.note not in vectorDefs()).
func assembledVectorNames() -> [String] {
    let swiftMade = Set(vectorDefs().map(\.name))
    let files = (try? FileManager.default.contentsOfDirectory(atPath: vectorsDir.path)) ?? []
    return files.filter { $0.hasSuffix(".note") }.map { String($0.dropLast(5)) }.filter { !swiftMade.contains($0) }.sorted()
}

/// bad/README.md's table: file name (without .note) → the rule a decoder must report.
func badVectorRules() throws -> [String: Int] {
    let text = try String(contentsOf: vectorsDir.appendingPathComponent("bad/README.md"), encoding: .utf8)
    var out: [String: Int] = [:]
    for line in text.split(separator: "\n") where line.hasPrefix("| ") {
        let cols = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard cols.count > 3, cols[1].hasSuffix(".note"), let rule = Int(cols[2]) else { continue }
        out[String(cols[1].dropLast(5))] = rule
    }
    return out
}

func entriesOf(_ m: P2MMap) -> [UInt64] {
    var e = [UInt64](repeating: 0, count: Int(m.nrPfns))
    _ = e.withUnsafeMutableBufferPointer { m.entries(from: 0, into: $0) }
    return e
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
    make("header-checksum", 4, "header_checksum does not match (one bit of the checksum flipped)", fix: false) { $0[0x98] ^= 0x01 }
    make("unknown-flag", 5, "must-understand flag bit 3 set") { put(&$0, 0x10, 8, 4) }
    make("page-shift-13", 6, "page_shift 13") { $0[0x14] = 13 }
    make("nr-pfns-zero", 7, "nr_pfns 0") { put(&$0, 0x20, 0, 8) }
    make("counts-dont-add-up", 8, "count_mfn + … ≠ nr_pfns") { put(&$0, 0x28, 8, 8) }
    make("records-zero", 9, "nr_records 0") { put(&$0, 0x48, 0, 8) }
    // 4 bytes after the frame inside the descriptor: only rule 10 (the frame itself is whole).
    make("encoded-size", 10, "4 bytes after the LZ4 frame inside the descriptor: encoded_size ≠ descsz − header_size") { $0 += [0, 0, 0, 0] }
    make("bomb", 11, "decoded_size 2^40: above 11 × nr_pfns and the memory limit (also breaks 13)") { put(&$0, 0x58, 1 << 40, 8) }
    make("frames-flag", 12, "FRAMES set without a frames stream") { put(&$0, 0x10, 1, 4) }
    // (lz4-no-checksum and the other LZ4 cases of rule 13 are assembled by Spec/vectors/assemble.py.)
    make("lz4-corrupt", 13, "LZ4 end mark overwritten: it reads as a block size above the block maximum") { $0[$0.count - 6] ^= 0x55 }
    make("record-count", 15, "nr_records ≠ the records in the stream") { put(&$0, 0x48, 6, 8) }
    make("digest", 15, "map_digest ≠ the digest of the decoded map") { $0[0x68] ^= 1 }
    // Streams that break rule 14 and nothing else: framed properly, the header describing the
    // map the stream was meant to carry (24 INVALID unless said otherwise), so that a decoder
    // lenient on the stream's fault would find every other rule satisfied.
    let allInvalid = digestOf(canonicalRuns: [CanonicalRun(start: 0, length: 24, first: .max, step: 0)])
    func streamNote(_ name: String, _ what: String, _ stream: [UInt8], records: UInt64 = 1,
                    counts: EntryCounts = EntryCounts(mfn: 0, invalid: 24, identity: 0, foreign: 0),
                    digest: UInt64? = nil) throws {
        var h = good.header
        h.nrPfns = 24; h.counts = counts; h.nrRecords = records; h.mapDigest = digest ?? allInvalid
        let frame = try LZ4Frame.compress(stream)
        h.decodedSize = UInt64(stream.count); h.mapStreamSize = UInt64(stream.count); h.encodedSize = UInt64(frame.count)
        out.append(BadNote(name: name, rule: 14, what: what, bytes: P2MNote.elfNote(descriptor: h.encoded() + frame)))
    }
    try streamNote("run-past-end", "INVALID record of 25 entries in a 24-entry map", [0x01, 25])
    try streamNote("stream-ends-early", "records cover 14 of 24 entries", [0xE1])
    try streamNote("reserved-kind", "record kind 0xA (then INVALID 23: 24 entries if it were one)", [0x1A, 0x01, 23], records: 2)
    try streamNote("overlong-varint", "non-minimal LEB128 length (98 00 for 24)", [0x01, 0x98, 0x00])
    try streamNote("short-long-form", "long-form length 5 (< 16), then INVALID 15 + 4", [0x01, 0x05, 0xF1, 0x41], records: 3)
    try streamNote("trailing-bytes", "a byte after the last record", [0x01, 24, 0x00])
    try streamNote("desc-below-zero", "DESC of 24 from mfn 3", [0x04, 24, 0x06],
                   counts: EntryCounts(mfn: 24, invalid: 0, identity: 0, foreign: 0),
                   digest: digestOf(canonicalRuns: [CanonicalRun(start: 0, length: 24, first: 3, step: .max)]))
    return out
}
