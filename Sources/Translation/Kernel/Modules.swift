// Loaded modules: the kernel's `modules` list of struct module, read through the walk.
import DumpIO
import P2MFormat

/// struct module offsets. Defaults: Debian 12's Linux 6.1 (ptype/o struct module on its debug
/// vmlinux: list at 0x8, name at 0x18, core_layout.base at 0x140, core_layout.size at 0x148).
public struct ModuleOffsets: Sendable, Equatable {
    public var list: UInt64 = 0x8
    public var name: UInt64 = 0x18
    public var nameLength = 56
    public var coreBase: UInt64 = 0x140
    public var coreSize: UInt64 = 0x148
    public init() {}

    /// "list,name,core_base,core_size" in hex.
    public init?(argument: String, parse: (String) -> UInt64?) {
        let f = argument.split(separator: ",").compactMap { parse(String($0)) }
        guard f.count == 4 else { return nil }
        list = f[0]; name = f[1]; coreBase = f[2]; coreSize = f[3]
    }
}

public struct LoadedModule: Sendable, Codable, Equatable {
    public var module: KVAddr
    public var name: String
    public var base: KVAddr
    public var size: UInt64
    public func contains(_ a: KVAddr) -> Bool { a.rawValue >= base.rawValue && a.rawValue - base.rawValue < size }
}

extension GuestKernel {
    /// Walk `modules` (a list_head whose next pointers lead through struct module's `list`).
    public func modules(_ ml: ModuleOffsets = ModuleOffsets()) throws -> [LoadedModule] {
        let head = try symbol("modules")
        var out: [LoadedModule] = []
        var node = try pageTables.readU64(head)
        var seen = Set<UInt64>()
        while node != head.rawValue {
            guard seen.insert(node).inserted, seen.count <= 65536 else { throw TranslationError("the modules list loops at 0x\(String(node, radix: 16))") }
            let m = node &- ml.list
            let nameBytes = try pageTables.readBytes(KVAddr(rawValue: m &+ ml.name), count: ml.nameLength)
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            let base = try pageTables.readU64(KVAddr(rawValue: m &+ ml.coreBase))
            let size = try pageTables.readU64(KVAddr(rawValue: m &+ ml.coreSize)) & 0xffff_ffff
            out.append(LoadedModule(module: KVAddr(rawValue: m), name: name, base: KVAddr(rawValue: base), size: size))
            node = try pageTables.readU64(KVAddr(rawValue: node))
        }
        return out
    }

    /// linux_banner.
    public func banner() throws -> String {
        let b = try pageTables.readBytes(try symbol("linux_banner"), count: 512)
        return String(decoding: b.prefix { $0 != 0 }, as: UTF8.self)
    }
}
