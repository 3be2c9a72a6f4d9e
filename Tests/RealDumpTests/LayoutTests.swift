import Foundation
import GuestReader
import Testing
import TestSupport
import Translation

/// struct module's layout on the real Debian 12 dump: read from the kernel's own BTF in the
/// dump, it equals the table entry kept for that build (the table is what generated dumps and a
/// BTF-less copy of this build use), and mod through it equals /proc/modules as recorded.
@Suite(.enabled(if: haveRealDump, "SKIPPED LOUDLY: no real dump in $P2M_REAL_DUMP_DIR (run make real-dumps)"), .serialized)
struct LayoutTests {
    @Test func moduleLayoutFromBTFEqualsTheVerifiedTable() throws {
        var o = GuestOptions(dump: realVmcore); o.guest.systemMap = realMap
        let s = try GuestSession(o)
        let fromBTF = try s.moduleLayout()
        #expect(fromBTF.source.contains("BTF"), "\(fromBTF.source)")
        let table = try #require(GuestSession.verifiedModuleLayout(try s.kernel()), "this build is the table's")
        #expect(fromBTF.list == table.list && fromBTF.name == table.name && fromBTF.nameLength == table.nameLength && fromBTF.memory == table.memory,
                "BTF \(fromBTF) vs table \(table)")
        // mod through it: names, bases and sizes of /proc/modules.
        let text = try String(contentsOfFile: realDir + "/ground-truth/modules.txt", encoding: .utf8)
        var want: [String] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 6, let base = UInt64(f[5].dropFirst(2), radix: 16) else { continue }
            want.append("\(f[0]) \(f[1]) \(base)")
        }
        let got: [String] = try s.kernel().modules(fromBTF).map { "\($0.name) \($0.size) \($0.base.rawValue)" }
        #expect(!want.isEmpty && got == want, "\(got) vs \(want)")
    }
}
