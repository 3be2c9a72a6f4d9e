import DumpGen
import Foundation
import GuestReader
import Testing
import TestSupport
import Translation

/// `mod` never prints numbers from another build's struct module: a kernel with no BTF in the
/// dump that is not a build whose layout was checked on a real dump is refused, naming its
/// release; --module-offsets still works for it.
@Suite struct ModuleLayoutTests {
    @Test func anUnknownBuildWithoutBTFIsRefused() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let g = try dom0(d)
        // The generated kernel is Debian 12's 6.1 build (its banner says so): the table applies.
        var o = GuestOptions(dump: g.path); o.guest.systemMap = g.systemMapPath
        let known = try GuestSession(o)
        #expect(try known.moduleLayout().source.contains("Debian 12"))
        // The same dump with another distribution's banner: not a build of the table, no BTF.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: g.path)))
        let from = Array("Debian 6.1.".utf8), to = Array("Ubuntu 6.1.".utf8)
        var replaced = 0
        var i = 0
        while i + from.count <= bytes.count {
            if bytes[i] == from[0], Array(bytes[i..<i + from.count]) == from { bytes.replaceSubrange(i..<i + from.count, with: to); replaced += 1; i += from.count } else { i += 1 }
        }
        try #require(replaced > 0, "no banner to edit")
        let other = d + "/other.vmcore"
        try Data(bytes).write(to: URL(fileURLWithPath: other))
        let r = try runTool([tool("p2m-analyze"), other, "--system-map", g.systemMapPath, "mod"])
        #expect(r.status == 1, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("struct module's layout is not known for 6.1.0-"), "\(r.stderr)")
        #expect(!r.stdout.contains("xen_blkback"), "printed modules with a guessed layout")
        // With the layout given, mod reads.
        let ok = try runTool([tool("p2m-analyze"), other, "--system-map", g.systemMapPath, "--module-offsets", "8,18,140,148", "mod"])
        #expect(ok.status == 0 && ok.stdout.contains(g.manifest.modules.first?.name ?? "?"), "\(ok.stdout) \(ok.stderr)")
    }
}
