import DumpGen
import DumpIO
import Foundation
import P2MFormat
import Testing
import TestSupport

/// Random corruption of a generated vmcore's header region (ELF header, program headers,
/// notes): opening it and reading its notes must fail with DumpError or succeed, never trap.
@Suite struct DumpMutationTests {
    @Test func corruptHeadersNeverTrap() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = Dom0DumpOptions(); o.guestMiB = 128; o.makedumpfileELayout = true
        let g = try DumpGenerator.generateDom0(o, to: d + "/base.vmcore")
        let fh = try #require(FileHandle(forReadingAtPath: g.path))
        let head = [UInt8](fh.readData(ofLength: 8192))
        try fh.close()
        var rng = SplitMix64(seed: 77)
        let p = d + "/m.vmcore"
        try FileManager.default.copyItem(atPath: g.path, toPath: p)
        var opened = 0, refused = 0
        for _ in 0..<400 {
            var m = head
            for _ in 0..<Int(rng.below(6)) + 1 {
                let i = Int(rng.below(rng.below(2) == 0 ? 400 : UInt64(m.count)))
                m[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            let w = try #require(FileHandle(forWritingAtPath: p))
            w.write(Data(m)); try w.close()
            do {
                let f = try openDump(path: p)
                _ = try? f.p2mNote(); _ = f.crashInfo; _ = f.crashRegs; _ = f.vmcoreInfo
                _ = try? f.memory.readU64(MachAddr(rawValue: g.manifest.cr3))
                opened += 1
            } catch is DumpError { refused += 1 }
        }
        #expect(refused > 0)
        print("dump header mutations: \(refused) refused with DumpError, \(opened) opened")
    }
}
