import DumpGen
import DumpIO
import Foundation
import P2MFormat
import Testing
import TestSupport
import Translation
@testable import P2MTools

func dom0(_ d: String, _ name: String = "dom0.vmcore", _ edit: (inout Dom0DumpOptions) -> Void = { _ in }) throws -> GeneratedDump {
    var o = Dom0DumpOptions(); o.guestMiB = 128; o.seed = 5
    edit(&o)
    return try DumpGenerator.generateDom0(o, to: d + "/" + name)
}

func emitNote(_ g: GeneratedDump, _ edit: (inout EmitOptions) -> Void = { _ in }) throws -> EmitResult {
    var o = EmitOptions(input: g.path); o.guest.systemMap = g.systemMapPath
    edit(&o)
    return try Emitter.emit(o)
}

@Suite(.serialized) struct EmitTests {
    @Test(arguments: LayoutProfile.allCases)
    func noteEqualsTheManifest(profile: LayoutProfile) throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d) { $0.profile = profile }
        let r = try emitNote(g)
        let dec = try P2MNote.decode(descriptor: r.note.descriptor)
        #expect(dec.header.mapDigest == g.manifest.p2mDigest)
        // The same digest from the C decoder, which computes it from the note's entries itself.
        #expect(try independentMapDigest(ofElfNote: r.note.elfNoteBytes) == g.manifest.p2mDigest)
        #expect(dec.header.counts.mfn == g.manifest.p2mCounts["mfn"] && dec.header.counts.identity == g.manifest.p2mCounts["identity"])
        #expect(dec.header.nrPfns == g.manifest.nrPfns && dec.header.identityKnown && dec.header.hasFrames)
        let cc = try #require(r.summary.crossCheck)
        #expect(cc.comparisons.map(\.source) == [.frameTree] && cc.agrees && dec.header.crossChecked, "\(cc)")
        #expect(cc.comparisons.first?.compared == dec.header.nrPfns)
        for s in g.manifest.samples { #expect(dec.map.m2p(MFN(rawValue: s.mfn)) == .unique(PFN(rawValue: s.pfn)), "\(s.what)") }
        // p2m_missing / p2m_identity are pointer variables: the header names the pages they
        // point at (the generator's own record), two distinct frames, not their .bss page.
        #expect(dec.header.missingPageMFN == g.manifest.p2mMissingMfn, "missing page frame")
        #expect(dec.header.identityPageMFN == g.manifest.p2mIdentityMfn, "identity page frame")
        #expect(dec.header.missingPageMFN != dec.header.identityPageMFN)
    }

    @Test func xlDumpCoreFromPagesAndFromXenP2M() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = XLDumpOptions(); o.guestMiB = 128
        let g = try DumpGenerator.generateXL(o, to: d + "/domU.xcore")
        var e = EmitOptions(input: g.path); e.guest.systemMap = g.systemMapPath
        let r = try Emitter.emit(e)
        #expect(r.note.header.source == .xlPagesLinear && r.note.header.mapDigest == g.manifest.p2mDigest)
        let x = try #require(r.summary.crossCheck?.comparisons.first { $0.source == .xenP2M })
        #expect(x.agrees && x.compared == UInt64(g.manifest.p2mCounts["mfn"] ?? 0), "\(x)")
        e.from = .xlP2M
        let p = try Emitter.emit(e)
        #expect(p.note.header.source == .xlP2M && p.note.header.counts.mfn == g.manifest.p2mCounts["mfn"])
    }

    @Test func worksFromCr3WithoutCrashInfoAndFailsClearlyWithoutBoth() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d) { $0.crashInfo = false }
        let r = try emitNote(g)
        #expect(r.note.header.mapDigest == g.manifest.p2mDigest && r.summary.crossCheck?.compared == false)
        let g2 = try dom0(d, "b.vmcore") { $0.crashInfo = false; $0.crashRegs = false }
        do { _ = try emitNote(g2); Issue.record("expected an error") } catch {
            #expect("\(error)".contains("--cr3"), "\(error)")
        }
        // …and --cr3 makes it work.
        let r3 = try emitNote(g2) { $0.guest.cr3 = MachAddr(rawValue: g2.manifest.cr3) }
        #expect(r3.note.header.mapDigest == g2.manifest.p2mDigest)
        // Without symbols, the frame-list tree is used, and says identity is not known.
        let g3 = try dom0(d, "c.vmcore")
        let t = try Emitter.emit(EmitOptions(input: g3.path))
        #expect(t.note.header.source == .frameListTree && !t.note.header.identityKnown)
    }

    @Test func plantedTreeMismatchIsReportedWithThePfn() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        // Point the tree's leaf slot for pfns 0x200–0x3ff at the shared missing page.
        let dump = try DumpFile.open(path: g.path)
        let mem = try openDump(path: g.path).memory
        let fll = try #require(g.manifest.fllMfn)
        let l2 = try mem.readU64(MachAddr(rawValue: fll << 12))
        let slot = MachAddr(rawValue: (l2 << 12) + 8)
        let seg = try #require(dump.loads.first { slot.rawValue >= $0.paddr && slot.rawValue < $0.end })
        let fh = try #require(FileHandle(forUpdatingAtPath: g.path))
        try fh.seek(toOffset: seg.offset + slot.rawValue - seg.paddr)
        fh.write(withUnsafeBytes(of: g.manifest.p2mMissingMfn.littleEndian) { Data($0) })
        try fh.close()
        let r = try emitNote(g)
        let tree = try #require(r.summary.crossCheck?.comparisons.first)
        #expect(tree.differences == 512)
        #expect(tree.first.first?.pfn == PFN(rawValue: 0x200), "\(tree.first)")
        #expect(!r.note.header.crossChecked)
    }

    @Test(arguments: [EntryWidth.eight, .four])
    func rawTableRoundTrip(width: EntryWidth) throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let entries: [UInt64] = Array(0x100..<0x300) + Array(repeating: .max, count: 100) + [0x5 | P2MEntry.identityBit, 42]
        var bytes: [UInt8] = []
        for e in entries { let s = P2MEntry(raw: e).stored(width: width)!; for i in 0..<width.bytes { bytes.append(UInt8(truncatingIfNeeded: s >> (8 * UInt64(i)))) } }
        try Data(bytes).write(to: URL(fileURLWithPath: d + "/t.raw"))
        var o = EmitOptions(input: d + "/t.raw"); o.from = .raw; o.width = width
        let m = try P2MNote.decode(descriptor: Emitter.emit(o).note.descriptor).map
        for (p, e) in entries.enumerated() { #expect(m.entry(PFN(rawValue: UInt64(p)))?.raw == e) }
        try Data(bytes.dropLast(3)).write(to: URL(fileURLWithPath: d + "/t.raw"))
        #expect(throws: DumpError.self) { _ = try Emitter.emit(o) }
    }

    @Test func textTable() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        try "# pfn mfn\n0 0x100\n1 0x101\n3 identity\n0x5 7 # seven\n".write(toFile: d + "/t.txt", atomically: true, encoding: .utf8)
        var o = EmitOptions(input: d + "/t.txt"); o.from = .text
        let m = try P2MNote.decode(descriptor: Emitter.emit(o).note.descriptor).map
        #expect(m.nrPfns == 6 && m.entry(PFN(rawValue: 2)) == .invalid && m.entry(PFN(rawValue: 3)) == .identity(PFN(rawValue: 3)) && m.entry(PFN(rawValue: 5))?.raw == 7)
        // Hex with or without 0x, as everywhere else: "10 7dc00" is pfn 0x10, mfn 0x7dc00.
        try "0 7dc00\n10 7dc10\n".write(toFile: d + "/h.txt", atomically: true, encoding: .utf8)
        var h = o; h.input = d + "/h.txt"
        let hm = try P2MNote.decode(descriptor: Emitter.emit(h).note.descriptor).map
        #expect(hm.nrPfns == 0x11 && hm.entry(PFN(rawValue: 0))?.raw == 0x7dc00 && hm.entry(PFN(rawValue: 0x10))?.raw == 0x7dc10)
        try "0 0x100\n1 banana\n".write(toFile: d + "/bad.txt", atomically: true, encoding: .utf8)
        o.input = d + "/bad.txt"
        do { _ = try Emitter.emit(o); Issue.record("accepted garbage") } catch { #expect("\(error)".contains("line 2")) }
    }
}
