import DumpIO
import Foundation
import GuestReader
import Testing
import TestSupport
import Translation

/// Struct layouts on the real dumps of both sets (Debian 12: Xen 4.17, Linux 6.1; Debian 13: Xen
/// 4.20, Linux 6.12), each judged by a source independent of the code that reads it: the tables
/// were read with gdb's ptype/o from the builds' debug files, the counts are what `xl list` and
/// /proc/modules said on the running machine.
@Suite(.enabled(if: haveRealDump, "SKIPPED LOUDLY: no real dump in $P2M_REAL_DUMP_DIR (run make real-dumps)"), .serialized)
struct LayoutTests {
    /// /proc/modules as recorded: "name size base".
    func recordedModules(_ dir: String = realDir + "/ground-truth") throws -> [String] {
        let text = try String(contentsOfFile: dir + "/modules.txt", encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count >= 6, let base = UInt64(f[5].dropFirst(2), radix: 16) else { return nil }
            return "\(f[0]) \(f[1]) \(base)"
        }
    }

    /// struct module from the kernel's own BTF in the dump equals the table entry kept for the
    /// build (what a BTF-less copy of it uses), and from the vmlinux's DWARF too; mod through each
    /// equals /proc/modules.
    @Test func moduleLayoutFromBTFAndDWARFEqualsTheVerifiedTable() throws {
        var o = GuestOptions(dump: realVmcore); o.guest.systemMap = realMap
        let s = try GuestSession(o)
        let fromBTF = try s.moduleLayout()
        #expect(fromBTF.source.contains("BTF"), "\(fromBTF.source)")
        let table = try #require(GuestSession.verifiedModuleLayout(try s.kernel()), "this build is the table's")
        func same(_ a: ModuleLayout, _ b: ModuleLayout) -> Bool { a.list == b.list && a.name == b.name && a.nameLength == b.nameLength && a.memory == b.memory }
        #expect(same(fromBTF, table), "BTF \(fromBTF) vs table \(table)")
        let want = try recordedModules()
        let viaBTF = try s.kernel().modules(fromBTF).map { "\($0.name) \($0.size) \($0.base.rawValue)" }
        #expect(!want.isEmpty && viaBTF == want)
        if FileManager.default.fileExists(atPath: realDir + "/vmlinux") {
            var ov = GuestOptions(dump: realVmcore); ov.guest.vmlinux = realDir + "/vmlinux"
            let sv = try GuestSession(ov)
            let fromDWARF = try sv.moduleLayout()
            #expect(fromDWARF.source.hasPrefix("DWARF of") && same(fromDWARF, table), "DWARF \(fromDWARF) vs table \(table)")
            let viaDWARF = try sv.kernel().modules(fromDWARF).map { "\($0.name) \($0.size) \($0.base.rawValue)" }
            #expect(viaDWARF == want)
        } else { FileHandle.standardError.write(Data("LOUD: no vmlinux in \(realDir): struct module from DWARF not checked\n".utf8)) }
    }

    /// With the dump alone (no System.map, no vmlinux): the kernel's kallsyms, found through the
    /// VMCOREINFO text in its memory, give the symbols; every text, data and bss symbol of the
    /// real System.map has the same address there, and mod and banner answer as the machine did.
    @Test func symbolsFromTheDumpAlone() throws {
        let s = try GuestSession(GuestOptions(dump: realVmcore))
        #expect(s.symbolsOrigin?.contains("kallsyms") == true, "\(String(describing: s.symbolsOrigin))")
        let map = try String(contentsOfFile: realMap, encoding: .utf8)
        var checked = 0, differ: [String] = []
        let lines = map.split(separator: "\n").map { $0.split(separator: " ") }.filter { $0.count == 3 }
        // Names that occur once (static functions of the same name in several files are kept once).
        var seen: [Substring: Int] = [:]
        for f in lines { seen[f[2], default: 0] += 1 }
        for f in lines {
            guard "TtDdBbRr".contains(f[1]), seen[f[2]] == 1, let a = UInt64(f[0], radix: 16), a >= 0xffff_ffff_8000_0000,
                  !f[2].hasPrefix("__"), !f[2].contains(".") else { continue }
            checked += 1
            if let got = s.symbols.address(String(f[2])), got.rawValue != a { differ.append("\(f[2]) \(got) vs \(f[0])") }
        }
        #expect(checked > 50_000 && differ.isEmpty, "\(differ.count) of \(checked) differ: \(differ.prefix(5))")
        // mod and banner with the dump alone, on every guest of the set: dom0, the xl dump-core,
        // each domU of the host dump.
        var guests: [(dump: String, domain: UInt16?, truth: String)] = [("dom0.vmcore", nil, "ground-truth")]
        if FileManager.default.fileExists(atPath: realDir + "/domU.xcore") { guests.append(("domU.xcore", nil, "ground-truth/domU")) }
        if FileManager.default.fileExists(atPath: realDir + "/host.vmcore") {
            for (n, id) in [("domu1", UInt16(1)), ("domu2", UInt16(2))] { guests.append(("host.vmcore", id, "ground-truth/host/" + n)) }
        }
        for g in guests {
            var o = GuestOptions(dump: realDir + "/" + g.dump); o.guest.domain = g.domain
            let s = try GuestSession(o)
            let uname = try String(contentsOfFile: realDir + "/" + g.truth + "/uname.txt", encoding: .utf8)
            let banner = try s.execute(["banner"]).text
            #expect(uname.split(separator: " ").dropFirst(2).first.map { banner.contains(" \($0) ") } == true, "\(g): \(banner) vs \(uname)")
            let rows = try #require((try s.execute(["mod"]).json as? [String: Any])?["modules"] as? [[String: Any]])
            let got = rows.compactMap { r -> String? in
                guard let n = r["name"] as? String, let z = r["size"] as? Int, let b = (r["base"] as? String).flatMap({ UInt64($0.dropFirst(2), radix: 16) }) else { return nil }
                return "\(n) \(z) \(b)"
            }
            let recorded = try recordedModules(realDir + "/" + g.truth)
            #expect(!recorded.isEmpty && got == recorded, "\(g)")
            let info = try #require(try s.execute(["info"]).json as? [String: Any])
            #expect((info["symbols"] as? String)?.contains("kallsyms") == true, "\(g): \(info["symbols"] ?? "none")")
        }
    }

