// What the session's commands and both front ends (the tools, the C library) share: the one
// version string, a command's output (text and JSON made from one Codable value), errors,
// and the number syntax crash uses (hex addresses, decimal counts).
import Foundation
import P2MFormat
import Translation

/// The one version string: the tools' `--version`, `p2mnote_version()` and, through it, the
/// Python package (python/tests/test_cli.py checks that its `__version__` and pyproject.toml
/// say the same number). The note format is the newest the encoder writes (1.1 records a domain).
public let p2mnoteVersion = "p2mnote 0.3.0 (note format 1.1)"

/// A command's result as the caller gets it: the text a person reads and the JSON envelope
/// `{"dump": …, "command": …, "result": …}` (Spec/json.md), both made from the same value.
public struct CommandOutput {
    /// The command's name ("rd", "mod", …; "help").
    public var command: String
    /// The text rendering, ending in a newline.
    public var text: String
    /// The JSON envelope, encoded.
    public var jsonData: Data
    /// The exit status a tool returns for it (nonzero: the command's answer is "no", as `check`'s MISMATCH).
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

/// A command that cannot run as asked: a bad argument, an unknown command, a pfn beyond the p2m.
public struct SessionError: Error, CustomStringConvertible {
    /// What is wrong, for people.
    public let message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}

/// Pretty JSON (one-shot commands, files).
public let jsonEncoder: JSONEncoder = {
    let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]; return e
}()
/// One JSON value per line (scripts).
public let jsonLineEncoder: JSONEncoder = {
    let e = JSONEncoder(); e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]; return e
}()

/// Addresses, pfns and mfns are hexadecimal, with or without 0x, as crash reads them.
public func parseHexArg(_ s: String) -> UInt64? {
    let t = s.hasPrefix("0x") || s.hasPrefix("0X") ? String(s.dropFirst(2)) : s
    guard !t.isEmpty, t.count <= 16 else { return nil }
    return UInt64(t, radix: 16)
}

/// Counts are decimal (or 0x-hex).
public func parseCountArg(_ s: String) -> UInt64? {
    s.hasPrefix("0x") || s.hasPrefix("0X") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s)
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

/// Split a command line into words; "quotes" group words.
public enum ShellWords {
    /// The words of `line`: blanks separate, quotes group (crash reads a line the same way).
    public static func split(_ line: String) -> [String] {
        var out: [String] = [], cur = "", quote: Character? = nil, any = false
        for c in line {
            if let q = quote { if c == q { quote = nil } else { cur.append(c) }; continue }
            if c == "\"" || c == "'" { quote = c; any = true; continue }
            if c == " " || c == "\t" { if any || !cur.isEmpty { out.append(cur) }; cur = ""; any = false; continue }
            cur.append(c)
        }
        if any || !cur.isEmpty { out.append(cur) }
        return out
    }
}

/// The text form of a cross-check (the JSON form is the report itself): `check`, emit and inject say it.
public enum CrossCheckText {
    /// One block per source compared (agrees, DIFFERS with the first differences, unreadable),
    /// then the sources that could not be compared and why.
    public static func render(_ c: CrossCheckReport, subject: String = "note") -> String {
        var t = ""
        for s in c.comparisons {
            let label = (s.source.rawValue + ":").padding(toLength: 13, withPad: " ", startingAt: 0)
            if let e = s.error { t += "\(label)unreadable: \(e)\n"; continue }
            let cover = "\(subject) covers \(s.mapEntries) pfns, \(s.source) \(s.sourceEntries)\(s.sparse ? " (listed pfns only)" : ""); compared \(s.compared)"
            if s.differences == 0 {
                t += "\(label)agrees (\(cover)\(s.identityBlind ? "; identity not told from missing there" : "")\(s.foreignBlind ? "; foreign frames not seen there" : ""))\n"
            } else {
                t += "\(label)DIFFERS in \(s.differences) entries (\(cover))\n"
                for d in s.first { t += "             pfn \(d.pfn): \(subject) \(P2MEntry(raw: d.expected.value)), \(s.source) \(P2MEntry(raw: d.found.value))\n" }
            }
            if s.unknownPfns > 0 { t += "             \(s.unknownPfns) pfns not compared: their list pages are not in the dump\n" }
            t += "             \(s.location)\n"
        }
        for u in c.unavailable { t += (u.source.rawValue + ":").padding(toLength: 13, withPad: " ", startingAt: 0) + "not compared: \(u.reason)\n" }
        return t
    }
}

/// Entry counts by kind (Spec §3).
public struct CountsJSON: Codable, Sendable, Equatable {
    /// Entries of each kind.
    public var mfn: UInt64, invalid: UInt64, identity: UInt64, foreign: UInt64
    public init(_ c: EntryCounts) { mfn = c.mfn; invalid = c.invalid; identity = c.identity; foreign = c.foreign }
}

