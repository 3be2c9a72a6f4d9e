import Foundation
import Testing
import TestSupport
import DumpGen
@testable import Translation

/// DWARFTypes (libdw) on an object gcc compiles here with -g: every offset and size it reports is
/// what the compiler itself says (offsetof and sizeof, printed by the same source compiled and
/// run), through nested structs, an anonymous union and an array. Damaged copies are refused or
/// read without a crash.
@Suite struct DWARFTypesTests {
    static let source = """
    #include <stddef.h>
    #include <stdio.h>
    struct regs { unsigned long r15, r14; unsigned int code; unsigned short cs; };
    struct region { void *base; unsigned int size; char pad[12]; };
    struct arch { char flags[7]; struct regs user_regs; unsigned long guest_table; };
    struct thing {
        int id;
        union { struct { unsigned long lo; unsigned int hi; }; unsigned long both[3]; };
        char name[56];
        struct region mem[7];
        struct arch arch;
        struct thing *next;
    };
    struct thing t;
    int main(void) {
        printf("id %zu %zu\\n", offsetof(struct thing, id), sizeof t.id);
        printf("hi %zu %zu\\n", offsetof(struct thing, hi), sizeof t.hi);
        printf("name %zu %zu\\n", offsetof(struct thing, name), sizeof t.name);
        printf("mem %zu %zu %zu %zu\\n", offsetof(struct thing, mem), sizeof t.mem, sizeof t.mem[0], sizeof t.mem / sizeof t.mem[0]);
        printf("arch.user_regs %zu %zu\\n", offsetof(struct thing, arch.user_regs), sizeof t.arch.user_regs);
        printf("arch.guest_table %zu %zu\\n", offsetof(struct thing, arch.guest_table), sizeof t.arch.guest_table);
        printf("next %zu %zu\\n", offsetof(struct thing, next), sizeof t.next);
        printf("size %zu\\n", sizeof(struct thing));
        printf("region.size %zu\\n", offsetof(struct region, size));
        return 0;
    }
    """

    /// The compiled program and what it printed.
    func build() throws -> (binary: String, facts: [String: [UInt64]]) {
        requireTool("/usr/bin/gcc")
        let d = NSTemporaryDirectory() + "dwarf-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        try Self.source.write(toFile: d + "/t.c", atomically: true, encoding: .utf8)
        let cc = try runTool(["gcc", "-g", "-O0", "-o", d + "/t", d + "/t.c"])
        try #require(cc.status == 0, "\(cc.stderr)")
        let out = try runTool([d + "/t"]).stdout
        var facts: [String: [UInt64]] = [:]
        for line in out.split(separator: "\n") {
            let f = line.split(separator: " ")
            facts[String(f[0])] = f.dropFirst().compactMap { UInt64($0) }
        }
        return (d + "/t", facts)
    }

    @Test func offsetsAndSizesAreTheCompilers() throws {
        let (bin, facts) = try build()
        let t = try DWARFTypes(path: bin)
        #expect(t.origin == "DWARF of \(bin)")
        for name in ["id", "hi", "name", "arch.user_regs", "arch.guest_table", "next"] {
            let m = try #require(t.member(name, of: "thing"), "\(name)")
            #expect([m.offset, m.size ?? 0] == facts[name], "\(name): \(m) vs \(facts[name] ?? [])")
        }
        let mem = try #require(t.member("mem", of: "thing"))
        let want = try #require(facts["mem"])
        #expect([mem.offset, mem.size ?? 0, mem.stride ?? 0, mem.count ?? 0] == want, "\(mem) vs \(want)")
        #expect(t.size(of: "thing") == facts["size"]?.first)
        #expect(t.member("size", of: "region")?.offset == facts["region.size"]?.first)
        #expect(t.member("nothing", of: "thing") == nil && t.member("id", of: "no_such_struct") == nil && t.size(of: "no_such_struct") == nil)
        #expect(throws: TranslationError.self) { _ = try t.need("missing", of: "thing") }
    }

    @Test func damagedFilesAreRefusedOrReadWithoutACrash() throws {
        let (bin, _) = try build()
        let good = try Data(contentsOf: URL(fileURLWithPath: bin))
        let d = NSTemporaryDirectory() + "dwarf-bad-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        #expect(throws: TranslationError.self) { _ = try DWARFTypes(path: d + "/absent") }
        try Data("not an ELF file".utf8).write(to: URL(fileURLWithPath: d + "/text"))
        #expect(throws: TranslationError.self) { _ = try DWARFTypes(path: d + "/text") }
        var rng = SplitMix64(seed: 20261207)
        for k in 0..<40 {
            var b = [UInt8](good)
            if k < 20 { b = Array(b.prefix(Int(rng.next() % UInt64(b.count)))) }       // cut
            else { for _ in 0..<64 { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) } }  // bytes changed
            let p = d + "/bad\(k)"
            try Data(b).write(to: URL(fileURLWithPath: p))
            guard let t = try? DWARFTypes(path: p) else { continue }
            _ = t.member("arch.user_regs", of: "thing"); _ = t.member("mem", of: "thing"); _ = t.size(of: "thing"); _ = t.size(of: "absent")
        }
    }
}
