/// The directory that holds a file, derived from the path's bytes alone. Foundation's
/// `deletingLastPathComponent` trapped (SIGILL) on a one-character relative name ("v"), and an
/// injector must fsync the directory it renames in whatever the user typed: a bare name, "./x",
/// "../x", "/x", a name with spaces or bytes that are not UTF-8 (they pass through untouched).
public enum PathName {
    /// "." for a bare name, "/" for a file in the root, else everything before the last "/"
    /// (trailing slashes of the file name and of the directory removed).
    public static func directory(of path: String) -> String {
        var bytes = Array(path.utf8)
        while bytes.count > 1, bytes.last == UInt8(ascii: "/") { bytes.removeLast() }
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        var dir = Array(bytes[..<slash])
        while dir.count > 1, dir.last == UInt8(ascii: "/") { dir.removeLast() }
        if dir.isEmpty { return "/" }
        return String(decoding: dir, as: UTF8.self)
    }
}
