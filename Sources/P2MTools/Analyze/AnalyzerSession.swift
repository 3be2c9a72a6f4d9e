// The analyzer: a session over one dump, answering crash-like commands.
//
// Kernel virtual reads go through the machine-only page walk, so they never need the p2m; the
// p2m (the note first, else the dump's own tables, through the one resolver) serves
// pseudo-physical reads, pfn display, m2p and `check`. Each command is an ArgumentParser
// command whose result is a Codable value; text and JSON are rendered from that one value.
import ArgumentParser
import DumpIO
import Foundation
import P2MFormat
import Translation

public struct AnalyzerOptions: Sendable {
    public var dump: String
    public var systemMap: String?
    public var vmlinux: String?
    public var cr3: UInt64?
    public var p2mMFN: UInt64?
    public var useNote = true
    /// A host dump's domain to read (nil: the dump's own guest).
    public var domain: UInt16?
    /// Xen's symbols (xen-syms or its .map), optional.
    public var xenSyms: String?
    public var moduleLayout = ModuleOffsets()
    public init(dump: String) { self.dump = dump }
}

/// A command's result: the text a person reads and the value JSON carries.
public struct CommandOutput {
    public var command: String
    public var text: String
    /// `{"dump": …, "command": …, "result": …}` (Spec/json.md).
    public var jsonData: Data
    public var exitCode: Int32 = 0
    /// The "result" member, parsed (for tests and scripts in-process).
    public var json: Any? {
        (try? JSONSerialization.jsonObject(with: jsonData, options: [.fragmentsAllowed]) as? [String: Any])?["result"] ?? nil
    }
}

/// Results know how to say themselves as text.
protocol TextResult: Encodable {
    var text: String { get }
    var exitCode: Int32 { get }
}
extension TextResult { var exitCode: Int32 { 0 } }

struct Envelope<R: Encodable>: Encodable {
    var dump: String
    var command: String
    var result: R
}

public struct AnalyzerError: Error, CustomStringConvertible {
    public let message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}

public final class AnalyzerSession {
    public let options: AnalyzerOptions
    public let dump: DumpContainer
    public let symbols: SymbolTable
    public let resolver: P2MResolver
    private var p2mCache: (map: P2MMap, source: P2MTableSource)?

    public init(_ o: AnalyzerOptions) throws {
        options = o
        dump = try openDump(path: o.dump)
        symbols = try SymbolTable.forDump(systemMap: o.systemMap, vmlinux: o.vmlinux, dump: dump)
        var ro = P2MResolverOptions(); ro.cr3 = o.cr3; ro.p2mMFN = o.p2mMFN; ro.useNote = o.useNote; ro.domain = o.domain; ro.xenSyms = o.xenSyms
        resolver = P2MResolver(dump: dump, symbols: symbols, options: ro)
        if o.domain != nil { _ = try resolver.domain() }
    }

    /// Machine reads so far (tests count them to prove boundedness).
    public var machineReads: Int { dump.memory.readCount }

    /// The guest kernel, its symbols checked once against the dump: a System.map or vmlinux of
    /// another build put linux_banner where the dump holds something else, and banner printed
    /// that and exited 0. A vmlinux is judged by its build ID or banner (KernelIdentity), a
    /// System.map by the banner it points at.
    public func kernel() throws -> GuestKernel {
        let k: GuestKernel
        do { k = try resolver.kernel() } catch let e as TranslationError where e.kind == .mismatch {
            // The symbols map under no recorded root: name the build they come from.
            guard let v = options.vmlinux, let image = try? vmlinuxImage() else { throw e }
            let what = [image.banner.map { "banner \"\($0)\"" }, image.buildID.map { "build ID \(KernelIdentity.hex($0))" }].compactMap { $0 }.joined(separator: ", ")
            throw TranslationError("\(v): not the kernel of \(dump.path): its symbols do not translate under any page-table root the dump records (the vmlinux has \(what.isEmpty ? "no banner or build ID" : what)); \(e.message)", kind: .mismatch)
        }
        if symbolsChecked == nil { symbolsChecked = Result { try checkSymbols(k) } }
        try symbolsChecked?.get()
        return k
    }
    private var symbolsChecked: Result<Void, Error>?

    /// The --vmlinux file's identity (banner at linux_banner's link address, build ID), read once
    /// for the symbol check, the mismatch message and the library's handle; nil without one.
    public func vmlinuxImage() throws -> VmlinuxImage? {
        guard let v = options.vmlinux else { return nil }
        if imageResult == nil {
            let banner = symbols.address("linux_banner").map { $0.rawValue &- (dump.vmcoreInfo?.kernelOffset ?? 0) }
            imageResult = Result { try VmlinuxImage(path: v, bannerAddress: banner) }
        }
        return try imageResult?.get()
    }
    private var imageResult: Result<VmlinuxImage, Error>?

    /// Refuse another build's System.map or vmlinux before any command runs (any other reason
    /// the kernel cannot be read is left to the commands that need it, which say it).
    public func refuseForeignSymbols() throws {
        guard options.systemMap != nil || options.vmlinux != nil else { return }
        do { _ = try kernel() } catch let e as TranslationError where e.kind == .mismatch { throw e } catch {}
    }

