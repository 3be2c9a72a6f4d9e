// Loaded modules: the kernel's `modules` list of struct module, read through the walk.
import DumpIO
import P2MFormat

/// struct module offsets of the core_layout form (Linux < 6.4), as --module-offsets gives them.
/// Defaults: Debian 12's Linux 6.1 (ptype/o struct module on its debug vmlinux: list at 0x8, name
/// at 0x18, core_layout.base at 0x140, core_layout.size at 0x148; RealDumpTests checks them
/// against the BTF of the real dump).
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

/// Where struct module keeps what /proc/modules prints, for one kernel, and where that was learnt.
public struct ModuleLayout: Sendable, Equatable {
    public enum Memory: Sendable, Equatable {
        /// Linux < 6.4: core_layout {base, size}: the module's base and size.
        case coreLayout(base: UInt64, size: UInt64)
        /// Linux ≥ 6.4 (kernel/module/procfs.c): mem[count] of struct module_memory, `stride`
        /// bytes each, {base, size}; the base is mem[MOD_TEXT = 0]'s, the size the sum of all.
        case regions(array: UInt64, stride: UInt64, count: Int, base: UInt64, size: UInt64)
    }
    public var list: UInt64
    public var name: UInt64
    public var nameLength: Int
    public var memory: Memory
    /// Where the layout came from, for people ("BTF in the dump", "--module-offsets", …).
    public var source: String

    public init(list: UInt64, name: UInt64, nameLength: Int, memory: Memory, source: String) {
        self.list = list; self.name = name; self.nameLength = nameLength; self.memory = memory; self.source = source
    }

    public init(_ o: ModuleOffsets, source: String) {
        self.init(list: o.list, name: o.name, nameLength: o.nameLength, memory: .coreLayout(base: o.coreBase, size: o.coreSize), source: source)
    }

    /// From the kernel's types (its BTF, or a vmlinux's DWARF): struct module's list, name and
    /// core_layout (Linux < 6.4) or mem[] (6.4 and later).
    public init(types: some TypeLayouts) throws {
        let source = types.origin
        let list = try types.need("list", of: "module").offset
        let name = try types.need("name", of: "module")
        let nameLength = Int(min(name.size ?? 56, 4096))
        if let core = types.member("core_layout", of: "module") {
            guard let b = types.member("base", of: "module_layout"), let z = types.member("size", of: "module_layout") else {
                throw TranslationError("\(source): struct module_layout has no base or size", kind: .noLayout)
            }
            self.init(list: list, name: name.offset, nameLength: nameLength, memory: .coreLayout(base: core.offset + b.offset, size: core.offset + z.offset), source: source)
        } else if let mem = types.member("mem", of: "module"), let count = mem.count, let stride = mem.stride,
                  let b = types.member("base", of: "module_memory"), let z = types.member("size", of: "module_memory"),
                  count > 0, count <= 64 {
            self.init(list: list, name: name.offset, nameLength: nameLength,
                      memory: .regions(array: mem.offset, stride: stride, count: Int(count), base: b.offset, size: z.offset), source: source)
        } else {
            throw TranslationError("\(source): struct module has neither core_layout (Linux < 6.4) nor mem[] (Linux 6.4 and later)", kind: .noLayout)
        }
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
    /// The kernel's BTF (between __start_BTF and __stop_BTF), read from the dump once.
    public func btf() throws -> BTF {
        if let r = btfResult { return try r.get() }
        let r = Result { () throws -> BTF in
            let start = try symbol("__start_BTF"), stop = try symbol("__stop_BTF")
            guard stop.rawValue > start.rawValue, stop.rawValue - start.rawValue <= 1 << 26 else {
                throw TranslationError("__start_BTF \(start) .. __stop_BTF \(stop) is no BTF section", kind: .noLayout)
            }
            let bytes = try pageTables.readBytes(start, count: Int(stop.rawValue - start.rawValue))
            return try BTF(bytes, source: "the kernel's BTF in the dump (__start_BTF \(start))")
        }
        btfResult = r
        return try r.get()
    }

    /// Walk `modules` (a list_head whose next pointers lead through struct module's `list`).
    public func modules(_ ml: ModuleLayout) throws -> [LoadedModule] {
        let head = try symbol("modules")
        var out: [LoadedModule] = []
        var node = try pageTables.readU64(head)
        var seen = Set<UInt64>()
        while node != head.rawValue {
            guard seen.insert(node).inserted, seen.count <= 65536 else { throw TranslationError("the modules list loops at 0x\(String(node, radix: 16))") }
            let m = node &- ml.list
            let nameBytes = try pageTables.readBytes(KVAddr(rawValue: m &+ ml.name), count: ml.nameLength)
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            let base: UInt64, size: UInt64
            switch ml.memory {
            case .coreLayout(let b, let z):
                base = try pageTables.readU64(KVAddr(rawValue: m &+ b))
                size = try pageTables.readU64(KVAddr(rawValue: m &+ z)) & 0xffff_ffff
            case .regions(let array, let stride, let count, let b, let z):
                base = try pageTables.readU64(KVAddr(rawValue: m &+ array &+ b))
                var total: UInt64 = 0
                for i in 0..<UInt64(count) {
                    total &+= try pageTables.readU64(KVAddr(rawValue: m &+ array &+ i &* stride &+ z)) & 0xffff_ffff
                }
                size = total
            }
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
