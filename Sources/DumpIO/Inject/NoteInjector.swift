// Putting the p2mnote note into an existing dump without copying it: the journal and undo
// core every container's injection shares. One file per container holds the layout's plan
// (ELFNoteInjection: the ELF kdump vmcore; XLNoteInjection: the xl dump-core;
// KdumpNoteInjection: makedumpfile's kdump-compressed file). Each plan writes only through
// `put` (which keeps the bytes it replaces) after `writeJournal` (which keeps the header bytes
// it will switch, fsynced, for a run that is killed), appends and fsyncs before the one write
// that switches the header, and checks with `ensureUnchanged` that nobody else changed the dump
// meanwhile. A failure at any step puts the dump back byte for byte (rollBack); a killed run
// leaves the journal, which the next run restores first (recover). An exclusive flock
// serialises injections.
import CLibElf
import Foundation
import P2MFormat

public enum InjectAction: Sendable { case add, replace, remove }

public struct InjectReport: Sendable, CustomStringConvertible {
    public var actions: [String] = []
    public var bytesWritten: UInt64 = 0
    public var restoredJournal = false
    public var description: String { actions.joined(separator: "\n") }
}

public final class NoteInjector {
    public let path: String
    /// Test hook: called with a step name before each write. Throwing a DumpError simulates a
    /// failed step (the run puts the dump back); throwing any other error simulates the process
    /// being killed there (the undo journal is left for the next run).
    public var failpoint: ((String) throws -> Void)? = nil
    /// Test hook: asked (path, op) before each write ("write") and fsync ("fsync") into a dump; an errno
    /// makes that operation fail as the disk would (ENOSPC, EIO).
    nonisolated(unsafe) public static var faultHook: ((_ path: String, _ op: String) -> Int32?)? = nil
    /// The bytes each write of this run replaced (offset, old bytes), for rollBack.
    private var undo: [(UInt64, [UInt8])] = []
    /// Set once this run starts changing anything (the journal, a write into the dump).
    private var touched = false

    public init(path: String) { self.path = path }

    var journalPath: String { path + ".p2minject.journal" }

    // MARK: journal

    /// Journal format: "P2MJRNL1", u64 file size, then records (u64 offset, u64 length, bytes).
    func writeJournal(fd: Int32, regions: [(UInt64, Int)], fileSize: UInt64) throws {
        touched = true
        var b = Array("P2MJRNL1".utf8) + le(fileSize)
        for (off, len) in regions {
            var buf = [UInt8](repeating: 0, count: len)
            try buf.withUnsafeMutableBytes { try DumpFile.preadInto(fd, path, offset: off, $0) }
            b += le(off) + le(UInt64(len)) + buf
        }
        let tmp = journalPath + ".tmp"
        let jfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard jfd >= 0 else { throw DumpError(journalPath, "cannot create the undo journal: \(String(cString: strerror(errno)))") }
        defer { close(jfd) }
        do {
            if let e = NoteInjector.faultHook?(path, "journal-write") { throw DumpError(tmp, "write failed: \(String(cString: strerror(e)))") }
            try pwriteAll(jfd, tmp, b, at: 0)
            if let e = NoteInjector.faultHook?(path, "journal-fsync") { throw DumpError(tmp, "fsync failed: \(String(cString: strerror(e)))") }
            guard fsync(jfd) == 0 else { throw DumpError(journalPath, "fsync failed: \(String(cString: strerror(errno)))") }
            if let e = NoteInjector.faultHook?(path, "journal-rename") { throw DumpError(journalPath, "cannot install the journal: \(String(cString: strerror(e)))") }
            guard rename(tmp, journalPath) == 0 else { throw DumpError(journalPath, "cannot install the journal: \(String(cString: strerror(errno)))") }
        } catch {
            unlink(tmp)   // the dump is untouched so far; leave nothing behind
            throw DumpError(path, "\(error) (before any write into the dump)")
        }
        syncDirectory()
    }