    /// Xen's struct domain and struct vcpu: from xen-syms' DWARF (Debian 13's -dbg has it) equal to
    /// the table entry for the build; through either, every guest's pages equal the frame table's
    /// and `xl list`'s memory, and every vCPU points back at its domain.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: realDir + "/host.vmcore"), "no real host dump"))
    func xenStructLayoutOnTheHostDump() throws {
        let dump = try openDump(path: realDir + "/host.vmcore")
        let build = try #require(XenStructLayout.Build(dump: dump))
        let table = try #require(XenStructLayout.verified(for: build), "\(build) is in the table")
        if DWARFTypesAvailable.xenSyms {
            var fromDWARF = try XenStructLayout(types: try DWARFTypes(path: realDir + "/xen-syms"))
            fromDWARF.source = table.source
            #expect(fromDWARF == table, "DWARF \(fromDWARF) vs table \(table)")
        } else {
            FileHandle.standardError.write(Data("LOUD: no xen-syms with DWARF in \(realDir) (Debian's 4.17 -dbg ships only the map): the table was checked by counts only\n".utf8))
        }
        let host = try XenHost(dump: dump)
        #expect(host.structLayout == table)
        let fast = try host.domains()
        #expect(host.domainsMethod.hasPrefix("struct domain"), "\(host.domainsMethod)")
        let scan = try XenHost(dump: dump).domains(scan: true)
        let xl = try String(contentsOfFile: realDir + "/ground-truth/host/xl-list.txt", encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        for f in xl {
            let id = try #require(Int(f[1])), mib = try #require(UInt64(f[2]))
            let a = try #require(fast.first { Int($0.id) == id }), b = try #require(scan.first { Int($0.id) == id })
            #expect(a.pages == b.pages && a.pages == mib * 256, "domain \(id): struct \(a.pages), frame table \(b.pages), xl list \(mib) MiB")
            if id != 0 {
                let v = try #require(try host.vcpus(of: a), "domain \(id)'s vCPUs")
                #expect(v.count == 1 && v[0].id == 0 && v[0].guestTableMfn != 0)
            }
        }
        // A table without this build: refused, both builds named, the frame table scanned.
        let others = XenStructLayout.verified.filter { $0.build != build }
        #expect(!others.isEmpty, "the other release's build is in the table")
        let without = try XenHost(dump: dump, table: others)
        #expect(without.structLayout == nil)
        _ = try without.domains()
        let said = without.domainsMethod
        #expect(said.hasPrefix("frame table scan") && said.contains(build.description) && others.allSatisfy { said.contains($0.build.description) }, "\(said)")
        let noVCPUs = try without.vcpus(of: fast[0])
        #expect(noVCPUs == nil)
    }

    /// The other release's vmlinux, System.map and xen-syms given to this set's dumps: each refused
    /// with a message naming both builds (the other's from its banner, this one's from the
    /// VMCOREINFO in the dump's memory, or Xen's version from its crash info).
    @Test(.enabled(if: otherRealDir != nil, "LOUD: no other release's set ($P2M_REAL_DUMP_OTHER_DIR): the mismatch checks did not run"))
    func anotherBuildsFilesAreRefusedNamingBoth() throws {
        let other = try #require(otherRealDir)
        func release(_ dir: String) throws -> String {
            String(try String(contentsOfFile: dir + "/ground-truth/uname.txt", encoding: .utf8).split(separator: " ")[2])
        }
        let mine = try release(realDir), theirs = try release(other)
        var o = GuestOptions(dump: realVmcore); o.guest.vmlinux = other + "/vmlinux"
        do { _ = try GuestSession(o).execute(["mod"]); Issue.record("another build's vmlinux was accepted") } catch {
            #expect("\(error)".contains(mine) && "\(error)".contains(theirs), "\(error)")
        }
        var m = GuestOptions(dump: realVmcore); m.guest.systemMap = other + "/System.map"
        do { _ = try GuestSession(m).execute(["mod"]); Issue.record("another build's System.map was accepted") } catch {
            #expect("\(error)".contains(mine), "\(error)")
        }
        guard FileManager.default.fileExists(atPath: realDir + "/host.vmcore"), FileManager.default.fileExists(atPath: other + "/xen-syms.map") else { return }
        let dump = try openDump(path: realDir + "/host.vmcore")
        let build = try #require(XenStructLayout.Build(dump: dump))
        do { _ = try XenHost.open(dump: dump, xenSyms: other + "/xen-syms.map"); Issue.record("another Xen's symbols were accepted") } catch {
            #expect("\(error)".contains("another Xen build's") && "\(error)".contains("Xen \(build.major).\(build.minor)"), "\(error)")
        }
    }
}

enum DWARFTypesAvailable {
    static var xenSyms: Bool {
        guard FileManager.default.fileExists(atPath: realDir + "/xen-syms") else { return false }
        return (try? DWARFTypes(path: realDir + "/xen-syms")) != nil
    }
}