    private func checkSymbols(_ k: GuestKernel) throws {
        guard options.systemMap != nil || options.vmlinux != nil, let at = symbols.address("linux_banner") else { return }
        let source = [options.systemMap, options.vmlinux].compactMap { $0 }.joined(separator: " and ")
        if let image = try vmlinuxImage() { try KernelIdentity.check(image, against: k) }
        // Bytes that cannot be read (a page the dump lacks) blame the dump, not the map: the
        // commands that need them say so.
        guard let bytes = try? k.pageTables.readBytes(at, count: 160) else { return }
        let text = KernelIdentity.bannerText(bytes)
        guard text.hasPrefix("Linux version ") else {
            let shown = String(text.prefix(60).map { $0.isASCII && !$0.isNewline && $0 >= " " ? $0 : "." })
            throw TranslationError("\(source) is not this dump's kernel's: its linux_banner, \(at), reads \"\(shown)\" in \(dump.path), not \"Linux version …\"; give the System.map or vmlinux of the kernel that crashed", kind: .mismatch)
        }
    }

    /// The p2m in use, through the resolver (the note first).
    public func p2m() throws -> (map: P2MMap, source: P2MTableSource) {
        if let c = p2mCache { return c }
        let r = try resolver.resolve()
        p2mCache = r
        return r
    }

    public func pseudoPhysical() throws -> PseudoPhysicalMemory {
        let (m, s) = try p2m()
        return PseudoPhysicalMemory(map: m, machine: dump.memory, origin: s.location)
    }

    /// A hex number (0x optional, as crash reads it), a symbol, or symbol+offset.
    func parseAddress(_ s: String) throws -> UInt64 {
        if let v = parseHexArg(s) { return v }
        var name = Substring(s)
        var off: UInt64 = 0
        if let plus = s.firstIndex(of: "+"), let o = parseHexArg(String(s[s.index(after: plus)...])) {
            name = s[..<plus]; off = o
        }
        guard let a = symbols.address(String(name)) else {
            throw AnalyzerError("\(s): not a hex number or a known symbol\(symbols.isEmpty ? " (no symbols: pass --system-map or --vmlinux)" : "")")
        }
        let (v, o) = a.rawValue.addingReportingOverflow(off)
        guard !o else { throw AnalyzerError("\(s): past 2^64") }
        return v
    }

    /// The pfn whose p2m entry is `mfn`: its value for JSON (a pfn, or nil), how it stands
    /// ("unique", "none", "ambiguous", "unknown": no p2m) with every candidate, and the text.
    struct PfnOfMfn: Encodable {
        var pfn: PFN?
        var status: String
        var candidates: [PFN]
        var text: String {
            switch status {
            case "unique": return "pfn \(pfn.map(\.description) ?? "?")"
            case "ambiguous": return "pfn ambiguous (\(candidates.map(\.description).joined(separator: ", ")))"
            case "none": return "pfn none"
            default: return "pfn ?"
            }
        }
    }

    func pfn(ofMfn mfn: MFN) -> PfnOfMfn {
        guard let (map, _) = try? p2m() else { return PfnOfMfn(pfn: nil, status: "unknown", candidates: []) }
        switch map.m2p(mfn) {
        case .none: return PfnOfMfn(pfn: nil, status: "none", candidates: [])
        case .unique(let p): return PfnOfMfn(pfn: p, status: "unique", candidates: [p])
        case .ambiguous(let ps): return PfnOfMfn(pfn: nil, status: "ambiguous", candidates: ps)
        }
    }

    func output<R: TextResult>(_ command: String, _ r: R, lines: Bool = false) throws -> CommandOutput {
        let data = try (lines ? jsonLineEncoder : jsonEncoder).encode(Envelope(dump: dump.path, command: command, result: r))
        return CommandOutput(command: command, text: r.text, jsonData: data, exitCode: r.exitCode)
    }

    // MARK: commands

    /// Run one command line as typed ("rd linux_banner 4"); "quotes" group words.
    public func execute(line: String) throws -> CommandOutput { try execute(ShellWords.split(line)) }

    /// Run one command line (already split into words): the same parser in every mode, so
    /// `rd --help`, options after the command and errors behave alike.
    public func execute(_ argv: [String]) throws -> CommandOutput {
        guard let word = argv.first else { throw AnalyzerError("no command; try help") }
        if let h = try help(argv) { return h }
        guard AnalyzerCommands.names.contains(word) else {
            throw AnalyzerError("unknown command \(word); try help")
        }
        let parsed: ParsableCommand
        do { parsed = try AnalyzerCommands.parseAsRoot(argv) } catch {
            throw AnalyzerError(AnalyzerCommands.fullMessage(for: error))
        }
        guard let c = parsed as? SessionCommand else { throw AnalyzerError("unknown command \(word); try help") }
        return try c.execute(in: self)
    }

    /// `help`, `help CMD`, `CMD --help` and `CMD -h` (no command takes -h): the command's own
    /// usage, options and abstract, the same in one-shot, prompt and script modes; JSON carries
    /// the same text. nil when the words ask for no help.
    func help(_ argv: [String]) throws -> CommandOutput? {
        guard let word = argv.first else { return nil }
        let target: String?
        if word == "help" {
            target = argv.dropFirst().first
        } else if argv.dropFirst().contains(where: { $0 == "--help" || $0 == "-h" }) {
            target = word
        } else {
            return nil
        }
        let text: String
        if let t = target {
            guard let sub = AnalyzerCommands.configuration.subcommands.first(where: { $0._commandName == t }) else {
                throw AnalyzerError("unknown command \(t); try help")
            }
            text = AnalyzerCommands.helpMessage(for: sub).replacingOccurrences(of: "USAGE:  ", with: "USAGE: ")
        } else {
            text = "Commands (COMMAND --help or help COMMAND for each):\n\(AnalyzerCommands.summary)\n  help    This list, or a command's help.\n  quit    Leave the prompt (also q, exit, Ctrl-D)."
        }
        return try output("help", HelpResult(command: target, help: text))
    }
}

struct HelpResult: TextResult {
    var command: String?
    var help: String
    var text: String { help.hasSuffix("\n") ? help : help + "\n" }
}
