// A dump file opened for reading: the descriptor lives exactly as long as this object, so a
// parser that throws halfway never leaks it (the C library and Python callers open many dumps
// in one process). The file type is checked before open(2): a FIFO would block every tool
// forever, a directory would read as a 4096-byte "file".
import Foundation

public final class OpenFile {
    public let path: String
    public let fd: Int32
    public let size: UInt64

    public init(path: String) throws {
        self.path = path
        var st = stat()
        guard stat(path, &st) == 0 else {
            let e = errno
            var lst = stat()
            if e == ENOENT, lstat(path, &lst) == 0, (lst.st_mode & S_IFMT) == S_IFLNK {
                throw DumpError.cannotOpen(path, "a dangling symbolic link (its target does not exist)")
            }
            throw DumpError.cannotOpen(path, "cannot open: \(String(cString: strerror(e)))")
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG, S_IFBLK: break
        case S_IFDIR: throw DumpError.cannotOpen(path, "is a directory, not a dump file")
        case S_IFIFO: throw DumpError.cannotOpen(path, "is a FIFO (named pipe): dumps must be seekable files; save the stream to a file first")
        case S_IFCHR: throw DumpError.cannotOpen(path, "is a character device, not a dump file")
        case S_IFSOCK: throw DumpError.cannotOpen(path, "is a socket, not a dump file")
        default: throw DumpError.cannotOpen(path, "is not a regular file")
        }
        let fd = Foundation.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw DumpError.cannotOpen(path, "cannot open: \(String(cString: strerror(errno)))") }
        var st2 = stat()
        guard fstat(fd, &st2) == 0, (st2.st_mode & S_IFMT) == S_IFREG || (st2.st_mode & S_IFMT) == S_IFBLK else {
            Foundation.close(fd)
            throw DumpError.cannotOpen(path, "changed type while being opened")
        }
        self.fd = fd
        if (st2.st_mode & S_IFMT) == S_IFBLK {
            let end = lseek(fd, 0, SEEK_END)
            size = end > 0 ? UInt64(end) : 0
        } else {
            size = UInt64(max(0, st2.st_size))
        }
    }

    deinit { Foundation.close(fd) }

    /// Read exactly `buffer.count` bytes at `offset`, or throw naming the offset.
    public func read(offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try OpenFile.pread(fd, path, offset: offset, buffer)
    }

    public func read(offset: UInt64, count: Int) throws -> [UInt8] {
        guard count >= 0 else { throw DumpError(path, offset: offset, "negative read size") }
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try read(offset: offset, into: $0) }
        return out
    }

    /// pread(2) until done; offsets that do not fit off_t or run past 2^63 are errors, not traps.
    static func pread(_ fd: Int32, _ path: String, offset: UInt64, _ buf: UnsafeMutableRawBufferPointer) throws {
        guard let base = buf.baseAddress else { return }
        let (end, o) = offset.addingReportingOverflow(UInt64(buf.count))
        guard !o, end <= UInt64(Int64.max) else {
            throw DumpError(path, offset: offset, "file offset beyond 2^63 (wanted \(buf.count) bytes)")
        }
        var done = 0
        while done < buf.count {
            let n = Foundation.pread(fd, base + done, buf.count - done, off_t(offset) + off_t(done))
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard n > 0 else {
                throw DumpError(path, offset: offset + UInt64(done), n == 0 ? "unexpected end of file (wanted \(buf.count) bytes)" : "read failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}
