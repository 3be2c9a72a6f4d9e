import DumpGen
import DumpIO
import Foundation
import GuestReader
import P2MFormat
import Testing
import TestSupport
import Translation
@testable import P2MTools

/// The generator's kdump-compressed and flattened files (every compression and header version),
/// judged by the reader here and by readers nobody here wrote (libkdumpfile, crash, makedumpfile -R).
@Suite(.serialized) struct KdumpGeneratedTests {
    @Test(arguments: KdumpCompression.allCases)
    func everyCompressionReadsAsTheELFOriginal(c: KdumpCompression) throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d) { $0.dom0VMCoreInfo = true }
        var o = KdumpWriteOptions(); o.compression = c
        let kd = d + "/dom0.kdump"
        try KdumpWriter.write(fromELF: g.path, to: kd, o)
        let elfNote = try emitNote(g).note
        var e = EmitOptions(input: kd); e.guest.systemMap = g.systemMapPath
        let k = try Emitter.emit(e)
        #expect(k.note.elfNoteBytes == elfNote.elfNoteBytes, "\(c): the note differs from the ELF original's")
        var a = GuestOptions(dump: kd); a.guest.systemMap = g.systemMapPath
        let s = try GuestSession(a)
        for smp in g.manifest.samples.prefix(12) {
            let v = try s.execute(["rd", String(smp.vaddr, radix: 16), "2"]).json as? [String: Any]
            #expect((v?["hex"] as? String)?.hasPrefix(String(smp.bytes.prefix(32))) == true, "\(c): \(smp.what)")
        }
        // Readers nobody here wrote.
        requireTool("/usr/bin/python3"); requireTool("/usr/bin/crash")
        let py = try runTool(["/usr/bin/python3", "-c", libkdumpfileSampleScript, kd, g.manifestPath])
        if c == .snappy || c == .zstd, py.stderr.contains("not supported") || py.stderr.contains("Unsupported") {
            FileHandle.standardError.write(Data("LOUD: python3-libkdumpfile here cannot decompress \(c): \(py.stderr.suffix(200))\n".utf8))
        } else {
            #expect(py.stdout.contains("bad 0") && py.stdout.contains("diskdump"), "\(c) libkdumpfile: \(py.stdout) \(py.stderr)")
        }
        let cr = try runTool(["crash", "--osrelease", kd])
        #expect(cr.stdout.contains(g.manifest.osRelease), "\(c) crash --osrelease: \(cr.stdout) \(cr.stderr)")
    }

    @Test func headerVersionsSplitEraseinfoFlattenedAndExcluded() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d) { $0.dom0VMCoreInfo = true }
        let elf = try openDump(path: g.path)
        let cr3 = MachAddr(rawValue: g.manifest.cr3)
        let want = try elf.memory.readBytes(cr3, count: 4096)
        for v: Int32 in 1...6 {
            var o = KdumpWriteOptions(); o.headerVersion = v; o.eraseinfo = v >= 5
            try KdumpWriter.write(fromELF: g.path, to: d + "/v\(v)", o)
            let k = try openDump(path: d + "/v\(v)")
            #expect(try k.memory.readBytes(cr3, count: 4096) == want, "version \(v)")
            #expect(k.notes.isEmpty == (v < 4), "version \(v): notes")
        }
        var so = KdumpWriteOptions(); so.split = true
        try KdumpWriter.write(fromELF: g.path, to: d + "/split", so)
        do { _ = try openDump(path: d + "/split"); Issue.record("split opened") } catch { #expect("\(error)".contains("--reassemble")) }
        // Flattened: reads as the file it describes; makedumpfile -R rebuilds that file exactly.
        try KdumpWriter.write(fromELF: g.path, to: d + "/k", KdumpWriteOptions())
        try KdumpWriter.flatten(d + "/k", to: d + "/k.flat")
        var e = EmitOptions(input: d + "/k.flat"); e.guest.systemMap = g.systemMapPath
        #expect(try Emitter.emit(e).note.elfNoteBytes == emitNote(g).note.elfNoteBytes)
        requireTool("/usr/bin/makedumpfile")
        let r = try runTool(["sh", "-c", "makedumpfile -R '\(d)/k.rebuilt' < '\(d)/k.flat'"])
        #expect(r.status == 0, "makedumpfile -R: \(r.stderr)")
        #expect(FileManager.default.contentsEqual(atPath: d + "/k", andPath: d + "/k.rebuilt"), "makedumpfile -R rebuilt another file")
        // A list page excluded by the dump level: emit says which frame, never a silent hole.
        let list = try #require(g.manifest.samples.first { $0.what.hasPrefix("p2m list page") })
        var xo = KdumpWriteOptions(); xo.excludeFrames = [list.mfn]
        try KdumpWriter.write(fromELF: g.path, to: d + "/x", xo)
        var xe = EmitOptions(input: d + "/x"); xe.guest.systemMap = g.systemMapPath
        let partial = try Emitter.emit(xe)
        let gap = try #require(partial.summary.listPagesNotInDump.first, "the excluded list page is not reported")
        #expect(partial.summary.listPagesNotInDump.count == 1 && gap.mfn.rawValue == list.mfn && gap.pfns == 512 && partial.summary.unknownPfns == 512)
        #expect(gap.firstPfn.rawValue == list.pfn / 512 * 512 || gap.firstPfn.rawValue <= list.pfn, "\(gap) vs sample \(list.pfn)")
        let w = try #require(partial.summary.partialWarning)
        #expect(w.contains("PARTIAL MAP") && w.contains("excluded by makedumpfile's dump level") && w.contains(String(list.mfn, radix: 16)), Comment(rawValue: w))
        // Outside the unknown pfns the map is the ELF original's (whose digest is the generator's);
        // inside them, INVALID, and the cross-check did not count them.
        let whole = try emitNote(g).note
        #expect(whole.header.mapDigest == g.manifest.p2mDigest && partial.note.header.mapDigest != whole.header.mapDigest)
        let pm = try P2MNote.decode(descriptor: partial.note.descriptor).map, wm = try P2MNote.decode(descriptor: whole.descriptor).map
        let lo = gap.firstPfn.rawValue, hi = lo + gap.pfns
        var same = 0, invalidInGap = 0
        for p in 0..<(g.manifest.guestPages + 4096) {
            let a = pm.entry(PFN(rawValue: p)), b = wm.entry(PFN(rawValue: p))
            if p >= lo && p < hi { if a == P2MEntry(raw: .max) { invalidInGap += 1 } } else if a == b { same += 1 }
        }
        #expect(invalidInGap == 512 && same == Int(g.manifest.guestPages + 4096) - 512)
        #expect(partial.summary.crossCheck?.comparisons.first { $0.source == .frameTree }?.unknownPfns == 512)
    }

    /// crash's own dump of the kdump header (`help -D`, which `crash -d 1` prints at start-up, no
    /// vmlinux needed) after injection: the notes blob moved to the new offset with one note more,
    /// VMCOREINFO read from the new blob, the same text as before, every page unchanged.
    @Test func crashHeaderDumpAfterInjection() throws {
        requireTool("/usr/bin/crash")
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d) { $0.dom0VMCoreInfo = true }
        let kd = d + "/dom0.kdump"
        try KdumpWriter.write(fromELF: g.path, to: kd, KdumpWriteOptions())
        func header() throws -> [String: String] {
            let r = try runTool(["crash", "-d", "1", "--osrelease", kd])
            var out: [String: String] = [:]
            for l in r.stdout.split(separator: "\n") {
                let t = l.trimmingCharacters(in: .whitespaces)
                for key in ["offset_note", "size_note", "offset_vmcoreinfo", "size_vmcoreinfo", "num_prstatus_notes"] where t.hasPrefix(key + ":") {
                    out[key] = t.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init)
                }
                if t.hasPrefix("OSRELEASE=") || t.hasPrefix("SYMBOL(") || t.hasPrefix("PAGESIZE=") { out["vmcoreinfo", default: ""] += t + "\n" }
            }
            out["release"] = r.stdout.split(separator: "\n").last.map(String.init)
            return out
        }
        let before = try header()
        #expect(before["vmcoreinfo"]?.contains("OSRELEASE=\(g.manifest.osRelease)") == true, "\(before)")
        let hashBefore = try ContentHash.of(path: kd)
        try InjectCommand.parse([kd, "--emit", "--system-map", g.systemMapPath]).run()
        let after = try header()
        let k = try #require(try openDump(path: kd) as? KdumpCompressed)
        let note = try #require(try k.p2mNote())
        let offNote = try #require(after["offset_note"].flatMap { UInt64($0) }), sizeNote = try #require(after["size_note"].flatMap { UInt64($0) })
        #expect(offNote != before["offset_note"].flatMap { UInt64($0) } && offNote < note.fileOffset && note.fileOffset < offNote + sizeNote,
                "crash's offset_note \(offNote)+\(sizeNote) does not hold the p2m note at \(note.fileOffset)")
        #expect(sizeNote > (before["size_note"].flatMap { UInt64($0) } ?? .max))
        #expect(after["vmcoreinfo"] == before["vmcoreinfo"] && after["size_vmcoreinfo"] == before["size_vmcoreinfo"])
        let vOff = try #require(after["offset_vmcoreinfo"].flatMap { UInt64($0) })
        #expect(vOff > offNote && vOff < offNote + sizeNote, "VMCOREINFO must be read from the new blob")
        #expect(after["num_prstatus_notes"] == before["num_prstatus_notes"] && after["release"] == before["release"])
        #expect(try ContentHash.of(path: kd) == hashBefore)
    }

    /// A flattened stream is never written in place; `-o` gets the kdump-compressed file it
    /// describes, with the note. Judged against makedumpfile -R's rebuild of the same stream.
    @Test func injectingIntoAFlattenedStreamWritesTheKdumpFileItDescribes() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d) { $0.dom0VMCoreInfo = true }
        try KdumpWriter.write(fromELF: g.path, to: d + "/k", KdumpWriteOptions())
        try KdumpWriter.flatten(d + "/k", to: d + "/k.flat")
        let flat = try Data(contentsOf: URL(fileURLWithPath: d + "/k.flat"))
        // In place: refused, naming -o.
        do { _ = try NoteInjector(path: d + "/k.flat").run(action: .add, note: try emitNote(g).note.elfNoteBytes); Issue.record("wrote into a flattened stream") }
        catch let e as DumpError { #expect(e.description.contains("-o OUT"), "\(e)") }
        try InjectCommand.parse([d + "/k.flat", "--emit", "--system-map", g.systemMapPath, "-o", d + "/out.kdump"]).run()
        #expect(try Data(contentsOf: URL(fileURLWithPath: d + "/k.flat")) == flat, "the stream must stay as it was")
        let out = try openDump(path: d + "/out.kdump")
        #expect(out.kind == .kdumpCompressed && !out.layoutDescription.hasPrefix("flattened"), "\(out.layoutDescription)")
        #expect(try out.p2mNote() != nil)
        requireTool("/usr/bin/makedumpfile")
        let r = try runTool(["sh", "-c", "makedumpfile -R '\(d)/k.rebuilt' < '\(d)/k.flat'"])
        #expect(r.status == 0, "makedumpfile -R: \(r.stderr)")
        #expect(try ContentHash.of(path: d + "/out.kdump") == ContentHash.of(path: d + "/k.rebuilt"), "the pages differ from makedumpfile -R's rebuild")
        let cr = try runTool(["crash", "--osrelease", d + "/out.kdump"])
        #expect(cr.stdout.contains(g.manifest.osRelease), "crash --osrelease: \(cr.stdout) \(cr.stderr)")
    }
}
