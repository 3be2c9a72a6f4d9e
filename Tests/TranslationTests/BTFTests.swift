import Foundation
import Testing
import DumpGen
@testable import Translation

/// BTF as include/uapi/linux/btf.h lays it out, assembled by hand here (not by the code under
/// test), for the two forms of struct module: core_layout (Linux < 6.4) and mem[] (6.4 and later,
/// where /proc/modules prints mem[0]'s base and the sum of every region's size).
struct BTFAssembler {
    var strings: [UInt8] = [0]
    var types: [UInt8] = []
    var count: UInt32 = 0
    mutating func str(_ s: String) -> UInt32 {
        if s.isEmpty { return 0 }
        let o = UInt32(strings.count); strings += Array(s.utf8) + [0]; return o
    }
    mutating func u32(_ v: UInt32) { types += withUnsafeBytes(of: v.littleEndian, Array.init) }
    mutating func type(_ name: String, kind: UInt32, vlen: Int = 0, _ sizeOrType: UInt32) -> UInt32 {
        u32(str(name)); u32(kind << 24 | UInt32(vlen)); u32(sizeOrType); count += 1; return count
    }
    mutating func int(_ name: String, bytes: UInt32) -> UInt32 { let id = type(name, kind: 1, bytes); u32(bytes * 8); return id }
    mutating func array(of e: UInt32, index: UInt32, _ n: UInt32) -> UInt32 { let id = type("", kind: 3, 0); u32(e); u32(index); u32(n); return id }
    mutating func structure(_ name: String, size: UInt32, _ members: [(String, UInt32, UInt32)]) -> UInt32 {
        let id = type(name, kind: 4, vlen: members.count, size)
        for (n, t, byteOffset) in members { u32(str(n)); u32(t); u32(byteOffset * 8) }
        return id
    }
    /// The types struct module's list and name need: (u64, u32, list_head, char[56]).
    mutating func moduleBasics() -> (UInt32, UInt32, UInt32, UInt32) {
        let u64 = int("long unsigned int", bytes: 8), u32 = int("unsigned int", bytes: 4), ch = int("char", bytes: 1)
        let listHead = structure("list_head", size: 16, [("next", u64, 0), ("prev", u64, 8)])
        return (u64, u32, listHead, array(of: ch, index: u32, 56))
    }
    func bytes() -> [UInt8] {
        var h: [UInt8] = [0x9f, 0xeb, 1, 0]
        for v: UInt32 in [24, 0, UInt32(types.count), UInt32(types.count), UInt32(strings.count)] { h += withUnsafeBytes(of: v.littleEndian, Array.init) }
        return h + types + strings
    }
}

struct BTFTests {
    @Test func coreLayoutForm() throws {
        var a = BTFAssembler()
        let (u64, u32, listHead, name) = a.moduleBasics()
        let layout = a.structure("module_layout", size: 80, [("base", u64, 0), ("size", u32, 8)])
        _ = a.structure("module", size: 1024, [("state", u32, 0), ("list", listHead, 8), ("name", name, 24), ("core_layout", layout, 320)])
        let btf = try BTF(a.bytes(), source: "test")
        let l = try ModuleLayout(types: btf)
        #expect(l.list == 8 && l.name == 24 && l.nameLength == 56)
        #expect(l.memory == .coreLayout(base: 320, size: 328))
    }

    @Test func memRegionsForm() throws {
        var a = BTFAssembler()
        let (u64, u32, listHead, name) = a.moduleBasics()
        let memory = a.structure("module_memory", size: 64, [("base", u64, 0), ("size", u32, 8)])
        let mem = a.array(of: memory, index: u32, 7)
        _ = a.structure("module", size: 1536, [("state", u32, 0), ("list", listHead, 8), ("name", name, 24), ("mem", mem, 336)])
        let l = try ModuleLayout(types: try BTF(a.bytes(), source: "test"))
        #expect(l.memory == .regions(array: 336, stride: 64, count: 7, base: 0, size: 8))
    }

    @Test func neitherFormIsRefused() throws {
        var a = BTFAssembler()
        let u64 = a.int("long unsigned int", bytes: 8)
        _ = a.structure("module", size: 64, [("list", u64, 8), ("name", u64, 24)])
        #expect(throws: TranslationError.self) { _ = try ModuleLayout(types: try BTF(a.bytes(), source: "test")) }
    }

    /// Hostile bytes: every truncation and random damage of a valid BTF is an error or a value,
    /// never a trap.
    @Test func damagedBTFNeverTraps() throws {
        var a = BTFAssembler()
        let u64 = a.int("long unsigned int", bytes: 8), u32 = a.int("unsigned int", bytes: 4)
        let name = a.array(of: u64, index: u32, 7)
        _ = a.structure("module", size: 1024, [("list", u64, 8), ("name", name, 24)])
        let good = a.bytes()
        for n in 0..<good.count { _ = try? BTF(Array(good.prefix(n)), source: "cut") }
        var rng = SplitMix64(seed: 0xb7f)
        for _ in 0..<2000 {
            var b = good
            for _ in 0..<3 { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            if let btf = try? BTF(b, source: "damaged") { _ = try? ModuleLayout(types: btf); _ = btf.size(5) }
        }
    }
}
