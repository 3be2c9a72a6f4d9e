import DumpGen
import DumpIO
import Foundation
import GuestReader
import P2MFormat
import Testing
import TestSupport
import Translation
@testable import P2MTools

/// Generated crashed-host dumps (p2m-gendump host): every guest found from Xen's tables, each
/// one's note, reading each guest, p2m-extract, makedumpfile's Xen mode, and hostile tables.
/// Expected values come from the generator's manifests (what it laid out), never from the reader.
@Suite(.serialized) struct HostDumpTests {
    static func host(_ d: String, _ edit: (inout HostDumpOptions) -> Void = { _ in }) throws -> GeneratedHost {
        var o = HostDumpOptions(); o.seed = 3
        edit(&o)
        return try DumpGenerator.generateHost(o, to: d + "/host.vmcore")
    }

    func domainRows(_ path: String, scan: Bool = false) throws -> [[String: Any]] {
        let s = try GuestSession(GuestOptions(dump: path))
        return try #require((try s.execute(["domains"] + (scan ? ["--scan"] : [])).json as? [String: Any])?["domains"] as? [[String: Any]])
    }

    @Test func domainsNotesAndReadingEachGuest() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let h = try Self.host(d)
        let rows = try domainRows(h.path)
        func hx(_ v: UInt64?) -> String? { v.map { "0x" + String($0, radix: 16) } }
        for g in h.manifest.guests {
            let r = try #require(rows.first { $0["id"] as? Int == Int(g.domainID) && $0["system"] as? Bool == false }, "domain \(g.domainID) not found")
            #expect(r["pages"] as? Int == Int(g.pages) && r["pv"] as? Bool == true, "dom\(g.domainID): \(r)")
            #expect(r["fllMfn"] as? String == hx(g.fllMfn) && r["p2mCr3"] as? String == hx(g.cr3) && r["maxPfn"] as? String == hx(g.maxPfn))
            #expect(r["sharedInfoMfn"] as? String == hx(g.sharedInfoMfn) && r["address"] as? String == hx(g.domainAddress))
        }
        #expect(rows.filter { $0["system"] as? Bool == true }.count == 2)
        // Each guest's note: the generator's map, agreeing with its frame tree and Xen's M2P.
        var notes: [[UInt8]] = []
        for (g, gd) in zip(h.manifest.guests, h.guests) {
            var o = EmitOptions(input: h.path); o.guest.domain = g.domainID; o.guest.systemMap = g.systemMap
            let r = try Emitter.emit(o)
            #expect(r.note.header.mapDigest == g.p2mDigest && r.note.header.domainID == UInt32(g.domainID), "dom\(g.domainID)")
            #expect(try independentMapDigest(ofElfNote: r.note.elfNoteBytes) == g.p2mDigest, "dom\(g.domainID): the C decoder's digest")
            #expect(r.summary.crossCheck?.agrees == true && r.summary.crossCheck?.comparisons.map(\.source) == [.frameTree, .xenM2P], "\(String(describing: r.summary.crossCheck))")
            // The M2P alone: the same frames below max_pfn (identity reads INVALID there).
            var m = o; m.from = .auto; m.guest.systemMap = nil
            let bare = try P2MNote.decode(descriptor: try Emitter.emit(m).note.descriptor).map
            let full = try P2MNote.decode(descriptor: r.note.descriptor).map
            var differ = 0
            for p in 0..<bare.nrPfns where bare.entry(PFN(rawValue: p)) != full.entry(PFN(rawValue: p)) { differ += 1 }
            #expect(bare.nrPfns == g.maxPfn && differ == 0, "dom\(g.domainID): \(differ) pfns differ without symbols")
            notes.append(r.note.elfNoteBytes)
            _ = gd
        }
        let hash = try ContentHash.of(path: h.path)
        for n in notes { _ = try NoteInjector(path: h.path).run(action: .add, note: n) }
        #expect(try ContentHash.of(path: h.path) == hash && openDump(path: h.path).p2mNotes.count == notes.count)
        // check with no --domain: every note, each against its own guest's tables (exit 2 if any fails).
        var every = GuestOptions(dump: h.path); every.guest.systemMap = h.manifest.guests.first { $0.domainID == 0 }?.systemMap
        let all = try GuestSession(every).execute(["check"])
        let checked = ((all.json as? [String: Any])?["notes"] as? [[String: Any]]) ?? []
        #expect(all.exitCode == 0 && checked.count == notes.count && checked.allSatisfy { $0["ok"] as? Bool == true }, "\(all.text)")
        // One guest's note made wrong (three made-up frames): that one fails, the check exits 2.
        if let victim = h.manifest.guests.first(where: { $0.domainID != 0 }) {
            let enc = P2MEncoder(width: .eight)
            try enc.append(entries: [0x12345, 0x12346, 0x12347])
            let bad = try enc.finish(metadata: P2MNoteMetadata(source: .textTable, domainID: UInt32(victim.domainID)))
            let copy = d + "/wrong-note.vmcore"
            #expect(try runTool(["cp", "--sparse=always", h.path, copy]).status == 0)
            _ = try NoteInjector(path: copy).run(action: .replace, note: bad.elfNoteBytes)
            every.dump = copy
            let w = try GuestSession(every).execute(["check"])
            let wr = ((w.json as? [String: Any])?["notes"] as? [[String: Any]]) ?? []
            #expect(w.exitCode == 2 && wr.filter { $0["ok"] as? Bool == false }.compactMap { $0["domain"] as? Int } == [Int(victim.domainID)], "\(w.text)")
        }
        for (g, gd) in zip(h.manifest.guests, h.guests) {
            var a = GuestOptions(dump: h.path); a.guest.domain = g.domainID; a.guest.systemMap = g.systemMap
            let s = try GuestSession(a)
            #expect(try s.p2m().source.name == .note && s.execute(["check"]).exitCode == 0)
            #expect(try s.execute(["banner"]).text == gd.manifest.banner)
            #expect(moduleRows(try s.execute(["mod"])).count == gd.manifest.modules.count)
            for smp in gd.manifest.samples.prefix(16) {
                let v = try s.execute(["rd", String(smp.vaddr, radix: 16), "2"]).json as? [String: Any]
                #expect((v?["hex"] as? String)?.hasPrefix(String(smp.bytes.prefix(32))) == true, "dom\(g.domainID): \(smp.what)")
            }
            // A reader nobody here wrote: libkdumpfile reads each guest out of the host dump through its cr3.
            requireTool("/usr/bin/python3")
            let py = try runTool(["/usr/bin/python3", "-c", libkdumpfileSampleScript, h.path, gd.manifestPath])
            #expect(py.stdout.contains("bad 0"), "dom\(g.domainID) libkdumpfile: \(py.stdout) \(py.stderr)")
        }
    }

    @Test func extractedGuestsAndMakedumpfilesXenMode() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let h = try Self.host(d)
        for (g, gd) in zip(h.manifest.guests, h.guests) where g.domainID != 0 {
            let out = d + "/dom\(g.domainID).xcore"
            let sum = try Extractor.extract(dump: h.path, domain: g.domainID, output: out, systemMap: g.systemMap, vmlinux: nil, force: false)
            #expect(sum.pagesWritten == g.pages && sum.pagesNotInDump == 0)
            var o = EmitOptions(input: out); o.guest.systemMap = g.systemMap
            let r = try Emitter.emit(o)
            #expect(r.note.header.mapDigest == g.p2mDigest && r.summary.crossCheck?.agrees == true, "dom\(g.domainID) from the extracted file")
            let py = try runTool(["/usr/bin/python3", "-c", libkdumpfileSampleScript, out, gd.manifestPath])
            #expect(py.stdout.contains("bad 0") && py.stdout.contains("xc_core"), "libkdumpfile on the extracted file: \(py.stdout) \(py.stderr)")
        }
        // makedumpfile's Xen mode accepts the host dump; with -X it drops the domUs' pages, which
        // then read as excluded, and a domU's note still comes from Xen's tables (said).
        requireTool("/usr/bin/makedumpfile")
        let e = try runTool(["makedumpfile", "-E", "-X", "-d", "0", h.path, d + "/X.vmcore"])
        #expect(e.status == 0, "makedumpfile -E -X: \(e.stderr.suffix(400))")
        let g1 = try #require(h.manifest.guests.first { $0.domainID == 1 })
        var o = EmitOptions(input: d + "/X.vmcore"); o.guest.domain = 1
        let r = try Emitter.emit(o)
        #expect(r.summary.source.contains("M2P") && !r.summary.fallbacks.isEmpty, "\(r.summary.source) \(r.summary.fallbacks)")
        #expect(r.summary.fallbacks.allSatisfy { $0.reason.contains("excluded by makedumpfile") || $0.reason.contains("not in the dump") }, "\(r.summary.fallbacks)")
        #expect(r.summary.counts.mfn == g1.pages)
    }

    /// PDX compression on (RAM above 3 GiB from 64 GiB up: pfn bits 20–23 unused, squeezed out
    /// of the frame table and the direct map): inferred from Xen's direct map, every guest found
    /// and rebuilt as the generator laid it out.
    @Test func pdxCompressedHost() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let h = try Self.host(d) {
            $0.machineMiB = 4096; $0.pdxHole = (bottom: 20, bits: 4)
            $0.guests = [HostGuestSpec(domainID: 0, mib: 512, profile: .dom0), HostGuestSpec(domainID: 1, mib: 256, profile: .fragmented),
                         HostGuestSpec(domainID: 2, mib: 192, profile: .ballooned)]
        }
        #expect(h.manifest.pdxBits == 4 && h.manifest.maxPage > 1 << 24 && h.manifest.maxPdx < 1 << 21)
        let s = try GuestSession(GuestOptions(dump: h.path))
        let out = try s.execute(["domains"])
        #expect(out.text.contains("pfn bits 20–23"), Comment(rawValue: out.text))
        let rows = try #require((out.json as? [String: Any])?["domains"] as? [[String: Any]])
        for g in h.manifest.guests {
            let r = try #require(rows.first { $0["id"] as? Int == Int(g.domainID) && $0["system"] as? Bool == false })
            #expect(r["pages"] as? Int == Int(g.pages) && r["address"] as? String == "0x" + String(g.domainAddress, radix: 16), "dom\(g.domainID): \(r)")
            var o = EmitOptions(input: h.path); o.guest.domain = g.domainID; o.guest.systemMap = g.systemMap
            let e = try Emitter.emit(o)
            #expect(e.note.header.mapDigest == g.p2mDigest && e.summary.crossCheck?.agrees == true, "dom\(g.domainID): \(String(describing: e.summary.crossCheck))")
        }
        let scan = try s.execute(["domains", "--scan"])
        let srows = try #require((scan.json as? [String: Any])?["domains"] as? [[String: Any]])
        for g in h.manifest.guests { #expect(srows.first { $0["id"] as? Int == Int(g.domainID) }?["pages"] as? Int == Int(g.pages), "scan dom\(g.domainID)") }
        let py = try runTool(["/usr/bin/python3", "-c", libkdumpfileSampleScript, h.path, h.guests[1].manifestPath])
        #expect(py.stdout.contains("bad 0"), "libkdumpfile: \(py.stdout) \(py.stderr)")
    }

    /// Hostile Xen tables: each a clear error (or, for orphaned frames, a warning), never a trap or a hang.
    @Test func hostileXenTables() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let h = try Self.host(d) { $0.guests = [HostGuestSpec(domainID: 0, mib: 128, profile: .dom0), HostGuestSpec(domainID: 4, mib: 128, profile: .scattered)]; $0.machineMiB = 1024 }
        let clean = try Data(contentsOf: URL(fileURLWithPath: h.path))
        let dump = try DumpFile.open(path: h.path)
        func patch(machine a: UInt64, _ v: UInt64, _ body: () throws -> Void) throws {
            let l = try #require(dump.loads.first { a >= $0.paddr && a + 8 <= $0.paddr + $0.filesz })
            let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: h.path))
            try fh.seek(toOffset: l.offset + a - l.paddr); fh.write(Data(withUnsafeBytes(of: v.littleEndian) { Array($0) })); try fh.close()
            defer { try? clean.write(to: URL(fileURLWithPath: h.path)) }
            try body()
        }
        func expectError(_ what: String, _ needle: String, scan: Bool = false) {
            do { _ = try domainRows(h.path, scan: scan); Issue.record("\(what): no error") }
            catch { #expect("\(error)".contains(needle), "\(what): \(error)") }
        }
        let dm = XenLayout.directMapStart
        let first = h.manifest.guests[0], dom4 = h.manifest.guests[1]
        // next_in_list (offset 136) of the last domain back to the first: a loop.
        try patch(machine: (dom4.domainAddress - dm) + 136, first.domainAddress) { expectError("loop", "loops back") }
        // ... and to an address outside the direct map.
        try patch(machine: (dom4.domainAddress - dm) + 136, 0xffff_8880_0000_0000) { expectError("outside", "outside Xen's direct map") }
        // The frame table's first 2 MiB unmapped in Xen's page tables: the table is not all readable.
        let ftL2Entry = try XenHost(dump: openDump(path: h.path)).pageTables.walk(KVAddr(rawValue: 0xffff_82e0_0000_0000)).steps.first { $0.level == 2 }
        let step = try #require(ftL2Entry)
        try patch(machine: step.tableMFN.rawValue << 12 + UInt64(step.index) * 8, 0) {
            expectError("frame table", "frame table is not all in the dump", scan: true)
            // The M2P rebuild says which frames it could not see, never a silent hole.
            let host = try XenHost(dump: openDump(path: h.path))
            let m = try XenM2PSource.rebuild(host: host, domain: host.domain(4))
            #expect(m.incomplete.first?.contains("not in the dump for 65536 machine frames (first 0x0+65536)") == true, "\(m.incomplete)")
        }
        // A guest frame whose owner is no domain: counted as an orphan, said; the guest has one page fewer.
        let someFrame = try #require(h.guests[1].manifest.samples.first).mfn
        try patch(machine: (h.manifest.frameTableMfn << 12) + someFrame * 32 + 24, 0x12345) {
            let s = try GuestSession(GuestOptions(dump: h.path))
            let out = try s.execute(["domains", "--scan"])
            #expect(out.text.contains("frame table scan") && out.text.contains("1 allocated frames name an owner that is in no domain list"), Comment(rawValue: out.text))
            let rows = try #require((out.json as? [String: Any])?["domains"] as? [[String: Any]])
            #expect(rows.first { $0["id"] as? Int == 4 }?["pages"] as? Int == Int(dom4.pages) - 1)
        }
        // A domain that does not exist.
        var o = EmitOptions(input: h.path); o.guest.domain = 9
        do { _ = try Emitter.emit(o); Issue.record("domain 9 emitted") } catch { #expect("\(error)".contains("no domain 9") && "\(error)".contains("0, 4"), "\(error)") }
        // A dump with no VMCOREINFO_XEN: `domains` says what is missing.
        let g = try dom0(d, "plain.vmcore") { $0.vmcoreinfoXen = false }
        do { _ = try domainRows(g.path); Issue.record("domains on a dump without VMCOREINFO_XEN") }
        catch { #expect("\(error)".contains("no VMCOREINFO_XEN"), "\(error)") }
    }
}
