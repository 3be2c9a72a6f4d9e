// A session command's words as data: its name, what it does, its parameters. The line grammar
// and every help text are made from these, so the prompt, scripts, one-shot commands and the C
// library's p2mnote_command parse alike, and libp2mnote.so carries no argument-parsing library.
//
// The grammar is crash's: options and positional words in any order, short flags may be
// grouped (`-pm`), `--` ends the options (a word after it is positional even if it starts
// with '-'), `-h`/`--help` anywhere asks for the command's help.

/// One parameter of a command.
public struct CommandParameter: Sendable {
    /// Positional word or flag.
    public enum Kind: Sendable {
        /// A positional word; with a default it may be left out.
        case positional(default: String?)
        /// An option without a value, by its short letter, its long name, or both.
        case flag(short: Character?, long: String?)
    }
    /// The key its value is found under (positional: shown as `<name>`).
    public let name: String
    public let kind: Kind
    /// One line for the command's help.
    public let help: String

    /// A positional word (`default`: it may be left out).
    public static func argument(_ name: String, default value: String? = nil, _ help: String) -> CommandParameter {
        CommandParameter(name: name, kind: .positional(default: value), help: help)
    }
    /// A flag, `-s` and/or `--long`.
    public static func flag(_ name: String, short: Character? = nil, long: String? = nil, _ help: String) -> CommandParameter {
        CommandParameter(name: name, kind: .flag(short: short, long: long), help: help)
    }

    /// How the help's OPTIONS list names it: "-p", "--scan", "-a, --all".
    var optionLabel: String {
        guard case .flag(let s, let l) = kind else { return "<\(name)>" }
        return [s.map { "-\($0)" }, l.map { "--\($0)" }].compactMap { $0 }.joined(separator: ", ")
    }
}

/// The words of one command line, parsed against its parameters.
public struct ParsedWords: Sendable {
    private var values: [String: String] = [:]
    private var flags: Set<String> = []
    /// A positional parameter's word (its default when left out; "" if it has none, which the
    /// parser never lets through for a required one).
    public func value(_ name: String) -> String { values[name] ?? "" }
    /// Whether a flag was given.
    public func flag(_ name: String) -> Bool { flags.contains(name) }

    init(values: [String: String], flags: Set<String>) { self.values = values; self.flags = flags }
}

/// A command of the session: what it is called, says and takes, and what it does.
public struct CommandSpec {
    /// The command's word ("rd").
    public let name: String
    /// One line: what it does.
    public let abstract: String
    /// More, for its help.
    public let discussion: String?
    /// What it takes, in usage order.
    public let parameters: [CommandParameter]
    let run: (GuestSession, ParsedWords) throws -> CommandOutput

    init(_ name: String, abstract: String, discussion: String? = nil, parameters: [CommandParameter] = [],
         run: @escaping (GuestSession, ParsedWords) throws -> CommandOutput) {
        self.name = name; self.abstract = abstract; self.discussion = discussion; self.parameters = parameters; self.run = run
    }

    private var flags: [CommandParameter] { parameters.filter { if case .flag = $0.kind { return true }; return false } }
    private var positionals: [CommandParameter] { parameters.filter { if case .positional = $0.kind { return true }; return false } }

    /// Whether `words` (after the command's name) ask for help.
    static func asksForHelp(_ words: ArraySlice<String>) -> Bool {
        for w in words { if w == "--" { return false }; if w == "-h" || w == "--help" { return true } }
        return false
    }

    /// Parse the words after the command's name.
    public func parse(_ words: ArraySlice<String>) throws -> ParsedWords {
        var values: [String: String] = [:]
        var given: Set<String> = []
        var rest: [String] = []
        var optionsEnded = false
        for w in words {
            if optionsEnded || !w.hasPrefix("-") || w == "-" { rest.append(w); continue }
            if w == "--" { optionsEnded = true; continue }
            if w.hasPrefix("--") {
                let long = String(w.dropFirst(2))
                guard let p = flags.first(where: { if case .flag(_, let l) = $0.kind { return l == long }; return false }) else {
                    throw SessionError("\(name): unknown option \(w)\(usageHint)")
                }
                given.insert(p.name)
                continue
            }
            for c in w.dropFirst() {
                guard let p = flags.first(where: { if case .flag(let s, _) = $0.kind { return s == c }; return false }) else {
                    throw SessionError("\(name): unknown option -\(c)\(w.count > 2 ? " (in \(w))" : "")\(usageHint)")
                }
                given.insert(p.name)
            }
        }
        let ps = positionals
        guard rest.count <= ps.count else {
            throw SessionError("\(name): unexpected word \(rest[ps.count])\(ps.isEmpty ? " (it takes none)" : "")\(usageHint)")
        }
        for (i, p) in ps.enumerated() {
            guard case .positional(let d) = p.kind else { continue }
            if i < rest.count { values[p.name] = rest[i] }
            else if let d { values[p.name] = d }
            else { throw SessionError("\(name): missing <\(p.name)>\(usageHint)") }
        }
        return ParsedWords(values: values, flags: given)
    }

    private var usageHint: String { "; usage: \(usage)" }

    /// "rd [-p] [-m] <address> [<count>]"
    public var usage: String {
        var u = [name]
        for f in flags { u.append("[\(f.optionLabel.components(separatedBy: ", ").first ?? "")]") }
        for p in positionals { if case .positional(let d) = p.kind { u.append(d == nil ? "<\(p.name)>" : "[<\(p.name)>]") } }
        return u.joined(separator: " ")
    }

    /// The command's help: what it does, its usage, its arguments and options.
    public var help: String {
        var t = "OVERVIEW: \(abstract)\n\n"
        if let d = discussion { t += d + "\n\n" }
        t += "USAGE: \(usage)\n"
        func row(_ label: String, _ text: String) -> String {
            "  " + label.padding(toLength: max(22, label.count), withPad: " ", startingAt: 0) + "  " + text + "\n"
        }
        if !positionals.isEmpty {
            t += "\nARGUMENTS:\n"
            for p in positionals {
                guard case .positional(let d) = p.kind else { continue }
                t += row("<\(p.name)>", p.help + (d.map { " (default: \($0))" } ?? ""))
            }
        }
        t += "\nOPTIONS:\n"
        for f in flags { t += row(f.optionLabel, f.help) }
        return t + row("-h, --help", "Show this help.")
    }
}
