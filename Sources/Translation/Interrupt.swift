// Ctrl-C: a front end's signal handler (the analyzer's prompt installs one) only sets a flag;
// long loops (list reads, cross-checks, rd) check it and throw, so the command stops and the
// session goes on. This layer installs no handler: a library caller keeps its own.
import Foundation

public enum Interrupt {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0
    public static var requested: Bool { flag != 0 }
    public static func reset() { flag = 0 }
    /// Ask the running command to stop (async-signal-safe: one store).
    public static func request() { flag = 1 }
    /// Throw TranslationError(kind: .interrupted) if a stop was asked for since the last check.
    public static func check() throws {
        if flag != 0 { flag = 0; throw TranslationError("interrupted", kind: .interrupted) }
    }
}
