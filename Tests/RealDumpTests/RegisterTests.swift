import Foundation
import GuestReader
import P2MFormat
import Testing
import TestSupport
import Translation

/// The guest's registers at the crash (`regs`) on the real dumps, judged by Linux's own answer:
/// the panicking CPU (panic_cpu, read from the guest) must have a running set, every set's rip
/// must be kernel text and each guest CPU must appear once. drgn's unwind from these sets into
/// panic() and sysrq_handle_crash is checked in python/tests/test_real_dumps.py.
@Suite(.enabled(if: haveRealDump, "SKIPPED LOUDLY: no real dump in $P2M_REAL_DUMP_DIR (run make real-dumps)"), .serialized)
struct RegisterTests {
    func sets(_ dump: String, domain: UInt16? = nil) throws -> (GuestSession, [[String: Any]]) {
        var o = GuestOptions(dump: realDir + "/" + dump); o.guest.systemMap = realMap; o.guest.domain = domain
        let s = try GuestSession(o)
        let r = try s.execute(["regs"])
        let cpus = try #require((r.json as? [String: Any])?["cpus"] as? [[String: Any]], "regs --json: \(r.text)")
        return (s, cpus)
    }

    func checkSets(_ cpus: [[String: Any]], _ what: String) {
        #expect(!cpus.isEmpty, "\(what): no register set")
        let ids = cpus.compactMap { $0["cpu"] as? Int }
        #expect(ids.count == cpus.count && Set(ids).count == ids.count, "\(what): CPUs \(ids)")
        for c in cpus {
            #expect(c["ripSymbol"] is String, "\(what): rip \(c["rip"] ?? "?") is no kernel symbol")
            let cs = ((c["registers"] as? [String: Any])?["cs"] as? String).flatMap { UInt64($0.dropFirst(2), radix: 16) } ?? 0
            #expect(cs & 3 == 3, "\(what): cs \(cs): a 64-bit PV kernel runs in ring 3")
        }
    }

    @Test func dom0sPanickingCPUHasItsRegisters() throws {
        let (s, cpus) = try sets("dom0.vmcore")
        checkSets(cpus, "dom0.vmcore")
        let panicCPU = try #require(try? s.kernel().readU64(symbol: "panic_cpu")) & 0xffff_ffff
        let panicking = cpus.first { ($0["cpu"] as? Int) == Int(panicCPU) }
        #expect(panicking?["running"] as? Bool == true, "panic_cpu \(panicCPU): \(cpus.map { ($0["cpu"] ?? "?", $0["source"] ?? "") })")
        #expect((panicking?["source"] as? String)?.contains("Xen stack") == true)
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: realDir + "/domU.xcore"), "no real xl dump-core"))
    func xlDumpCoresVCPUContexts() throws {
        let (_, cpus) = try sets("domU.xcore")
        checkSets(cpus, "domU.xcore")
        #expect(cpus.allSatisfy { ($0["source"] as? String)?.contains(".xen_prstatus") == true })
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: realDir + "/host.vmcore"), "no real host dump"))
    func everyGuestOfTheCrashedHost() throws {
        for d: UInt16 in [0, 1, 2] {
            let (_, cpus) = try sets("host.vmcore", domain: d)
            checkSets(cpus, "host.vmcore domain \(d)")
        }
    }
}

/// The documented maximum of rd on the real dump: it finishes (it did not in 10 minutes when
/// rendering was quadratic) and gives every word, the same bytes as machine memory read directly.
@Suite(.enabled(if: haveRealDump, "SKIPPED LOUDLY: no real dump in $P2M_REAL_DUMP_DIR (run make real-dumps)"))
struct RdMaximumTests {
    @Test func rdOf65536WordsFinishes() throws {
        var o = GuestOptions(dump: realVmcore); o.guest.systemMap = realMap
        let s = try GuestSession(o)
        let r = try s.execute(["rd", "-m", "100000", "65536"])
        let words = try #require((r.json as? [String: Any])?["words"] as? [String])
        #expect(words.count == 65536)
        #expect(r.text.split(separator: "\n").count == 32768)
        var direct = [UInt8](repeating: 0, count: 16)
        try direct.withUnsafeMutableBytes { try s.dump.memory.read(MachAddr(rawValue: 0x100000 + 8 * 65534), into: $0) }
        let last = direct.withUnsafeBytes { $0.load(fromByteOffset: 0, as: UInt64.self) }
        #expect(words[65534] == "0x" + String(UInt64(littleEndian: last), radix: 16))
    }
}
