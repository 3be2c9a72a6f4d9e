import DumpGen
import DumpIO
import Foundation
import GuestReader
import P2MFormat
import Testing
import TestSupport
@testable import P2MTools

func session(_ g: GeneratedDump, _ edit: (inout GuestOptions) -> Void = { _ in }) throws -> GuestSession {
    var o = GuestOptions(dump: g.path); o.guest.systemMap = g.systemMapPath
    edit(&o)
    return try GuestSession(o)
}

@Suite(.serialized) struct AnalyzeTests {
    /// The seed's case: the p2m list in vmalloc space, a module struct at 0xffffffffa003a040.
    @Test func seedCaseModulesAndModuleStruct() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        _ = try NoteInjector(path: g.path).run(action: .add, note: emitNote(g).note.elfNoteBytes)
        #expect(g.manifest.modules.contains { $0.structAddress == 0xffffffffa003a040 })
        let s = try session(g)
        let mods = moduleRows(try s.execute(["mod"]))
        #expect(mods.compactMap { $0["name"] as? String } == g.manifest.modules.map(\.name))
        #expect(mods.compactMap { $0["base"] as? String } == g.manifest.modules.map { "0x" + String($0.base, radix: 16) })
        let rd = try s.execute(["rd", "0xffffffffa003a040", "4"]).json as? [String: Any]
        #expect((rd?["hex"] as? String)?.contains(Array("ext4".utf8).map { String(format: "%02x", $0) }.joined()) == true)
        let info = try s.execute(["info"]).text
        #expect(info.contains("p2mnote note"), "\(info)")
        #expect(s.machineReads < 200, "\(s.machineReads) machine reads")
        // Every sample reads right, by virtual and by pseudo-physical address; m2p and vtop agree.
        for smp in g.manifest.samples {
            let n = smp.bytes.count / 16
            let v = try s.execute(["rd", "0x" + String(smp.vaddr, radix: 16), "\(max(1, n))"]).json as? [String: Any]
            #expect((v?["hex"] as? String)?.hasPrefix(String(smp.bytes.prefix(16 * max(1, n)))) == true, "\(smp.what)")
            let paddr = (smp.pfn << 12) | (smp.vaddr & 0xfff)
            let p = try s.execute(["rd", "-p", "0x" + String(paddr, radix: 16), "1"]).json as? [String: Any]
            #expect((p?["hex"] as? String) == String(smp.bytes.prefix(16)), "\(smp.what) by pfn")
            #expect(try s.execute(["m2p", "0x" + String(smp.mfn, radix: 16)]).text.contains("pfn 0x" + String(smp.pfn, radix: 16)))
            #expect(try s.execute(["vtop", "0x" + String(smp.vaddr, radix: 16)]).text.contains("mfn 0x" + String(smp.mfn, radix: 16)))
        }
        #expect(try s.execute(["banner"]).text == g.manifest.banner)
        #expect(try s.execute(["check"]).exitCode == 0)
    }

    @Test func withoutNoteAndCrashInfoWorksFromCr3WithBoundedReads() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d) { $0.crashInfo = false }
        let s = try session(g)
        let mods = moduleRows(try s.execute(["mod"]))
        #expect(mods.count == g.manifest.modules.count)
        #expect(try s.execute(["p2m", "0x100"]).text.contains("linear list"))
        #expect(s.machineReads < 2_000, "\(s.machineReads) machine reads")
        // With crash regs gone too: a clear error, after a bounded number of reads.
        let g2 = try dom0(d, "b.vmcore") { $0.crashInfo = false; $0.crashRegs = false }
        let s2 = try session(g2)
        do { _ = try s2.execute(["mod"]); Issue.record("expected an error") } catch { #expect("\(error)".contains("--cr3")) }
        do { _ = try s2.execute(["p2m", "1"]); Issue.record("expected an error") } catch { #expect("\(error)".contains("no p2m source")) }
        #expect(s2.machineReads < 10, "\(s2.machineReads) machine reads")
    }

    @Test func checkCatchesANoteFromAnotherGuest() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        let other = try dom0(d, "other.vmcore") { $0.seed = 99 }
        _ = try NoteInjector(path: g.path).run(action: .add, note: emitNote(other).note.elfNoteBytes)
        let out = try session(g).execute(["check"])
        #expect(out.exitCode == 2 && out.text.contains("DIFFERS"), "\(out.text)")
        // A note corrupted inside the dump is reported with its rule (15: digest).
        _ = try NoteInjector(path: g.path).run(action: .remove, note: nil)
        _ = try NoteInjector(path: g.path).run(action: .add, note: emitNote(g).note.elfNoteBytes)
        let n = try #require(try DumpFile.open(path: g.path).p2mNote())
        var desc = n.desc
        desc[0x68] ^= 1                                  // map_digest
        for i in 0x98..<0xA0 { desc[i] = 0 }
        let sum = XXH64.hash(Array(desc[0..<160]))
        for i in 0..<8 { desc[0x98 + i] = UInt8(truncatingIfNeeded: sum >> (8 * UInt64(i))) }
        let fh = try #require(FileHandle(forUpdatingAtPath: g.path))
        try fh.seek(toOffset: n.fileOffset + 24); fh.write(Data(desc)); try fh.close()
        let bad = try session(g).execute(["check"])
        #expect(bad.exitCode == 2 && bad.text.contains("INVALID (rule 15)"), "\(bad.text)")
        #expect((bad.json as? [String: Any])?["rule"] as? Int == 15)
        // info says the note does not decode instead of using it.
        do { _ = try session(g).execute(["p2m", "0"]); Issue.record("a corrupt note was used") } catch {
            #expect("\(error)".contains("digest"), "\(error)")
        }
    }

    @Test func commandLineScriptAndJSON() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        let bin = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/p2m-analyze").path
        guard FileManager.default.isExecutableFile(atPath: bin) else { Issue.record("p2m-analyze not built at \(bin)"); return }
        let r = try runTool([bin, g.path, "--system-map", g.systemMapPath, "-"], stdin: "banner\nsym modules\nvtop linux_banner --json\nbogus\n")
        #expect(r.stdout.contains("Linux version") && r.stdout.contains("modules") && r.stdout.contains("\"steps\""))
        #expect(r.status != 0 && r.stderr.contains("unknown command bogus"))
        let one = try runTool([bin, g.path, "--system-map", g.systemMapPath, "p2m", "0xa0", "--json"])
        #expect(one.status == 0 && one.stdout.contains("\"identity\""), "\(one.stdout)\(one.stderr)")
    }
}

func moduleRows(_ o: CommandOutput) -> [[String: Any]] { (o.json as? [String: Any])?["modules"] as? [[String: Any]] ?? [] }
