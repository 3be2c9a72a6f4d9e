import ArgumentParser
import CEdit
import DumpIO
import Foundation
import GuestReader
import P2MFormat
import Translation

public struct AnalyzeCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "p2m-analyze",
        abstract: "Read a Xen PV dump (dom0 vmcore or xl dump-core) using its p2mnote note first.",
        discussion: reflow("""
        Commands (crash's words where crash has one; `COMMAND --help` for each):
        \(GuestCommands.summary)

        With a COMMAND, runs it once. With `-`, or no command and stdin not a terminal, reads
        commands from stdin, one per line (with --json: one JSON value per line). On a terminal
        with no command, prompts, with line editing, history (~/.p2m_analyze_history) and
        completion of command words and symbols; Ctrl-C stops the running command.
        The options below may stand before or after the command.
        Kernel virtual addresses are translated by walking the guest's page tables in machine
        memory (entries hold MFNs), so no translation ever needs the p2m it is trying to read.

        Examples:
          p2m-analyze dom0.vmcore --system-map System.map info
          p2m-analyze dom0.vmcore mod --system-map System.map --json
          p2m-analyze dom0.vmcore --system-map System.map rd -p 9f000 4
          p2m-analyze dom0.vmcore --system-map System.map - < commands.txt
        """),
        version: p2mnoteVersion)

    @Argument(help: "The dump.") var dump: String
    @Argument(parsing: .captureForPassthrough, help: "COMMAND [ARGS...] (see above), or - for a script on stdin.") var command: [String] = []
    @Option(help: "System.map of the guest kernel; optional where the dump's kernel carries kallsyms in its VMCOREINFO (Linux 6.0 and later), which are then read from the dump.") var systemMap: String?
    @Option(help: "vmlinux of the guest kernel (linux-image-*-dbg): its symbols, and struct layouts from its DWARF; refused when it is another build.") var vmlinux: String?
    @Option(help: "Machine address of the guest's top page table (hex).") var cr3: HexNumber?
    @Option(help: "MFN of the frame-list-list page (hex).") var p2mMfn: HexNumber?
    @Flag(help: "Ignore the p2mnote note (use the dump's own tables).") var noNote = false
    @Option(help: "Read this domain of a crashed Xen host's dump (see the `domains` command).") var domain: UInt16?
    @Option(help: "Xen's symbols (xen-syms or xen-syms.map from xen-hypervisor-*-dbg): optional; checks what Xen's tables were read as, and xen-syms with DWARF (Xen 4.20's) gives struct domain's and struct vcpu's layout.") var xenSyms: String?
    @Flag(help: "JSON output (errors too, on stderr).") var json = false
    @Option(help: "struct module offsets as list,name,core_base,core_size (hex).") var moduleOffsets: String?

    public init() {}

    /// Global options taken from anywhere in the command words.
    struct Globals {
        var o: GuestOptions
        var json: Bool
    }

    static func extractGlobals(_ words: [String], into g: inout Globals) throws -> [String] {
        var out: [String] = []
        var i = 0
        func value(_ f: String) throws -> String {
            guard i + 1 < words.count else { throw ValidationError("\(f) needs a value") }
            i += 1; return words[i]
        }
        while i < words.count {
            let w = words[i]
            var name = w, inline: String? = nil
            if w.hasPrefix("--"), let eq = w.firstIndex(of: "=") { name = String(w[..<eq]); inline = String(w[w.index(after: eq)...]) }
            func v() throws -> String { if let x = inline { return x }; return try value(name) }
            switch name {
            case "--system-map": g.o.guest.systemMap = try v()
            case "--vmlinux": g.o.guest.vmlinux = try v()
            case "--cr3": let s = try v(); guard let n = parseHexArg(s) else { throw ValidationError("--cr3 \(s): not a hex number") }; g.o.guest.cr3 = MachAddr(rawValue: n)
            case "--p2m-mfn": let s = try v(); guard let n = parseHexArg(s) else { throw ValidationError("--p2m-mfn \(s): not a hex number") }; g.o.guest.p2mMFN = MFN(rawValue: n)
            case "--module-offsets":
                let s = try v()
                guard let m = ModuleOffsets(argument: s, parse: parseHexArg) else { throw ValidationError("--module-offsets wants 4 hex numbers: list,name,core_base,core_size") }
                g.o.moduleOffsets = m
            case "--no-note": g.o.guest.useNote = false
            case "--xen-syms": g.o.guest.xenSyms = try v()
            case "--domain": let s = try v(); guard let n = UInt16(s) else { throw ValidationError("--domain \(s): not a domain id (0-65535)") }; g.o.guest.domain = n
            case "--json": g.json = true
            default: out.append(w)
            }
            i += 1
        }
        return out
    }

    public func run() throws {
        var o = GuestOptions(dump: dump)
        o.guest.systemMap = systemMap; o.guest.vmlinux = vmlinux; o.guest.cr3 = cr3.map { MachAddr(rawValue: $0.value) }
        o.guest.p2mMFN = p2mMfn.map { MFN(rawValue: $0.value) }; o.guest.useNote = !noNote; o.guest.domain = domain; o.guest.xenSyms = xenSyms
        if let m = moduleOffsets {
            guard let l = ModuleOffsets(argument: m, parse: parseHexArg) else { throw ValidationError("--module-offsets wants 4 hex numbers: list,name,core_base,core_size") }
            o.moduleOffsets = l
        }
        var g = Globals(o: o, json: json)
        let args = try AnalyzeCommand.extractGlobals(command, into: &g)
        // `p2m-analyze DUMP -h`: the tool's own help, as before the dump (the words after the
        // dump are captured for the command, so ArgumentParser never sees this one).
        if args == ["-h"] || args == ["--help"] {
            print(AnalyzeCommand.helpMessage())
            return
        }
        let asJSON = g.json
        var session: GuestSession!
        try reportingErrors(json: asJSON, tool: "p2m-analyze") { session = try GuestSession(g.o); try session.refuseForeignSymbols() }
        if !args.isEmpty && args != ["-"] {
            try reportingErrors(json: asJSON, tool: "p2m-analyze") {
                let out = try GuestCommands.execute(args, in: session)
                emit(out, json: asJSON, lines: false)
                if out.exitCode != 0 { throw ExitCode(out.exitCode) }
            }
            return
        }
        let interactive = args.isEmpty && isatty(0) != 0
        var failures: Int32 = 0
        let prompt = interactive ? Prompt(symbols: session.symbols) : nil
        while true {
            guard let line = prompt?.readLine() ?? (interactive ? nil : Swift.readLine()) else { break }
            var words: [String]
            do { words = try AnalyzeCommand.extractGlobals(ShellWords.split(line), into: &g) } catch {
                warn("p2m-analyze: \(error)"); failures = 1; continue
            }
            if words.isEmpty || words[0].hasPrefix("#") { continue }
            if ["q", "quit", "exit"].contains(words[0]) { break }
            let j = g.json
            g.json = asJSON
            Interrupt.reset()
            do {
                let out = try GuestCommands.execute(words, in: session)
                emit(out, json: j, lines: !interactive)
                if out.exitCode != 0 { failures = out.exitCode }
            } catch {
                if j { warn(String(decoding: (try? jsonLineEncoder.encode(ErrorJSON(error, tool: "p2m-analyze", command: words[0]))) ?? Data(), as: UTF8.self)) }
                else { warn("p2m-analyze: \(words[0]): \(error)") }
                failures = 1
            }
        }
        prompt?.save()
        if failures != 0 && !interactive { throw ExitCode(failures) }
    }

    func emit(_ out: CommandOutput, json: Bool, lines: Bool) {
        if json {
            if lines, let obj = try? JSONSerialization.jsonObject(with: out.jsonData),
               let d = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes]) {
                print(String(decoding: d, as: UTF8.self))
            } else {
                print(String(decoding: out.jsonData, as: UTF8.self))
            }
        } else {
            print(out.text, terminator: "")
        }
        fflush(stdout)
    }
}