    private func syncDirectory() {
        let dfd = open(PathName.directory(of: path), O_RDONLY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    func dropJournal() { unlink(journalPath); syncDirectory() }

    /// If an earlier run was interrupted, put the dump back as it was. Returns true if it did.
    public func recover() throws -> Bool {
        guard let j = FileManager.default.contents(atPath: journalPath) else { return false }
        let b = [UInt8](j)
        guard b.count >= 16, Array(b[0..<8]) == Array("P2MJRNL1".utf8) else {
            throw DumpError(journalPath, "unreadable undo journal; inspect it and the dump by hand")
        }
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw DumpError(path, "cannot open to restore: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard Self.lockExclusive(fd) else { throw DumpError(path, "another p2m-inject holds the lock") }
        let size = rd(b, 8)
        var pos = 16
        while pos + 16 <= b.count {
            let off = rd(b, pos), len = Int(rd(b, pos + 8))
            guard pos + 16 + len <= b.count else { throw DumpError(journalPath, "truncated journal record") }
            try pwriteAll(fd, path, Array(b[(pos + 16)..<(pos + 16 + len)]), at: off)
            pos += 16 + len
        }
        guard ftruncate(fd, off_t(size)) == 0, fsync(fd) == 0 else { throw DumpError(path, "cannot restore the original size") }
        dropJournal()
        return true
    }

    // MARK: entry point

    /// `domain`: whose note to remove (nil: the only one); a note to add or replace is its own
    /// header's domain's, and the other domains' notes stay as they are.
    ///
    /// `verify` runs after the write, while every write can still be undone: when it throws, the
    /// dump is put back byte for byte (a written note that no reader finds is a failure too).
    public func run(action: InjectAction, note: [UInt8]?, domain: UInt32? = nil, dryRun: Bool = false,
                    verify: (() throws -> Void)? = nil) throws -> InjectReport {
        var report = InjectReport()
        if !dryRun, try recover() {
            report.restoredJournal = true
            report.actions.append("restored \(path) from the undo journal of an interrupted injection")
        }
        let opened = try OpenFile(path: path)
        let head = try opened.read(offset: 0, count: Int(min(opened.size, 64)))
        switch DumpSniffer.identify(head) {
        case .kdumpCompressed(let sig) where sig == "KDUMP   ":
            try undoable(originalSize: opened.size, dryRun: dryRun, verify: verify) {
                try injectKdump(action: action, note: note, domain: domain, dryRun: dryRun, report: &report)
            }
            return report
        case .flattened:
            throw DumpError(path, "a flattened file (makedumpfile -F) is a stream of records: p2m-inject does not write into it (readers disagree on overlapping records); use `p2m-inject STREAM -o OUT ...`, which writes the kdump-compressed file it describes (as `makedumpfile -R OUT < STREAM` does) with the note")
        default: break
        }
        let dump = try DumpFile.open(path: path)
        let target = try targetDomain(note: note, domain: domain, action: action)
        let existing = try dump.p2mNote(domain: target)
        try requireNote(for: action, existing: existing, target: target, notes: dump.p2mNotes)
        let fd = open(path, (dryRun ? O_RDONLY : O_RDWR) | O_CLOEXEC)
        guard fd >= 0 else {
            throw DumpError(path, "cannot open for writing: \(String(cString: strerror(errno)))\(errno == EACCES || errno == EROFS ? " (read-only file?)" : "")")
        }
        defer { close(fd) }
        // O_CLOEXEC above: a child that another thread starts meanwhile must not inherit the fd and
        // with it the lock (a crash session of 14 s held a test's dump locked that way).
        if !dryRun { guard Self.lockExclusive(fd) else { throw DumpError(path, "another p2m-inject is working on this dump") } }
        var st = stat()
        fstat(fd, &st)
        guard UInt64(st.st_size) == dump.fileSize else { throw DumpError(path, "the dump changed while it was being opened") }
        let newNote = action == .remove ? nil : note
        try undoable(originalSize: dump.fileSize, dryRun: dryRun, verify: verify) {
            // DumpFile reads only ELF files: a kdump-compressed one went to injectKdump above.
            if dump.kind == .xenDumpCore {
                try injectXL(dump, fd: fd, existing: existing, newNote: newNote, dryRun: dryRun, report: &report)
            } else {
                try injectELF(dump, fd: fd, existing: existing, newNote: newNote, dryRun: dryRun, report: &report)
            }
        }
        return report
    }

    /// Run one layout's injection; if it fails after writing, put the dump back before
    /// returning the error (and say so): no failed command leaves a dump changed.
    private func undoable(originalSize: UInt64, dryRun: Bool, verify: (() throws -> Void)?, _ body: () throws -> Void) throws {
        undo = []; touched = false
        do {
            try body()
            if !dryRun, let v = verify {
                do { try v() } catch let e as DumpError { throw e } catch { throw DumpError(path, "after writing: \(error)") }
            }
        } catch {
            // A failpoint that throws something other than a DumpError stands for the process
            // dying there: nothing can roll back, the journal is for the next run.
            guard !dryRun, touched, error is DumpError else { undo = []; touched = false; throw error }
            throw rollBack(originalSize: originalSize, after: error)
        }
        undo = []
    }

    /// The dump's lock, waited for up to 3 s: a process that another thread is starting holds
    /// the fds it inherited until it execs (O_CLOEXEC closes them only then), which under load
    /// is long enough to be taken for another p2m-inject. A real one holds it far longer.
    static func lockExclusive(_ fd: Int32) -> Bool {
        for _ in 0..<300 {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return true }
            guard errno == EWOULDBLOCK || errno == EINTR else { return false }
            usleep(10_000)
        }
        return false
    }

    /// Add needs no note for the domain; replace and remove need one. A replace that finds
    /// none is refused, not turned into an add: the dump would then hold the note it was meant
    /// to replace and the new one (a note of another domain forced into a dom0 dump, then
    /// `--emit --replace`, left two notes for the one guest).
    func requireNote(for action: InjectAction, existing: ElfNote?, target: UInt32?, notes: [ElfNote]) throws {
        let held = notes.map { P2MNote.domainID(ofElfNoteDescriptor: $0.desc) }.map { $0 == .max ? "(none recorded)" : String($0) }
        switch action {
        case .add where existing != nil:
            throw DumpError(path, offset: existing?.fileOffset, "the dump already carries a p2mnote note\(Self.forDomain(existing.map { P2MNote.domainID(ofElfNoteDescriptor: $0.desc) })); use --replace or --remove")
        case .remove where existing == nil:
            throw DumpError(path, "the dump carries no p2mnote note\(Self.forDomain(target)) to remove\(held.isEmpty ? "" : " (its notes are for domain \(held.joined(separator: ", ")))")")
        case .replace where existing == nil:
            throw DumpError(path, "nothing to replace: the dump carries no p2mnote note\(Self.forDomain(target))\(held.isEmpty ? "" : " (its notes are for domain \(held.joined(separator: ", ")): remove that one first with --remove --domain N)"); inject without --replace to add one")
        default: break
        }
    }

    static func forDomain(_ d: UInt32?) -> String { d.map { $0 == .max ? "" : " for domain \($0)" } ?? "" }

    /// The domain whose note this run adds, replaces or removes: a new note's own (refusing a
    /// non-p2mnote input early), else the one asked for.
    func targetDomain(note: [UInt8]?, domain: UInt32?, action: InjectAction) throws -> UInt32? {
        guard let n = note, action != .remove else { return domain }
        let d = P2MNote.domainID(ofElfNoteDescriptor: try P2MNote.descriptor(fromElfNote: n))
        if let want = domain, want != d {
            throw DumpError(path, "the note records domain \(d == .max ? "(none)" : String(d)), not domain \(want)")
        }
        return d
    }

    /// Before a header switch: the bytes about to be replaced and the file size must still be
    /// what this run planned on; otherwise someone else changed the dump, and we stop with the
    /// header untouched (what we wrote so far sits in slack or past the end, unreferenced).
    func ensureUnchanged(_ fd: Int32, at off: UInt64, expected: [UInt8], size: UInt64) throws {
        var st = stat()
        guard fstat(fd, &st) == 0, UInt64(st.st_size) == size else {
            dropJournal()
            throw DumpError(path, "the dump changed size while p2m-inject was working on it; nothing was switched")
        }
        var now = [UInt8](repeating: 0, count: expected.count)
        try now.withUnsafeMutableBytes { try DumpFile.preadInto(fd, path, offset: off, $0) }
        guard now == expected else {
            dropJournal()
            throw DumpError(path, offset: off, "the dump changed underneath (\(expected.count) header bytes differ from what was planned on); nothing was switched")
        }
    }

    func copyRange(_ fd: Int32, from: UInt64, to: UInt64, count: UInt64) throws {
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var done: UInt64 = 0
        while done < count {
            let n = Int(min(UInt64(buf.count), count - done))
            try buf.withUnsafeMutableBytes { try DumpFile.preadInto(fd, path, offset: from + done, UnsafeMutableRawBufferPointer(rebasing: $0[0..<n])) }
            try put(fd, Array(buf[0..<n]), at: to + done)
            done += UInt64(n)
        }
    }

    // MARK: small helpers

    func sync(_ fd: Int32) throws {
        if let e = NoteInjector.faultHook?(path, "fsync") { throw DumpError(path, "fsync failed: \(String(cString: strerror(e)))") }
        guard fsync(fd) == 0 else { throw DumpError(path, "fsync failed: \(String(cString: strerror(errno)))") }
    }

    /// Every write into the dump goes through here: the bytes it replaces are kept first, so
    /// that a failure at any later step (a full disk, EIO, a check that fails after writing)
    /// puts the dump back byte for byte before the command exits (run(), rollBack).
    func put(_ fd: Int32, _ b: [UInt8], at off: UInt64) throws {
        touched = true
        if let e = NoteInjector.faultHook?(path, "write") {
            throw DumpError(path, offset: off, "write failed: \(String(cString: strerror(e)))\(e == ENOSPC ? " (disk full)" : "")")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw DumpError(path, "fstat failed: \(String(cString: strerror(errno)))") }
        let size = UInt64(max(0, st.st_size))
        if off < size {
            var old = [UInt8](repeating: 0, count: Int(min(UInt64(b.count), size - off)))
            try old.withUnsafeMutableBytes { try DumpFile.preadInto(fd, path, offset: off, $0) }
            undo.append((off, old))
        }
        try pwriteAll(fd, path, b, at: off)
    }

    /// Undo every write of this run, newest first, and the file's growth; then drop the journal.
    private func rollBack(originalSize: UInt64, after error: Error) -> Error {
        let n = undo.count
        let fd = open(path, O_RDWR | O_CLOEXEC)
        var ok = fd >= 0
        if ok {
            for (off, bytes) in undo.reversed() where ok {
                // Bytes that are as they were need no write: a write that failed for want of a
                // block (a full disk, into a hole) changed nothing, and writing the old zeros
                // back would need that very block.
                if let now = try? DumpFile.pread(fd, path, offset: off, count: bytes.count), now == bytes { continue }
                ok = (try? pwriteAll(fd, path, bytes, at: off)) != nil
            }
            ok = ok && ftruncate(fd, off_t(originalSize)) == 0 && fsync(fd) == 0
            close(fd)
        }
        undo = []; touched = false
        if ok {
            dropJournal()
            return DumpError(path, "\(error); nothing was changed: p2m-inject put the dump back byte for byte (\(n) write\(n == 1 ? "" : "s") undone)")
        }
        let journal = FileManager.default.fileExists(atPath: journalPath)
        return DumpError(path, "\(error); the dump could not be put back here\(journal ? ": the next p2m-inject run restores it from \(journalPath)" : "")")
    }
}

func pwriteAll(_ fd: Int32, _ path: String, _ b: [UInt8], at off: UInt64) throws {
    try b.withUnsafeBytes { p in
        var done = 0
        while done < p.count {
            let n = pwrite(fd, p.baseAddress! + done, p.count - done, off_t(off) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw DumpError(path, offset: off + UInt64(done), "write failed: \(String(cString: strerror(errno)))\(errno == ENOSPC ? " (disk full)" : "")")
            }
            done += n
        }
    }
}

