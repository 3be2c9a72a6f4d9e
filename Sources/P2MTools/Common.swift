// What every tool shares: hex arguments, output files, errors as JSON, help paragraphs.
import ArgumentParser
import DumpIO
import Foundation
import GuestReader
import P2MFormat
import Translation

struct HexNumber: ExpressibleByArgument {
    let value: UInt64
    init?(argument: String) { guard let v = parseHexArg(argument) else { return nil }; value = v }
    static var defaultCompletionKind: CompletionKind { .default }
}

func warn(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

func printJSON<T: Encodable>(_ v: T, lines: Bool = false) throws {
    print(String(decoding: try (lines ? jsonLineEncoder : jsonEncoder).encode(v), as: UTF8.self))
}

/// An error as JSON on stderr (Spec/json.md, "error").
public struct ErrorJSON: Codable {
    public var error: String
    public var tool: String
    public var file: String?
    public var offset: Hex64?
    public var command: String?
    init(_ e: Error, tool: String, command: String? = nil) {
        error = "\(e)"; self.tool = tool; self.command = command
        if let d = e as? DumpError { file = d.file; offset = d.offset.map(Hex64.init); error = d.message }
    }
}

/// Run `body`; with --json, an error goes to stderr as one JSON object, and the exit status is 1.
func reportingErrors(json: Bool, tool: String, _ body: () throws -> Void) throws {
    do { try body() } catch let e as ExitCode { throw e } catch let e as ValidationError { throw e } catch let e as CleanExit { throw e } catch {
        if json {
            warn(String(decoding: (try? jsonLineEncoder.encode(ErrorJSON(error, tool: tool))) ?? Data("{}".utf8), as: UTF8.self))
        } else {
            warn("\(tool): error: \(error)")
        }
        throw ExitCode(1)
    }
}

/// Output files: never overwritten silently, never left half-written.
enum OutputFile {
    /// Refuse before doing any work: a directory, an existing file without --force, a
    /// directory that cannot be written (with the hint to use -o).
    static func checkWritable(_ path: String, force: Bool, hintFor input: String? = nil) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR { throw DumpError(path, "is a directory; give the output file with -o") }
            if !force { throw DumpError(path, "exists already; pass --force to overwrite it") }
        }
        let dir = PathName.directory(of: path)
        if access(dir, W_OK) != 0 {
            throw DumpError(path, "cannot write in \(dir) (\(String(cString: strerror(errno))))\(input != nil ? "; use -o to write the note elsewhere" : "")")
        }
    }

    /// Write via a temporary file in the same directory, fsync, rename: a failed write leaves
    /// nothing behind and never a partial file under the final name.
    static func write(_ bytes: [UInt8], to path: String, force: Bool) throws {
        try stream(to: path, force: force) { w in try w.append(bytes) }
    }

    /// Appends to the temporary file of `stream`.
    final class Writer {
        let fd: Int32, path: String
        private(set) var offset: UInt64 = 0
        init(fd: Int32, path: String) { self.fd = fd; self.path = path }
        func append(_ bytes: [UInt8]) throws {
            try bytes.withUnsafeBytes { try append(raw: $0) }
        }
        func append(raw b: UnsafeRawBufferPointer) throws {
            var done = 0
            while done < b.count {
                let n = Foundation.write(fd, b.baseAddress! + done, b.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw DumpError(path, offset: offset + UInt64(done), "write failed: \(String(cString: strerror(errno)))") }
                done += n
            }
            offset += UInt64(b.count)
        }
        /// Leave `count` zero bytes as a hole (the file stays sparse); `finish` sets the size.
        func skip(_ count: UInt64) throws {
            guard count > 0 else { return }
            let (end, o) = offset.addingReportingOverflow(count)
            guard !o, end < UInt64(Int64.max), lseek(fd, off_t(end), SEEK_SET) >= 0 else { throw DumpError(path, offset: offset, "cannot seek past \(count) bytes") }
            offset = end
        }
        func finish() throws {
            guard ftruncate(fd, off_t(offset)) == 0 else { throw DumpError(path, "cannot set the size to \(offset): \(String(cString: strerror(errno)))") }
        }
        func pad(to alignment: UInt64) throws {
            let r = offset % alignment
            if r != 0 { try append([UInt8](repeating: 0, count: Int(alignment - r))) }
        }
    }

    /// Build a file through `body` in a temporary file beside it, fsync, rename.
    static func stream(to path: String, force: Bool, _ body: (Writer) throws -> Void) throws {
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DumpError(tmp, "cannot create: \(String(cString: strerror(errno)))") }
        var ok = false
        var closed = false
        defer { if !closed { close(fd) }; if !ok { unlink(tmp) } }
        let w = Writer(fd: fd, path: path)
        try body(w)
        try w.finish()
        guard fsync(fd) == 0 else { throw DumpError(path, "fsync failed: \(String(cString: strerror(errno)))") }
        close(fd); closed = true
        if !force, access(path, F_OK) == 0 { throw DumpError(path, "appeared while it was being written; not overwritten") }
        guard rename(tmp, path) == 0 else { throw DumpError(path, "cannot rename the finished file into place: \(String(cString: strerror(errno)))") }
        ok = true
    }
}

/// Help text written as wrapped paragraphs in the source, joined so that the argument parser
/// wraps it to the terminal: lines of a paragraph become one line; blank lines and indented
/// lines (examples) stay as they are.
func reflow(_ text: String) -> String {
    var out: [String] = []
    var para = ""
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.isEmpty || line.hasPrefix(" ") {
            if !para.isEmpty { out.append(para); para = "" }
            out.append(String(line))
        } else {
            para += (para.isEmpty ? "" : " ") + line
        }
    }
    if !para.isEmpty { out.append(para) }
    return out.joined(separator: "\n")
}