/// The interactive prompt: libedit's readline with history and completion of command words
/// and symbols. SIGINT sets a flag that long commands check; the prompt itself carries on.
final class Prompt {
    nonisolated(unsafe) static var commands: [String] = []
    nonisolated(unsafe) static var symbols: [String] = []
    /// What Tab offers: command words at the start of the line, symbols after them.
    nonisolated(unsafe) static var completingCommand = true
    let historyPath: String

    init(symbols: SymbolTable) {
        Prompt.commands = (GuestCommands.names + ["help", "quit"]).sorted()
        Prompt.symbols = symbols.allNames.sorted()
        historyPath = (ProcessInfo.processInfo.environment["HOME"] ?? ".") + "/.p2m_analyze_history"
        rl_readline_name = UnsafePointer(strdup("p2m-analyze"))
        rl_catch_signals = 0
        rl_attempted_completion_function = { text, start, _ in
            guard let text else { return nil }
            rl_attempted_completion_over = 1
            // The word being completed is the command when only blanks stand before it.
            let line = rl_line_buffer.map { String(cString: $0) } ?? ""
            let before = Array(line.utf8.prefix(Int(max(0, start))))
            Prompt.completingCommand = before.allSatisfy { $0 == 0x20 || $0 == 0x09 }
            return rl_completion_matches(text) { t, state in
                struct S { nonisolated(unsafe) static var matches: [String] = []; nonisolated(unsafe) static var next = 0 }
                if state == 0 {
                    let prefix = t.map { String(cString: $0) } ?? ""
                    S.matches = (Prompt.completingCommand ? Prompt.commands : Prompt.symbols).filter { $0.hasPrefix(prefix) }.prefix(1000).map { $0 }
                    S.next = 0
                }
                guard S.next < S.matches.count else { return nil }
                S.next += 1
                return strdup(S.matches[S.next - 1])
            }
        }
        using_history()
        _ = read_history(historyPath)
        Prompt.installInterrupt()
    }

    func readLine() -> String? {
        while true {
            Interrupt.reset()
            guard let p = readline("p2m> ") else {
                // Ctrl-C at the prompt: drop the line, prompt again; otherwise end of input.
                if Interrupt.requested { print("^C"); continue }
                print(""); return nil
            }
            defer { free(p) }
            let s = String(cString: p)
            if Interrupt.requested { print("^C"); continue }
            if !s.trimmingCharacters(in: .whitespaces).isEmpty { add_history(p) }
            return s
        }
    }

    func save() { _ = write_history(historyPath) }

    /// SIGINT sets Interrupt's flag, without SA_RESTART, so that a blocked read (the prompt)
    /// returns and can start a new line, and a long command stops at its next check.
    static func installInterrupt() {
        var sa = sigaction()
        sa.__sigaction_handler.sa_handler = { _ in Interrupt.request() }
        sigemptyset(&sa.sa_mask)
        sa.sa_flags = 0
        sigaction(SIGINT, &sa, nil)
    }
}
