// Every command of the session, and the one way a line runs: the same words and the same help
// in the analyzer's one-shot, prompt and script modes and in the C library's p2mnote_command.
import Foundation

/// The session's command set.
public enum GuestCommands {
    /// The commands, in the order help lists them.
    public static let all: [CommandSpec] = [
        Info.spec, Notes.spec, P2MCmd.spec, M2PCmd.spec, Vtop.spec, Ptov.spec, Rd.spec,
        Sym.spec, Banner.spec, Mod.spec, Regs.spec, Check.spec, Domains.spec,
    ]

    /// The command words (for completion and the tools' help).
    public static var names: [String] { all.map(\.name) }

    /// One line a command: "  rd      64-bit words at …".
    public static var summary: String {
        all.map { "  " + $0.name.padding(toLength: 8, withPad: " ", startingAt: 0) + $0.abstract }.joined(separator: "\n")
    }

    /// Run one command line as typed ("rd linux_banner 4"); "quotes" group words.
    public static func execute(line: String, in s: GuestSession) throws -> CommandOutput {
        try execute(ShellWords.split(line), in: s)
    }

    /// Run one command line, already split into words.
    public static func execute(_ argv: [String], in s: GuestSession) throws -> CommandOutput {
        guard let word = argv.first else { throw SessionError("no command; try help") }
        if let h = try help(argv, in: s) { return h }
        guard let spec = all.first(where: { $0.name == word }) else { throw SessionError("unknown command \(word); try help") }
        return try spec.run(s, try spec.parse(argv.dropFirst()))
    }

    /// `help`, `help CMD`, `CMD --help` and `CMD -h`: the command's own usage, options and
    /// abstract; JSON carries the same text. nil when the words ask for no help.
    static func help(_ argv: [String], in s: GuestSession) throws -> CommandOutput? {
        guard let word = argv.first else { return nil }
        let target: String?
        if word == "help" {
            target = argv.dropFirst().first
        } else if CommandSpec.asksForHelp(argv.dropFirst()) {
            target = word
        } else {
            return nil
        }
        let text: String
        if let t = target {
            guard let spec = all.first(where: { $0.name == t }) else { throw SessionError("unknown command \(t); try help") }
            text = spec.help
        } else {
            text = "Commands (COMMAND --help or help COMMAND for each):\n\(summary)\n  help    This list, or a command's help.\n  quit    Leave the prompt (also q, exit, Ctrl-D)."
        }
        return try s.output("help", HelpResult(command: target, help: text))
    }
}

struct HelpResult: TextResult {
    var command: String?
    var help: String
    var text: String { help.hasSuffix("\n") ? help : help + "\n" }
}

/// A positional word that must be a hex number.
func hexWord(_ w: ParsedWords, _ name: String) throws -> UInt64 {
    let s = w.value(name)
    guard let v = parseHexArg(s) else { throw SessionError("<\(name)> \(s): not a hex number") }
    return v
}

extension GuestSession {
    /// Run one command line on this session (GuestCommands.execute).
    public func execute(_ argv: [String]) throws -> CommandOutput { try GuestCommands.execute(argv, in: self) }
    /// Run one command line as typed.
    public func execute(line: String) throws -> CommandOutput { try GuestCommands.execute(line: line, in: self) }
}
