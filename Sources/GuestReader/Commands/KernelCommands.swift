// The session's commands about the guest kernel: sym, banner, mod.
import DumpIO
import Foundation
import P2MFormat
import Translation

// MARK: sym

struct Sym {
    static let spec = CommandSpec("sym", abstract: "Symbol lookup: a name's address, or what an address is (kernel symbol or module).",
                                  parameters: [.argument("what", "A symbol name, symbol+offset or an address (hex).")]) { s, w in
        try Sym(what: w.value("what")).execute(in: s)
    }
    let what: String
    struct Result: TextResult {
        var address: KVAddr; var symbol: String?; var offset: Hex64?; var type: String?; var region: String; var module: String?
        var text: String {
            if let m = module { return "\(address) = \(m)+\(offset?.description ?? "0x0")  (module)\n" }
            guard let s = symbol else { return "\(address): no symbol  (\(region))\n" }
            let off = (offset?.value ?? 0) > 0 ? "+\(offset!)" : ""
            return "\(address) = \(s)\(off)  (\(type.map { SymbolTypeName.describe($0) } ?? "symbol"), \(region))\n"
        }
    }
    func execute(in s: GuestSession) throws -> CommandOutput {
        if let sym = s.symbols.lookup(what) {
            return try s.output("sym", Result(address: sym.address, symbol: sym.name, offset: Hex64(0), type: String(sym.type), region: KernelRegion.of(sym.address).rawValue))
        }
        // An address, or symbol+offset as rd and vtop take it: described as the address it names.
        guard let v = parseHexArg(what) ?? (what.contains("+") ? try? s.parseAddress(what) : nil) else {
            throw SessionError("symbol \(what) not found\(s.symbols.isEmpty ? " (no symbols: pass --system-map or --vmlinux)" : "")")
        }
        let va = KVAddr(rawValue: v)
        let region = KernelRegion.of(va)
        // A module's address: name it by its module, never by the last kernel symbol below it.
        if region == .modules {
            if let k = try? s.kernel(), let layout = try? s.moduleLayout(), let mods = try? k.modules(layout), let m = mods.first(where: { $0.contains(va) }) {
                return try s.output("sym", Result(address: va, symbol: nil, offset: Hex64(v - m.base.rawValue), type: nil, region: region.rawValue, module: m.name))
            }
            return try s.output("sym", Result(address: va, symbol: nil, offset: nil, type: nil, region: region.rawValue, module: nil))
        }
        guard region == .kernelText, let (sym, off) = s.symbols.symbol(at: va), sym.name != "_end" else {
            return try s.output("sym", Result(address: va, symbol: nil, offset: nil, type: nil, region: region.rawValue, module: nil))
        }
        return try s.output("sym", Result(address: va, symbol: sym.name, offset: Hex64(off), type: String(sym.type), region: region.rawValue))
    }
}

enum SymbolTypeName {
    static func describe(_ t: String) -> String {
        switch t.lowercased() {
        case "t": return "text"
        case "d": return "data"
        case "b": return "bss"
        case "r": return "read-only data"
        case "a": return "absolute"
        case "w", "v": return "weak"
        default: return "symbol"
        }
    }
}

// MARK: banner, mod

enum Banner {
    static let spec = CommandSpec("banner", abstract: "linux_banner.") { s, _ in try execute(in: s) }
    struct Result: TextResult {
        var banner: String
        var text: String { banner.hasSuffix("\n") ? banner : banner + "\n" }
    }
    static func execute(in s: GuestSession) throws -> CommandOutput {
        try s.output("banner", Result(banner: try s.kernel().banner()))
    }
}

enum Mod {
    static let spec = CommandSpec("mod", abstract: "Loaded modules (the kernel's `modules` list).") { s, _ in try execute(in: s) }
    struct Result: TextResult {
        var modules: [LoadedModule]
        /// Where struct module's layout came from.
        var layout: String
        var text: String {
            "      MODULE        NAME                      BASE              SIZE\n" + modules.map {
                "  " + String(format: "%016llx", $0.module.rawValue) + "  " + $0.name.padding(toLength: max(24, $0.name.count), withPad: " ", startingAt: 0) + "  " + String(format: "%016llx  %llu", $0.base.rawValue, $0.size) + "\n"
            }.joined()
        }
    }
    static func execute(in s: GuestSession) throws -> CommandOutput {
        let layout = try s.moduleLayout()
        return try s.output("mod", Result(modules: try s.kernel().modules(layout), layout: layout.source))
    }
}

