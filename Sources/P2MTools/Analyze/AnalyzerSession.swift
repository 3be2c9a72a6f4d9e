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

    public func kernel() throws -> GuestKernel { try resolver.kernel() }

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

    func pfnDescription(ofMfn mfn: UInt64) -> String {
        guard let (map, _) = try? p2m() else { return "pfn ?" }
        switch map.m2p(MFN(mfn)) {
        case .none: return "pfn none"
        case .unique(let p): return "pfn \(p)"
        case .ambiguous(let ps): return "pfn ambiguous (\(ps.map(\.description).joined(separator: ", ")))"
        }
    }

    func output<R: TextResult>(_ command: String, _ r: R, lines: Bool = false) throws -> CommandOutput {
        let data = try (lines ? jsonLineEncoder : jsonEncoder).encode(Envelope(dump: dump.path, command: command, result: r))
        return CommandOutput(command: command, text: r.text, jsonData: data, exitCode: r.exitCode)
    }

    // MARK: commands

    /// Run one command line as typed ("rd -64 linux_banner 4"); "quotes" group words.
    public func execute(line: String) throws -> CommandOutput { try execute(ShellWords.split(line)) }

    /// Run one command line (already split into words): the same parser in every mode, so
    /// `rd --help`, options after the command and errors behave alike.
    public func execute(_ argv: [String]) throws -> CommandOutput {
        guard let word = argv.first else { throw AnalyzerError("no command; try help") }
        guard AnalyzerCommands.names.contains(word) || word == "help" else {
            throw AnalyzerError("unknown command \(word); try help")
        }
        let parsed: ParsableCommand
        do { parsed = try AnalyzerCommands.parseAsRoot(argv) } catch {
            let code = AnalyzerCommands.exitCode(for: error)
            let msg = AnalyzerCommands.fullMessage(for: error)
            if code == .success { return CommandOutput(command: word, text: msg + "\n", jsonData: Data("{\"help\":\(String(decoding: (try? jsonLineEncoder.encode(msg)) ?? Data(), as: UTF8.self))}".utf8)) }
            throw AnalyzerError(msg)
        }
        guard let c = parsed as? SessionCommand else {
            return CommandOutput(command: word, text: AnalyzerCommands.helpMessage() + "\n", jsonData: Data("{}".utf8))
        }
        return try c.execute(in: self)
    }
}
