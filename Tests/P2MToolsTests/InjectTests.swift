import DumpGen
import DumpIO
import Foundation
import P2MFormat
import Testing
import TestSupport
@testable import P2MTools

/// The checks readers nobody here wrote must pass after an injection.
func checkReaders(_ g: GeneratedDump, path: String, expectNote: Bool) throws {
    requireTool("/usr/bin/readelf"); requireTool("/usr/bin/eu-readelf"); requireTool("/usr/bin/crash")
    let r = try runTool(["readelf", "-W", "-n", "-l", path])
    #expect(r.status == 0 && r.stderr.isEmpty, "readelf: \(r.stderr)")
    #expect(r.stdout.contains("P2MNOTE-PV") == expectNote)
    for n in ["CORE", "VMCOREINFO_XEN", "Xen"] { #expect(r.stdout.contains(n), "readelf lost \(n)") }
    let e = try runTool(["eu-readelf", "-n", path])
    #expect(e.status == 0 && e.stderr.isEmpty, "eu-readelf: \(e.stderr)")
    #expect(e.stdout.contains("P2MNOTE-PV") == expectNote)
    let py = try runTool(["/usr/bin/python3", "-c", libkdumpfileSampleScript, path, g.manifestPath])
    #expect(py.stdout.contains("bad 0"), "libkdumpfile: \(py.stdout) \(py.stderr)")
    let c = try runTool(["crash", "--osrelease", path])
    #expect(c.stdout.contains(g.manifest.osRelease), "crash --osrelease: \(c.stdout) \(c.stderr)")
}

@Suite(.serialized) struct InjectTests {
    @Test(arguments: [false, true])
    func injectReplaceRemove(makedumpfileLayout: Bool) throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d) { $0.dom0VMCoreInfo = true; $0.makedumpfileELayout = makedumpfileLayout }
        let note = try emitNote(g).note.elfNoteBytes
        let before = try ContentHash.of(DumpFile.open(path: g.path))
        let original = try Data(contentsOf: URL(fileURLWithPath: g.path))
        // Dry run changes nothing.
        let dry = try NoteInjector(path: g.path).run(action: .add, note: note, dryRun: true)
        #expect(!dry.actions.isEmpty)
        #expect(try Data(contentsOf: URL(fileURLWithPath: g.path)) == original)
        let rep = try NoteInjector(path: g.path).run(action: .add, note: note)
        #expect(rep.bytesWritten < UInt64(note.count) + 3 * 4096 + 20_000)
        try checkReaders(g, path: g.path, expectNote: true)
        #expect(try ContentHash.of(DumpFile.open(path: g.path)) == before)
        let found = try #require(try DumpFile.open(path: g.path).p2mNote())
        #expect(try P2MNote.decode(descriptor: found.desc).header.mapDigest == g.manifest.p2mDigest)
        #expect(try independentMapDigest(ofElfNote: note) == g.manifest.p2mDigest)
        // A second one is refused; replace and remove work.
        #expect(throws: DumpError.self) { _ = try NoteInjector(path: g.path).run(action: .add, note: note) }
        _ = try NoteInjector(path: g.path).run(action: .replace, note: note)
        #expect(try DumpFile.open(path: g.path).p2mNotes.count == 1)
        _ = try NoteInjector(path: g.path).run(action: .remove, note: nil)
        try checkReaders(g, path: g.path, expectNote: false)
        #expect(try ContentHash.of(DumpFile.open(path: g.path)) == before)
    }

    @Test(arguments: [false, true])
    func interruptedAtEveryStepLeavesAReadableDumpAndIsRestored(makedumpfileLayout: Bool) throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d) { $0.makedumpfileELayout = makedumpfileLayout }
        let note = try emitNote(g).note.elfNoteBytes
        let before = try ContentHash.of(DumpFile.open(path: g.path))
        let steps = makedumpfileLayout ? ["copy-head", "rewrite-header"] : ["write-note", "grow"]
        struct Crash: Error {}
        for step in steps {
            let inj = NoteInjector(path: g.path)
            inj.failpoint = { if $0 == step { throw Crash() } }
            #expect(throws: Crash.self) { _ = try inj.run(action: .add, note: note) }
            // Still a dump every reader opens, with the same memory.
            let r = try runTool(["readelf", "-W", "-n", "-l", g.path])
            #expect(r.status == 0 && r.stderr.isEmpty, "after a crash at \(step): \(r.stderr)")
            #expect(try ContentHash.of(DumpFile.open(path: g.path)) == before)
            // The next run restores and says so.
            #expect(try NoteInjector(path: g.path).recover(), "no journal after a crash at \(step)")
            #expect(try DumpFile.open(path: g.path).p2mNote() == nil)
        }
        _ = try NoteInjector(path: g.path).run(action: .add, note: note)
        #expect(try DumpFile.open(path: g.path).p2mNotes.count == 1)
        #expect(try ContentHash.of(DumpFile.open(path: g.path)) == before)
    }

    @Test func emitOnTheFlyIntoASparseCopy() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        let original = try Data(contentsOf: URL(fileURLWithPath: g.path))
        let cmd = try InjectCommand.parse([g.path, "--emit", "--system-map", g.systemMapPath, "-o", d + "/out.vmcore", "--verify"])
        try cmd.run()
        #expect(try Data(contentsOf: URL(fileURLWithPath: g.path)) == original, "-o must leave the source untouched")
        let n = try #require(try DumpFile.open(path: d + "/out.vmcore").p2mNote())
        #expect(try P2MNote.decode(descriptor: n.desc).header.mapDigest == g.manifest.p2mDigest)
        // The copy stays sparse: far fewer blocks than bytes.
        var st = stat(); stat(d + "/out.vmcore", &st)
        #expect(UInt64(st.st_blocks) * 512 < UInt64(st.st_size) / 4)
    }

    @Test func aDumpChangedUnderneathIsNotSwitched() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        let note = try emitNote(g).note.elfNoteBytes
        let inj = NoteInjector(path: g.path)
        // Another writer touches PT_NOTE's size between our note write and our switch.
        inj.failpoint = { step in
            if step == "grow", let fh = FileHandle(forUpdatingAtPath: g.path) {
                // p_memsz 0x1390: not what was planned on.
                try fh.seek(toOffset: 64 + 40); fh.write(Data([0x90, 0x13, 0, 0]))
                try fh.close()
            }
        }
        do { _ = try inj.run(action: .add, note: note); Issue.record("switched a changed dump") }
        catch let e as DumpError { #expect(e.description.contains("changed underneath"), "\(e)") }
        #expect(try DumpFile.open(path: g.path).p2mNote() == nil)
        #expect(!FileManager.default.fileExists(atPath: g.path + ".p2minject.journal"))
    }

    @Test func xlDumpCoreGetsANoteSection() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = XLDumpOptions(); o.guestMiB = 128
        let g = try DumpGenerator.generateXL(o, to: d + "/domU.xcore")
        var e = EmitOptions(input: g.path); e.guest.systemMap = g.systemMapPath
        let note = try Emitter.emit(e).note.elfNoteBytes
        let before = try ContentHash.of(DumpFile.open(path: g.path))
        _ = try NoteInjector(path: g.path).run(action: .add, note: note)
        let r = try runTool(["readelf", "-W", "-S", "-n", g.path])
        #expect(r.status == 0 && r.stderr.isEmpty && r.stdout.contains(".note.p2mnote") && r.stdout.contains(".xen_p2m"), "\(r.stderr)")
        let py = try runTool(["/usr/bin/python3", "-c", "import kdumpfile,sys; k=kdumpfile.kdumpfile(sys.argv[1]); print(k.attr['file.format'])", g.path])
        #expect(py.stdout.contains("xc_core_elf"), "\(py.stdout)\(py.stderr)")
        #expect(try DumpFile.open(path: g.path).p2mNote() != nil)
        #expect(try ContentHash.of(DumpFile.open(path: g.path)) == before)
        _ = try NoteInjector(path: g.path).run(action: .replace, note: note)
        _ = try NoteInjector(path: g.path).run(action: .remove, note: nil)
        #expect(try DumpFile.open(path: g.path).p2mNote() == nil)
    }

    @Test func badInputsLeaveTheFileUntouched() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        let note = try emitNote(g).note.elfNoteBytes
        let good = try Data(contentsOf: URL(fileURLWithPath: g.path, isDirectory: false)).prefix(64 * 1024)
        var cases: [(String, Data)] = [("text", Data("not a dump at all\n".utf8)), ("empty", Data())]
        cases.append(("truncated-header", good.prefix(40)))
        cases.append(("truncated-phdrs", good.prefix(100)))
        cases.append(("truncated-loads", good.prefix(0x4000)))
        var be = good; be[5] = 2; cases.append(("big-endian", be))
        var c32 = good; c32[4] = 1; cases.append(("elfclass32", c32))
        var arm = good; arm[18] = 183; cases.append(("aarch64", arm))
        for (name, bytes) in cases {
            let p = d + "/" + name
            try bytes.write(to: URL(fileURLWithPath: p))
            #expect(throws: DumpError.self, "\(name)") { _ = try NoteInjector(path: p).run(action: .add, note: note) }
            #expect(try Data(contentsOf: URL(fileURLWithPath: p)) == bytes, "\(name) was modified")
        }
        // A note file that is not a p2mnote note is refused before anything is written.
        #expect(throws: (any Error).self) { _ = try NoteInjector(path: g.path).run(action: .add, note: Array(repeating: 0, count: 64)) }
    }
}

