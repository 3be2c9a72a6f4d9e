import DumpGen
import DumpIO
import Foundation
import P2MFormat
import Testing
import TestSupport

@Suite struct HostileInputTests {
    func header(phnum: UInt16, phoff: UInt64 = 64) -> [UInt8] {
        var h: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        h += [4, 0, 62, 0, 1, 0, 0, 0] + [UInt8](repeating: 0, count: 8)
        h += withUnsafeBytes(of: phoff.littleEndian) { Array($0) } + [UInt8](repeating: 0, count: 8) + [0, 0, 0, 0]
        h += [64, 0, 56, 0, UInt8(phnum), 0, 64, 0, 0, 0, 0, 0]
        return h
    }
    func phdr(_ type: UInt32, off: UInt64, paddr: UInt64, size: UInt64) -> [UInt8] {
        var b = withUnsafeBytes(of: type.littleEndian) { Array($0) } + [7, 0, 0, 0]
        for v in [off, 0xffff888000000000 &+ paddr, paddr, size, size, 0] { b += withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        return b
    }

    @Test func malformedFilesGiveClearErrors() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let note = [UInt8](repeating: 0, count: 0)
        var cases: [(String, [UInt8], String)] = []
        cases.append(("notelf", Array("hello world, this is not an ELF file at all.....................".utf8), "not an ELF"))
        cases.append(("short", [0x7f, 0x45, 0x4c, 0x46], "too short"))
        cases.append(("phdrs-past-end", header(phnum: 40), "run past the end"))
        let two = header(phnum: 2) + phdr(4, off: 176, paddr: 0, size: 16) + phdr(1, off: 4096, paddr: 0, size: 1 << 30)
        cases.append(("load-past-end", two + [UInt8](repeating: 0, count: 4096), "truncated"))
        let overlap = header(phnum: 3) + phdr(4, off: 232, paddr: 0, size: 0) + phdr(1, off: 4096, paddr: 0, size: 8192) + phdr(1, off: 4096, paddr: 4096, size: 4096)
        cases.append(("overlap", overlap + [UInt8](repeating: 0, count: 12288), "overlaps"))
        let noLoads = header(phnum: 1) + phdr(4, off: 120, paddr: 0, size: 0)
        cases.append(("no-loads", noLoads + [UInt8](repeating: 0, count: 64), "no PT_LOAD"))
        let overrun = header(phnum: 2) + phdr(4, off: 176, paddr: 0, size: 16) + phdr(1, off: 4096, paddr: 0, size: 4096)
        var ov = overrun + [5, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0x43, 0x4f, 0x52, 0x45]
        ov += [UInt8](repeating: 0, count: 8192 - ov.count)
        cases.append(("note-overrun", ov, "overruns"))
        let absurd = header(phnum: 2) + phdr(4, off: 176, paddr: 0, size: 0) + phdr(1, off: 4096, paddr: .max - 10, size: 4096)
        cases.append(("absurd", absurd + [UInt8](repeating: 0, count: 8192), "absurd"))
        var be = two; be[5] = 2; cases.append(("big-endian", be, "little-endian"))
        var arm = two; arm[18] = 183; cases.append(("aarch64", arm + [UInt8](repeating: 0, count: 8192), "x86_64"))
        _ = note
        for (name, bytes, expect) in cases {
            let p = d + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: p))
            do { _ = try DumpFile.open(path: p); Issue.record("\(name) opened") }
            catch let e as DumpError { #expect(e.description.contains(expect), "\(name): \(e)"); #expect(e.description.contains(p)) }
        }
    }

    @Test func aTerabyteSparseDumpOpensQuickly() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        // A large machine with a small dom0: the file is 1+ TiB apparent, a few MiB real.
        var o = Dom0DumpOptions(); o.guestMiB = 256; o.machineMiB = 1 << 20
        let g = try DumpGenerator.generateDom0(o, to: d + "/big.vmcore")
        let t0 = Date()
        let f = try DumpFile.open(path: g.path)
        let dt = Date().timeIntervalSince(t0)
        #expect(f.fileSize > 1000 << 30)
        #expect(dt < 0.5, "open took \(dt) s")
        #expect(f.crashInfo?.frameListListMFN?.rawValue == g.manifest.fllMfn)
    }

    @Test func readingMachineMemoryChecksBounds() throws {
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        var o = Dom0DumpOptions(); o.guestMiB = 128
        let g = try DumpGenerator.generateDom0(o, to: d + "/s.vmcore")
        let m = try openDump(path: g.path).memory
        #expect(throws: DumpError.self) { _ = try m.readU64(MachAddr(rawValue: 0xA0000)) }         // the legacy hole
        #expect(throws: DumpError.self) { _ = try m.readU64(MachAddr(rawValue: .max - 3)) }
        #expect(try m.readU64(MachAddr(rawValue: g.manifest.cr3 + 511 * 8)) & 1 == 1)   // the PGD slot of kernel text is present
    }
}
