import DumpIO
import Foundation
import P2MFormat
import Testing
@testable import Translation

/// Machine memory made of a dictionary of pages (zero elsewhere in `present` frames).
final class FakeMemory: MachineMemory {
    var pages: [UInt64: [UInt8]] = [:]
    var reads = 0
    func set(_ mfn: UInt64, _ index: Int, _ v: UInt64) {
        var p = pages[mfn] ?? [UInt8](repeating: 0, count: 4096)
        for i in 0..<8 { p[index * 8 + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        pages[mfn] = p
    }
    func read(_ address: MachAddr, into buffer: UnsafeMutableRawBufferPointer) throws {
        reads += 1
        var a = address.rawValue
        for i in 0..<buffer.count {
            guard let p = pages[a >> 12] else { throw DumpError("fake", "machine 0x\(String(a, radix: 16)) absent") }
            buffer[i] = p[Int(a & 0xfff)]
            a += 1
        }
    }
    func contains(_ address: MachAddr) -> Bool { pages[address.rawValue >> 12] != nil }
}

@Suite struct PageWalkerTests {
    let t: UInt64 = 0x67
    func mem() -> FakeMemory {
        let m = FakeMemory()
        // PGD 0x10 → PUD 0x11; PUD[0] → PMD 0x12; PMD[0] → PT 0x13; PT[5] → frame 0x99.
        m.set(0x10, 511, (0x11 << 12) | t)
        m.set(0x11, 510, (0x12 << 12) | t)
        m.set(0x12, 0, (0x13 << 12) | t)
        m.set(0x13, 5, (0x99 << 12) | 0x8000_0000_0000_0163)
        // A 2 MiB page at PMD[1] and a 1 GiB page at PUD[511].
        m.set(0x12, 1, (0x200 << 12) | 0x80 | t)
        m.set(0x11, 511, (0x40000 << 12) | 0x80 | t)
        m.set(0x99, 0, 0x1122334455667788)
        return m
    }

    @Test func fourKiB2MiB1GiBAndErrors() throws {
        let m = mem()
        let w = PageTableWalker(memory: m)
        let root = MachAddr(rawValue: 0x10 << 12)
        let k = KernelPageTables(walker: w, root: root)
        #expect(try k.translate(KVAddr(rawValue: 0xffffffff80005123)) == MachAddr(rawValue: 0x99123))
        let r = try k.walk(KVAddr(rawValue: 0xffffffff80005123))
        #expect(r.steps.map(\.level) == [4, 3, 2, 1] && r.pageSize == 4096)
        #expect(try k.translate(KVAddr(rawValue: 0xffffffff80212345)) == MachAddr(rawValue: 0x212345))
        #expect(try k.translate(KVAddr(rawValue: 0xffffffffc0123456)) == MachAddr(rawValue: 0x40123456))
        #expect(try k.readU64(KVAddr(rawValue: 0xffffffff80005000)) == 0x1122334455667788)
        do { _ = try k.translate(KVAddr(rawValue: 0xffffffff80006000)); Issue.record("mapped?") }
        catch let e as WalkError { #expect(e.level == 1 && e.description.contains("not present")) }
        do { _ = try k.translate(KVAddr(rawValue: 0x0000900000000000)); Issue.record("mapped?") }
        catch let e as WalkError { #expect(e.level == 4) }
        #expect(throws: WalkError.self) { _ = try k.translate(KVAddr(rawValue: 0x8000000000000000)) }   // non-canonical
        // The PT page behind an address (level 2's entry), and none behind a 2 MiB page.
        #expect(try w.frame(for: 0xffffffff80005123, atLevel: 2, root: root, form: .x86_64) == MFN(rawValue: 0x13))
        #expect(try w.frame(for: 0xffffffff80212345, atLevel: 2, root: root, form: .x86_64) == nil)
        // Table pages are cached: repeated walks read no more memory.
        let before = m.reads
        for _ in 0..<100 { _ = try k.translate(KVAddr(rawValue: 0xffffffff80005123)) }
        #expect(m.reads == before)
    }

    @Test func missingTableIsAnErrorNotATrap() throws {
        let m = FakeMemory()
        m.set(0x10, 511, (0x77 << 12) | t)          // PUD frame 0x77 absent from the dump
        let w = PageTableWalker(memory: m)
        #expect(throws: DumpError.self) { _ = try w.translate(0xffffffff80000000, root: MachAddr(rawValue: 0x10 << 12), form: .x86_64) }
    }

    /// Xen's frame-list tree is the same walker with form {12, 9, 9, 9} and bare frame numbers:
    /// top (fll) → mid → the p2m page itself, whose entry is the data page's mfn.
    @Test func frameListTreeTranslatesPseudoPhysicalToMachine() throws {
        let m = FakeMemory()
        m.set(0x20, 1, 0x21)            // top[1] → mid 0x21 (pfns 2^18 …)
        m.set(0x21, 3, 0x22)            // mid[3] → p2m page 0x22 (pfns 2^18 + 3·512 …)
        m.set(0x22, 7, 0xabc)           // pfn 2^18 + 3·512 + 7 → mfn 0xabc
        let w = PageTableWalker(memory: m)
        let pfn: UInt64 = (1 << 18) + 3 * 512 + 7
        #expect(try w.translate(pfn << 12 | 0x123, root: MachAddr(rawValue: 0x20 << 12), form: .xenFrameTree) == MachAddr(rawValue: 0xabc123))
        #expect(try w.frame(for: pfn << 12, atLevel: 2, root: MachAddr(rawValue: 0x20 << 12), form: .xenFrameTree) == MFN(rawValue: 0x22))
        // An empty slot (0) is "no frame", an error naming the level, not a read of frame 0.
        do { _ = try w.translate(5 << 12, root: MachAddr(rawValue: 0x20 << 12), form: .xenFrameTree); Issue.record("mapped?") }
        catch let e as WalkError { #expect(e.level == 3 && e.description.contains("no frame")) }
    }

    @Test func symbolTables() throws {
        let d = NSTemporaryDirectory() + "sym-" + UUID().uuidString
        try "ffffffff81000000 T _text\nffffffff81800000 R linux_banner\n".write(toFile: d, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: d) }
        let s = try SymbolTable.systemMap(path: d)
        #expect(s.address("linux_banner") == KVAddr(rawValue: 0xffffffff81800000))
        #expect(s.symbol(at: KVAddr(rawValue: 0xffffffff81800010))?.symbol.name == "linux_banner")
        #expect(s.lookup("linux_banner")?.type == "R")
        try "ffffffff81000000 T _text\ngarbage line\n".write(toFile: d, atomically: true, encoding: .utf8)
        do { _ = try SymbolTable.systemMap(path: d); Issue.record("accepted") } catch { #expect("\(error)".contains("line 2")) }
        // KASLR: image symbols move by KERNELOFFSET, others stay.
        let r = s.relocated(by: 0x2000000)
        #expect(r.address("linux_banner") == KVAddr(rawValue: 0xffffffff83800000))
        #expect(KernelRegion.of(KVAddr(rawValue: 0xffffc90000000000)) == .vmalloc)
        #expect(KernelRegion.of(KVAddr(rawValue: 0xffffffffa003a040)) == .modules)
    }
}