/// Spec 1.1: one note per domain. Adding, replacing and removing one domain's note leaves the
/// other domain's note byte for byte, in every container the injector writes; two notes for one
/// domain are refused by the reader.
@Suite(.serialized) struct PerDomainNoteTests {
    @Test(arguments: ["elf", "kdump", "xl"])
    func oneNotePerDomain(layout: String) throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g: GeneratedDump
        var path: String
        if layout == "xl" {
            var o = XLDumpOptions(); o.guestMiB = 128
            g = try DumpGenerator.generateXL(o, to: d + "/domU.xcore"); path = g.path
        } else {
            g = try dom0(d) { $0.dom0VMCoreInfo = true }
            path = g.path
            if layout == "kdump" { path = d + "/dom0.kdump"; try KdumpWriter.write(fromELF: g.path, to: path, KdumpWriteOptions()) }
        }
        func note(_ dom: UInt32) throws -> P2MNote { try emitNote(g) { $0.input = path; $0.domainID = dom }.note }
        let a = try note(3), b = try note(4)
        #expect(a.header.domainID == 3 && b.header.domainID == 4 && a.header.mapDigest == g.manifest.p2mDigest)
        let hash = try ContentHash.of(path: path)
        _ = try NoteInjector(path: path).run(action: .add, note: a.elfNoteBytes)
        _ = try NoteInjector(path: path).run(action: .add, note: b.elfNoteBytes)
        func found(_ dom: UInt32) throws -> [UInt8]? { try openDump(path: path).p2mNote(domain: dom).map { $0.desc } }
        #expect(try found(3) == a.descriptor && found(4) == b.descriptor, "\(layout): both notes readable by domain")
        #expect(try openDump(path: path).p2mNotes.count == 2)
        // The same domain twice: refused, nothing written.
        do { _ = try NoteInjector(path: path).run(action: .add, note: b.elfNoteBytes); Issue.record("\(layout): a second note for domain 4") }
        catch { #expect("\(error)".contains("already carries"), "\(error)") }
        // Replace domain 4's note (another map): domain 3's stays byte for byte.
        let enc = P2MEncoder(width: .eight)
        try enc.append(entries: [0x1234, 0x1235]); try enc.appendInvalid(count: 510)
        let b2 = try enc.finish(metadata: P2MNoteMetadata(source: .textTable, domainID: 4))
        _ = try NoteInjector(path: path).run(action: .replace, note: b2.elfNoteBytes)
        #expect(try found(3) == a.descriptor && found(4) == b2.descriptor, "\(layout): replace touched the other note")
        // Remove domain 4's: domain 3's is the only one left; no memory byte changed at any step.
        _ = try NoteInjector(path: path).run(action: .remove, note: nil, domain: 4)
        #expect(try found(3) == a.descriptor && found(4) == nil && openDump(path: path).p2mNotes.count == 1, "\(layout): remove")
        #expect(try ContentHash.of(path: path) == hash)
        // Without --domain, several notes and none for domain 0: the reader asks which.
        _ = try NoteInjector(path: path).run(action: .add, note: b.elfNoteBytes)
        do { _ = try openDump(path: path).p2mNote(); Issue.record("\(layout): picked one of two notes silently") }
        catch { #expect("\(error)".contains("--domain"), "\(error)") }
        requireTool("/usr/bin/readelf")
        if layout == "xl" {
            // Section-only file: readelf -n finds no notes there; one .note.p2mnote section holds both.
            let r = try runTool(["readelf", "-W", "-S", path])
            #expect(r.status == 0 && r.stdout.components(separatedBy: ".note.p2mnote").count - 1 == 1, "readelf -S: \(r.stdout) \(r.stderr)")
        } else if layout == "elf" {
            let r = try runTool(["readelf", "-W", "-n", path])
            #expect(r.status == 0 && r.stderr.isEmpty && r.stdout.components(separatedBy: "P2MNOTE-PV").count - 1 == 2, "readelf: \(r.stdout) \(r.stderr)")
        }
    }
}
