import ArgumentParser
import DumpIO
import Foundation
import P2MFormat

public struct AnalyzeCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "p2m-analyze",
        abstract: "Read a Xen PV dump (dom0 vmcore or xl dump-core) using its p2mnote note first.",
        discussion: """
        Commands (crash's words where crash has one):
        \(AnalyzerSession.helpText)

        With a COMMAND, runs it once. With `-` or no command and stdin not a terminal, reads
        commands from stdin, one per line. On a terminal with no command, prompts.
        Kernel virtual addresses are translated by walking dom0's page tables in machine memory
        (entries hold MFNs), so no translation ever needs the p2m it is trying to read.
        """)

    @Argument(help: "The dump.") var dump: String
    @Argument(parsing: .captureForPassthrough, help: "COMMAND [ARGS...] (see above), or - for a script on stdin.") var command: [String] = []
    @Option(help: "System.map of the guest kernel.") var systemMap: String?
    @Option(help: "vmlinux of the guest kernel (its symbol table).") var vmlinux: String?
    @Option(help: "Machine address of the guest's top page table.") var cr3: HexNumber?
    @Option(help: "MFN of the frame-list-list page.") var p2mMfn: HexNumber?
    @Flag(help: "Ignore the p2mnote note (use the dump's own tables).") var noNote = false
    @Flag(help: "JSON output.") var json = false
    @Option(help: "struct module offsets as list,name,core_base,core_size (hex).") var moduleOffsets: String?

    public init() {}

    public func run() throws {
        var o = AnalyzerOptions(dump: dump)
        o.systemMap = systemMap; o.vmlinux = vmlinux; o.cr3 = cr3?.value; o.p2mMFN = p2mMfn?.value; o.useNote = !noNote
        // Options may also stand between DUMP and the command word (captured with it).
        var args = command
        var asJSON = json
        var moduleOffsets = self.moduleOffsets
        while let f = args.first, f.hasPrefix("--") {
            func value() throws -> String {
                guard args.count >= 2 else { throw ValidationError("\(f) needs a value") }
                let v = args[1]; args.removeFirst(2); return v
            }
            switch f {
            case "--system-map": o.systemMap = try value()
            case "--vmlinux": o.vmlinux = try value()
            case "--cr3": let v = try value(); guard let n = parseNumberArg(v) else { throw ValidationError("--cr3 \(v)") }; o.cr3 = n
            case "--p2m-mfn": let v = try value(); guard let n = parseNumberArg(v) else { throw ValidationError("--p2m-mfn \(v)") }; o.p2mMFN = n
            case "--module-offsets": moduleOffsets = try value()
            case "--no-note": o.useNote = false; args.removeFirst()
            case "--json": asJSON = true; args.removeFirst()
            default: throw ValidationError("unknown option \(f)")
            }
        }
        if let m = moduleOffsets {
            let f = m.split(separator: ",").compactMap { parseNumberArg(String($0)) }
            guard f.count == 4 else { throw ValidationError("--module-offsets wants 4 numbers") }
            o.moduleLayout.list = f[0]; o.moduleLayout.name = f[1]; o.moduleLayout.coreBase = f[2]; o.moduleLayout.coreSize = f[3]
        }
        let session = try AnalyzerSession(o)
        if let i = args.firstIndex(of: "--json") { args.remove(at: i); asJSON = true }
        if !args.isEmpty && args != ["-"] {
            let out = try session.execute(args)
            emit(out, json: asJSON)
            if out.exitCode != 0 { throw ExitCode(out.exitCode) }
            return
        }
        let interactive = args.isEmpty && isatty(0) != 0
        var failures: Int32 = 0
        while true {
            if interactive { print("p2m> ", terminator: ""); fflush(stdout) }
            guard let line = readLine() else { break }
            var words = line.split(separator: " ").map(String.init)
            if words.isEmpty || words[0].hasPrefix("#") { continue }
            if words == ["q"] || words == ["quit"] || words == ["exit"] { break }
            var j = asJSON
            if let i = words.firstIndex(of: "--json") { words.remove(at: i); j = true }
            do {
                let out = try session.execute(words)
                emit(out, json: j)
                if out.exitCode != 0 { failures = out.exitCode }
            } catch {
                FileHandle.standardError.write(Data("p2m-analyze: \(words[0]): \(error)\n".utf8))
                failures = 1
            }
        }
        if failures != 0 && !interactive { throw ExitCode(failures) }
    }

    func emit(_ out: CommandOutput, json: Bool) {
        if json, JSONSerialization.isValidJSONObject(out.json),
           let d = try? JSONSerialization.data(withJSONObject: out.json, options: [.prettyPrinted, .sortedKeys]) {
            print(String(decoding: d, as: UTF8.self))
        } else if json {
            print("{\"value\": \"\(out.json)\"}")
        } else {
            print(out.text, terminator: "")
        }
    }
}
