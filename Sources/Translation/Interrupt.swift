// Ctrl-C at the analyzer's prompt: the signal handler only sets a flag; long loops (list
// reads, cross-checks) check it and throw, so the command stops and the session goes on.
import Foundation

public enum Interrupt {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0
    public static var requested: Bool { flag != 0 }
    public static func reset() { flag = 0 }
    /// Without SA_RESTART, so a blocked read (the prompt) returns and can start a new line.
    public static func install() {
        var sa = sigaction()
        sa.__sigaction_handler.sa_handler = { _ in Interrupt.flag = 1 }
        sigemptyset(&sa.sa_mask)
        sa.sa_flags = 0
        sigaction(SIGINT, &sa, nil)
    }
    public static func check() throws {
        if flag != 0 { flag = 0; throw TranslationError("interrupted") }
    }
}
