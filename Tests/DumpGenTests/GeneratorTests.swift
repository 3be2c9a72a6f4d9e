import Foundation
import Testing
import P2MFormat
import TestSupport
@testable import DumpGen

@Suite(.serialized) struct GeneratorTests {
    @Test func sameSeedSameBytes() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = Dom0DumpOptions(); o.guestMiB = 128; o.seed = 7
        _ = try DumpGenerator.generateDom0(o, to: d + "/a")
        _ = try DumpGenerator.generateDom0(o, to: d + "/b")
        #expect(FileManager.default.contentsEqual(atPath: d + "/a", andPath: d + "/b"))
        o.seed = 8
        _ = try DumpGenerator.generateDom0(o, to: d + "/c")
        #expect(!FileManager.default.contentsEqual(atPath: d + "/a", andPath: d + "/c"))
    }

    @Test(arguments: LayoutProfile.allCases)
    func layoutsAreConsistent(profile: LayoutProfile) throws {
        let free = [FrameRange(start: 0x100, count: 0x7000), FrameRange(start: 0x20000, count: 0x30000)]
        let l = try P2MLayout.generate(profile: profile, guestPages: 0x9000, nrPfns: 1 << 20, free: free, width: .eight, seed: 3)
        #expect(l.nrPfns == 1 << 20)
        let e = l.allEntries()
        // Every mfn used once and inside the free ranges.
        var seen = Set<UInt64>()
        for v in e where P2MEntry(raw: v).kind == .mfn {
            #expect(seen.insert(v).inserted)
            #expect(free.contains { v >= $0.start && v < $0.end })
        }
        // Guest RAM is 0x9000 pages: each one has a frame, or (ballooned) was released and
        // reads INVALID inside the RAM range; only the ballooned profile releases any.
        let lastMfn = e.lastIndex { P2MEntry(raw: $0).kind == .mfn } ?? 0
        let released = e[0..<lastMfn].filter { $0 == .max }.count
        #expect(seen.count + released == 0x9000, "\(seen.count) frames + \(released) released")
        #expect((released > 0) == (profile == .ballooned), "\(profile): \(released) released pages")
        for p in stride(from: 0, to: e.count, by: 997) { #expect(l.entry(at: UInt64(p)).raw == e[p]) }
        if profile == .dom0 { #expect(P2MEntry(raw: e[0xa0]).kind == .identity) }
    }

    @Test func readelfAndEuReadelfAcceptTheVmcore() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = Dom0DumpOptions(); o.guestMiB = 256; o.dom0VMCoreInfo = true
        let g = try DumpGenerator.generateDom0(o, to: d + "/dom0.vmcore")
        requireTool("/usr/bin/readelf"); requireTool("/usr/bin/eu-readelf")
        let r = try runTool(["readelf", "-W", "-n", "-l", g.path])
        #expect(r.status == 0 && r.stderr.isEmpty, "readelf: \(r.stderr)")
        #expect(r.stdout.contains("VMCOREINFO_XEN") && r.stdout.contains("NT_PRSTATUS") && r.stdout.contains("VMCOREINFO "))
        let e = try runTool(["eu-readelf", "-n", g.path])
        #expect(e.status == 0 && e.stderr.isEmpty, "eu-readelf: \(e.stderr)")
        #expect(e.stdout.contains("VMCOREINFO_XEN"))
    }

    @Test(arguments: [LayoutProfile.dom0, .ballooned, .fragmented])
    func libkdumpfileReadsTheSamples(profile: LayoutProfile) throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = Dom0DumpOptions(); o.guestMiB = 256; o.profile = profile; o.seed = 11
        let g = try DumpGenerator.generateDom0(o, to: d + "/dom0.vmcore")
        requireTool("/usr/bin/python3")
        let r = try runTool(["/usr/bin/python3", "-c", libkdumpfileSampleScript, g.path, g.manifestPath])
        #expect(r.status == 0, "libkdumpfile failed: \(r.stderr)")
        #expect(r.stdout.contains("format elf") && r.stdout.contains("bad 0"), "\(r.stdout)")
    }

    @Test func crashPrintsTheOsRelease() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = Dom0DumpOptions(); o.guestMiB = 128; o.dom0VMCoreInfo = true
        let g = try DumpGenerator.generateDom0(o, to: d + "/dom0.vmcore")
        requireTool("/usr/bin/crash")
        let r = try runTool(["crash", "--osrelease", g.path])
        #expect(r.stdout.contains(o.kernel.release), "crash --osrelease: \(r.stdout) \(r.stderr)")
    }

    @Test func xlDumpCoreOpensInLibkdumpfileAndReadelf() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = XLDumpOptions(); o.guestMiB = 128
        let g = try DumpGenerator.generateXL(o, to: d + "/domU.xcore")
        let r = try runTool(["readelf", "-W", "-S", g.path])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
        #expect(r.stdout.contains(".xen_p2m") && r.stdout.contains(".xen_pages") && r.stdout.contains(".note.Xen"))
        let py = try runTool(["/usr/bin/python3", "-c", "import kdumpfile,sys; k=kdumpfile.kdumpfile(sys.argv[1]); print(k.attr['file.format'], k.attr['xen.type'])", g.path])
        #expect(py.stdout.contains("xc_core_elf"), "\(py.stdout) \(py.stderr)")
    }
}
