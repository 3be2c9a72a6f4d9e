import Foundation
// Facts about an x86_64 Linux PV kernel that the generator reproduces: its virtual layout,
// page-table bits, and the struct offsets a reader needs (struct module, uts_namespace).
// Values are those of Linux 6.1 on x86_64 (Debian 12); each checked against Linux's
// source (arch/x86/include/asm/pgtable_types.h, page_64_types.h, include/linux/module.h) and the
// real Debian 12 dumps (Tools/real-dump).

public enum LinuxX86_64 {
    public static let startKernelMap: UInt64 = 0xffff_ffff_8000_0000
    public static let pageOffsetBase: UInt64 = 0xffff_8880_0000_0000
    public static let vmallocBase: UInt64 = 0xffff_c900_0000_0000
    public static let vmemmapBase: UInt64 = 0xffff_ea00_0000_0000
    public static let modulesOld: UInt64 = 0xffff_ffff_a000_0000
    public static let modulesNew: UInt64 = 0xffff_ffff_c000_0000

    // PTE bits
    public static let present: UInt64 = 1 << 0
    public static let rw: UInt64 = 1 << 1
    public static let user: UInt64 = 1 << 2
    public static let accessed: UInt64 = 1 << 5
    public static let dirty: UInt64 = 1 << 6
    public static let global: UInt64 = 1 << 8
    public static let nx: UInt64 = 1 << 63
    /// Flags of an intermediate table entry (_PAGE_TABLE).
    public static let tableFlags: UInt64 = present | rw | user | accessed | dirty
    /// Kernel data page: present, rw, accessed, dirty, global, NX.
    public static let dataFlags: UInt64 = present | rw | accessed | dirty | global | nx
    /// Read-only mapping (the shared p2m pages are mapped read-only).
    public static let roFlags: UInt64 = present | accessed | global | nx
}

/// Offsets inside `struct module` used by `mod`-like readers. Defaults: Linux 6.1 x86_64
/// (state at 0, list at 8, name[56] at 0x18, core_layout.base at 0x140 and .size at 0x148, as
/// `ptype/o struct module` shows on Debian 12's linux-image-6.1.0-56-amd64-dbg vmlinux). Overridable; /work/notes-style `field=0xOFF` files can be parsed.
public struct ModuleStructLayout: Sendable, Equatable, Codable {
    public var state: UInt64 = 0x0
    public var list: UInt64 = 0x8
    public var name: UInt64 = 0x18
    public var nameLength: UInt64 = 56
    public var coreBase: UInt64 = 0x140
    public var coreSize: UInt64 = 0x148
    public init() {}

    public static let linux61 = ModuleStructLayout()

    /// Parse `field=0xOFFSET` lines (state, list, name, core_layout.base, core_layout.size).
    public static func parse(_ text: String) -> ModuleStructLayout {
        var l = ModuleStructLayout()
        for line in text.split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2 else { continue }
            let v = kv[1].hasPrefix("0x") ? UInt64(kv[1].dropFirst(2), radix: 16) : UInt64(kv[1])
            guard let off = v else { continue }
            switch kv[0] {
            case "state": l.state = off
            case "list": l.list = off
            case "name": l.name = off
            case "core_layout.base", "mem[MOD_TEXT].base": l.coreBase = off
            case "core_layout.size", "mem[MOD_TEXT].size": l.coreSize = off
            default: break
            }
        }
        return l
    }
}

