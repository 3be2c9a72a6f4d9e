// Putting the p2mnote note into an existing dump without copying it.
//
// ELF kdump vmcore. crash reads notes only from the header region [0, lowest PT_LOAD
// offset) and expects one PT_NOTE as phdr[0] (formats.md §4.3), so the note goes at the end of
// that PT_NOTE.
//  • Slack after the notes (a /proc/vmcore copy has 0–4095 bytes): write the note into the
//    slack, fsync, then grow PT_NOTE's p_filesz/p_memsz with one 16-byte write inside
//    sector 0, fsync. Every instant leaves a dump readers open (old or new note set).
//    Replacing our note when it is the last one: shrink (one write), write, grow.
//  • No room (makedumpfile -E has none): copy only the first K pages of the PT_LOAD whose data
//    starts the file's data to the end of the file (fsync), then rewrite the header region with
//    one more PT_LOAD: the head, now at the end of the file, and the rest of the segment left in
//    place with p_offset/p_paddr advanced by K pages. Cost ∝ note size, never ∝ segment size.
//    That rewrite is one write() of the header region (all-or-nothing against a kill); as a
//    power loss could tear it, the original region is first saved to an undo journal
//    (DUMP.p2minject.journal, fsynced); the next run finds it, restores, says so.
// xl dump-core: the note goes in a new SHT_NOTE section `.note.p2mnote`; the note, a new
// .shstrtab and a new section header table are appended, fsynced, and then e_shoff/e_shnum/
// e_shstrndx switch with one write in the ELF header. The old table stays, unreferenced.
// An exclusive flock serialises injections.
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
    private func writeJournal(fd: Int32, regions: [(UInt64, Int)], fileSize: UInt64) throws {
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

    private func dropJournal() { unlink(journalPath); syncDirectory() }

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
            switch dump.kind {
            case .kdumpELF: try injectELF(dump, fd: fd, existing: existing, newNote: newNote, dryRun: dryRun, report: &report)
            case .xenDumpCore: try injectXL(dump, fd: fd, existing: existing, newNote: newNote, dryRun: dryRun, report: &report)
            case .kdumpCompressed: throw DumpError(path, "injecting into a kdump-compressed file is not supported yet")
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
    private func requireNote(for action: InjectAction, existing: ElfNote?, target: UInt32?, notes: [ElfNote]) throws {
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
    private func targetDomain(note: [UInt8]?, domain: UInt32?, action: InjectAction) throws -> UInt32? {
        guard let n = note, action != .remove else { return domain }
        let d = P2MNote.domainID(ofElfNoteDescriptor: try P2MNote.descriptor(fromElfNote: n))
        if let want = domain, want != d {
            throw DumpError(path, "the note records domain \(d == .max ? "(none)" : String(d)), not domain \(want)")
        }
        return d
    }

    // MARK: ELF vmcore

    private func injectELF(_ d: DumpFile, fd: Int32, existing: ElfNote?, newNote: [UInt8]?, dryRun: Bool, report: inout InjectReport) throws {
        guard let ns = d.noteSegment else { throw DumpError(d.path, "no PT_NOTE segment") }
        guard ns.index == 0 else { throw DumpError(d.path, offset: d.phoff, "PT_NOTE is program header \(ns.index), not the first (crash requires it first)") }
        guard let firstData = d.firstLoadOffset else { throw DumpError(d.path, "no PT_LOAD data") }
        let noteEnd = ns.offset + ns.size
        guard noteEnd <= firstData else { throw DumpError(d.path, offset: ns.offset, "PT_NOTE runs into PT_LOAD data at 0x\(String(firstData, radix: 16))") }
        // The layout the injector rewrites must be the plain one the kernel writes: headers, then
        // notes, then each PT_LOAD's own bytes. Shared or overlapping file bytes (which a reader
        // can still read) would be moved or overwritten as if they were one segment's.
        let tableEnd = d.phoff + 56 * UInt64(d.phnum)
        guard tableEnd <= ns.offset || ns.size == 0 else {
            throw DumpError(d.path, offset: d.phoff, "the program header table [0x\(String(d.phoff, radix: 16)), 0x\(String(tableEnd, radix: 16))) overlaps the notes at 0x\(String(ns.offset, radix: 16)); not injecting into this layout")
        }
        let byOffset = d.loads.filter { $0.filesz > 0 }.sorted { $0.offset < $1.offset }
        for k in byOffset.indices.dropFirst() where byOffset[k].offset < byOffset[k - 1].offset + byOffset[k - 1].filesz {
            throw DumpError(d.path, offset: d.phoff + 56 * UInt64(byOffset[k].index),
                            "PT_LOAD \(byOffset[k].index) and PT_LOAD \(byOffset[k - 1].index) share file bytes at 0x\(String(byOffset[k].offset, radix: 16)); not injecting into this layout")
        }
        // Notes are 4-byte aligned and read until the first zero header: a note added at the end
        // of a PT_NOTE of odd size, or after a zero header inside it, is one no reader finds.
        // Refused before anything is written.
        guard ns.size % 4 == 0 else {
            throw DumpError(d.path, offset: d.phoff + 32, "PT_NOTE's p_filesz \(ns.size) is not a multiple of 4 (notes are 4-byte aligned); not injecting into this layout")
        }
        let walkedEnd = d.notes.filter { $0.fileOffset >= ns.offset && $0.fileOffset < noteEnd }.map { $0.fileOffset + $0.size }.max() ?? ns.offset
        guard walkedEnd == noteEnd else {
            throw DumpError(d.path, offset: walkedEnd, "a zero note header ends the notes \(noteEnd - walkedEnd) bytes before PT_NOTE's end at 0x\(String(noteEnd, radix: 16)): readers stop there, so a note added after it would never be read; not injecting into this layout")
        }
        let newBytes = newNote ?? []
        let newLen = UInt64(newBytes.count)
        let phdr0 = d.phoff                               // PT_NOTE's program header
        // Plan A: our note is last (or absent) and the slack holds the new one.
        let oldIsLast = existing.map { $0.fileOffset + $0.size == noteEnd } ?? true
        let base = existing.map { $0.fileOffset } ?? noteEnd
        if oldIsLast && base + newLen <= firstData {
            let keep = base - ns.offset
            report.actions.append("\(existing == nil ? "add" : (newNote == nil ? "remove" : "replace")) in place: note region 0x\(String(ns.offset, radix: 16))+\(ns.size) → +\(keep + newLen) (slack \(firstData - noteEnd) bytes before the first PT_LOAD data at 0x\(String(firstData, radix: 16)))")
            if dryRun { return }
            let sizes = try d.read(offset: phdr0 + 32, count: 16)         // p_filesz, p_memsz as planned
            try writeJournal(fd: fd, regions: [(phdr0, 56), (ns.offset, Int(firstData - ns.offset))], fileSize: d.fileSize)
            var expectSizes = sizes
            if existing != nil {
                try failpoint?("shrink")
                try ensureUnchanged(fd, at: phdr0 + 32, expected: expectSizes, size: d.fileSize)
                try setNoteSize(fd, phdr0, keep)
                expectSizes = le(keep) + le(keep)
            }
            if newLen > 0 {
                try failpoint?("write-note")
                try put(fd, newBytes, at: base)
                try sync(fd)
                try failpoint?("grow")
                try ensureUnchanged(fd, at: phdr0 + 32, expected: expectSizes, size: d.fileSize)
                try setNoteSize(fd, phdr0, keep + newLen)
            }
            // Stale bytes of a longer old note: zero them (beyond p_filesz, cosmetic).
            let oldEnd = existing.map { $0.fileOffset + $0.size } ?? base
            if oldEnd > base + newLen {
                try put(fd, [UInt8](repeating: 0, count: Int(oldEnd - base - newLen)), at: base + newLen)
                try sync(fd)
            }
            report.bytesWritten = newLen + 16
            dropJournal()
            return
        }
        // Plan B: rebuild the header region, making room by moving head pages of one PT_LOAD.
        var notes = try d.read(offset: ns.offset, count: Int(ns.size))
        if let e = existing {
            let s = Int(e.fileOffset - ns.offset)
            notes.removeSubrange(s..<s + Int(e.size))
        }
        notes += newBytes
        var phs = try readPhdrs(d, fd: fd)
        // Make room: the PT_LOAD whose data comes first gives up its head (a new PT_LOAD for
        // the head at the end of the file), or, when it is smaller than the room needed, moves
        // whole to the end; then the next one, until the header region fits. Any note size fits.
        var moves: [(from: UInt64, to: UInt64, len: UInt64)] = []
        var dest = (d.fileSize + 4095) / 4096 * 4096
        var dataStart = firstData
        func headerNeed() -> UInt64 { 64 + 56 * UInt64(phs.count) + UInt64(notes.count) }
        while headerNeed() > dataStart {
            guard let k = phs.firstIndex(where: { rd4($0, 0) == 1 && rd($0, 8) == dataStart && rd($0, 32) > 0 }) else {
                throw DumpError(d.path, "cannot find the PT_LOAD whose data starts at 0x\(String(dataStart, radix: 16))")
            }
            let seg = phs[k]
            let filesz = rd(seg, 32), memsz = rd(seg, 40)
            guard memsz >= filesz else { throw DumpError(d.path, "PT_LOAD \(k): p_memsz \(memsz) < p_filesz \(filesz)") }
            let headLen = ((headerNeed() + 56 - dataStart) + 4095) / 4096 * 4096
            if filesz > headLen {
                var head = seg, rest = seg
                head = set(head, 8, dest); head = set(head, 32, headLen); head = set(head, 40, headLen)
                rest = set(rest, 8, dataStart + headLen)
                rest = set(rest, 16, rd(seg, 16) &+ headLen); rest = set(rest, 24, rd(seg, 24) &+ headLen)
                rest = set(rest, 32, filesz - headLen); rest = set(rest, 40, memsz - headLen)
                phs[k] = rest
                phs.insert(head, at: k)
                moves.append((dataStart, dest, headLen))
                dest += headLen
            } else {
                phs[k] = set(seg, 8, dest)
                moves.append((dataStart, dest, filesz))
                dest += (filesz + 4095) / 4096 * 4096
            }
            let rest = phs.filter { rd4($0, 0) == 1 && rd($0, 32) > 0 && rd($0, 8) >= dataStart }.map { rd($0, 8) }
            guard let next = rest.min() else { throw DumpError(d.path, "no PT_LOAD data left to make room before") }
            dataStart = next
        }
        let newFirstData = dataStart
        let noteOff = 64 + 56 * UInt64(phs.count)
        phs[0] = set(set(set(phs[0], 8, noteOff), 32, UInt64(notes.count)), 40, UInt64(notes.count))
        var region = [UInt8](repeating: 0, count: Int(newFirstData))
        var eh = try d.read(offset: 0, count: 64)
        eh.replaceSubrange(56..<58, with: [UInt8(phs.count & 0xff), UInt8(phs.count >> 8)])
        eh.replaceSubrange(32..<40, with: le(64))
        region.replaceSubrange(0..<64, with: eh)
        region.replaceSubrange(64..<Int(noteOff), with: phs.flatMap { $0 })
        region.replaceSubrange(Int(noteOff)..<Int(noteOff) + notes.count, with: notes)
        let movedBytes = moves.reduce(0) { $0 + $1.len }
        if !moves.isEmpty {
            report.actions.append("no room before the first PT_LOAD data (slack \(firstData - noteEnd) bytes; the header region needs \(headerNeed()) bytes): moved \(movedBytes) bytes of PT_LOAD data in \(moves.count) piece(s) to the end of the file; rewrote the \(newFirstData)-byte header region")
        } else {
            report.actions.append("rewrote the \(firstData)-byte header region (notes repacked)")
        }
        if dryRun { return }
        // Undo record first (it also remembers the file size, so the copied head is cut off
        // again on restore); then the head copy past the end; then the whole header region in
        // one write — a kill leaves either the old or the new region, a torn write is undone
        // from the journal by the next run.
        let planned = try d.read(offset: 0, count: Int(newFirstData))
        try writeJournal(fd: fd, regions: [(0, Int(newFirstData))], fileSize: d.fileSize)
        for m in moves {
            try failpoint?("copy-head")
            try copyRange(fd, from: m.from, to: m.to, count: m.len)
        }
        if !moves.isEmpty { try sync(fd) }
        try failpoint?("rewrite-header")
        try ensureUnchanged(fd, at: 0, expected: planned, size: moves.last.map { $0.to + $0.len } ?? d.fileSize)
        try put(fd, region, at: 0)
        try sync(fd)
        report.bytesWritten = newFirstData + movedBytes
        dropJournal()
    }

    /// Before a header switch: the bytes about to be replaced and the file size must still be
    /// what this run planned on; otherwise someone else changed the dump, and we stop with the
    /// header untouched (what we wrote so far sits in slack or past the end, unreferenced).
    private func ensureUnchanged(_ fd: Int32, at off: UInt64, expected: [UInt8], size: UInt64) throws {
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

    private func readPhdrs(_ d: DumpFile, fd: Int32) throws -> [[UInt8]] {
        let raw = try d.read(offset: d.phoff, count: 56 * d.phnum)
        return (0..<d.phnum).map { Array(raw[($0 * 56)..<($0 * 56 + 56)]) }
    }

    private func setNoteSize(_ fd: Int32, _ phdr: UInt64, _ size: UInt64) throws {
        try put(fd, le(size) + le(size), at: phdr + 32)    // p_filesz, p_memsz
        try sync(fd)
    }

    private func copyRange(_ fd: Int32, from: UInt64, to: UInt64, count: UInt64) throws {
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var done: UInt64 = 0
        while done < count {
            let n = Int(min(UInt64(buf.count), count - done))
            try buf.withUnsafeMutableBytes { try DumpFile.preadInto(fd, path, offset: from + done, UnsafeMutableRawBufferPointer(rebasing: $0[0..<n])) }
            try put(fd, Array(buf[0..<n]), at: to + done)
            done += UInt64(n)
        }
    }

    // MARK: kdump-compressed

    /// makedumpfile's kdump-compressed file: a new notes blob (every old note but ours, then
    /// the new one) is appended and fsynced; then one 32-byte write in the sub-header switches
    /// offset_vmcoreinfo/size_vmcoreinfo/offset_note/size_note to it (makedumpfile recomputes
    /// the VMCOREINFO offset relative to offset_note when it re-filters, so it moves into the
    /// blob too). The journal holds those 32 bytes and the old size; O(notes) whatever the dump.
    private func injectKdump(action: InjectAction, note: [UInt8]?, domain: UInt32?, dryRun: Bool, report: inout InjectReport) throws {
        let k = try KdumpCompressed(file: OpenFile(path: path))       // the whole layout, as strictly as the reader
        guard k.headerVersion >= 4 else { throw DumpError(path, offset: 8, "header_version \(k.headerVersion) has no note fields (needs 4 or later)") }
        let target = try targetDomain(note: note, domain: domain, action: action)
        let existing = try k.p2mNote(domain: target)
        try requireNote(for: action, existing: existing, target: target, notes: k.p2mNotes)
        let fd = open(path, (dryRun ? O_RDONLY : O_RDWR) | O_CLOEXEC)
        guard fd >= 0 else { throw DumpError(path, "cannot open for writing: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        if !dryRun { guard Self.lockExclusive(fd) else { throw DumpError(path, "another p2m-inject is working on this dump") } }
        let fieldsAt = k.blockSize + 32
        let old = try DumpFile.pread(fd, path, offset: fieldsAt, count: 32)
        let oldVmci = rd(old, 0), vmciSize = rd(old, 8)
        var blob: [UInt8] = []
        var newVmci = oldVmci
        for n in k.notes where n.fileOffset != existing?.fileOffset {
            let bytes = try DumpFile.pread(fd, path, offset: n.fileOffset, count: Int(n.size))
            if oldVmci >= n.fileOffset && oldVmci < n.fileOffset + n.size { newVmci = UInt64(blob.count) + (oldVmci - n.fileOffset) }
            blob += bytes
        }
        if let n = note { blob += n }
        var st = stat(); fstat(fd, &st)
        let size = UInt64(st.st_size)
        let dest = (size + 4095) / 4096 * 4096
        let vmciAbs = newVmci == oldVmci ? oldVmci : dest + newVmci
        let fields = le(vmciAbs) + le(vmciSize) + le(blob.isEmpty ? 0 : dest) + le(UInt64(blob.count))
        report.actions.append("\(existing == nil ? "add" : (note == nil ? "remove" : "replace")): a \(blob.count)-byte notes blob (\(k.notes.count - (existing == nil ? 0 : 1)) old notes\(note == nil ? "" : " + the p2mnote note")) appended at 0x\(String(dest, radix: 16)); offset_note/size_note\(oldVmci != 0 ? " and offset_vmcoreinfo" : "") switched in the sub-header")
        if dryRun { return }
        try writeJournal(fd: fd, regions: [(fieldsAt, 32)], fileSize: size)
        try failpoint?("write-blob")
        if !blob.isEmpty { try put(fd, blob, at: dest) }
        try sync(fd)
        try failpoint?("switch")
        try ensureUnchanged(fd, at: fieldsAt, expected: old, size: blob.isEmpty ? size : dest + UInt64(blob.count))
        try put(fd, fields, at: fieldsAt)
        try sync(fd)
        report.bytesWritten = UInt64(blob.count) + 32
        dropJournal()
    }

    // MARK: xl dump-core

    private func injectXL(_ d: DumpFile, fd: Int32, existing: ElfNote?, newNote: [UInt8]?, dryRun: Bool, report: inout InjectReport) throws {
        let eh = try d.read(offset: 0, count: 64)
        let shnum = Int(rd2(eh, 60)), shstrndx = Int(rd2(eh, 62))
        guard d.shoff > 0, shnum > 0, shstrndx < shnum else { throw DumpError(d.path, offset: 0x28, "unsupported section header table") }
        let raw = try d.read(offset: d.shoff, count: 64 * shnum)
        var shdrs = (0..<shnum).map { Array(raw[($0 * 64)..<($0 * 64 + 64)]) }
        guard let strSec = d.sections.first(where: { $0.index == shstrndx }) else { throw DumpError(d.path, "no section name table") }
        var strtab = try d.read(offset: strSec.offset, count: Int(strSec.size))
        var newStrndx = shstrndx
        // .note.p2mnote holds one note per domain: the others stay, ours is dropped or replaced.
        var kept: [UInt8] = []
        if let e = existing, e.container != ".note.p2mnote" {
            throw DumpError(d.path, offset: existing?.fileOffset, "the p2mnote note sits in section \(existing?.container ?? "?"); only .note.p2mnote is managed")
        }
        if let sec = d.sections.first(where: { $0.name == ".note.p2mnote" }) {
            guard sec.index != shstrndx, sec.index < shdrs.count else { throw DumpError(d.path, "bad section layout") }
            for n in d.notes where n.container == ".note.p2mnote" && n.fileOffset != existing?.fileOffset {
                kept += try d.read(offset: n.fileOffset, count: Int(n.size))
            }
            shdrs.remove(at: sec.index)
            if sec.index < shstrndx { newStrndx -= 1 }
        }
        var end = (d.fileSize + 7) / 8 * 8
        var blob: [UInt8] = []
        func place(_ bytes: [UInt8]) -> UInt64 {
            let off = end + UInt64(blob.count)
            blob += bytes
            while blob.count % 8 != 0 { blob.append(0) }
            return off
        }
        let content = kept + (newNote ?? [])
        if !content.isEmpty {
            let n = content
            let noteOff = place(n)
            var nameOff = UInt32(strtab.count)
            if let r = findString(strtab, ".note.p2mnote") { nameOff = UInt32(r) } else { strtab += Array(".note.p2mnote".utf8) + [0] }
            var sh = [UInt8](repeating: 0, count: 64)
            sh = set4(sh, 0, nameOff); sh = set4(sh, 4, 7)
            sh = set(sh, 24, noteOff); sh = set(sh, 32, UInt64(n.count)); sh = set(sh, 48, 4)
            shdrs.append(sh)
        }
        let strOff = place(strtab)
        shdrs[newStrndx] = set(set(shdrs[newStrndx], 24, strOff), 32, UInt64(strtab.count))
        let tableOff = place(shdrs.flatMap { $0 })
        _ = end
        report.actions.append("\(newNote == nil ? "remove" : (existing == nil ? "add" : "replace")): appended \(blob.count) bytes (note, .shstrtab, \(shdrs.count) section headers) at 0x\(String(end, radix: 16)); e_shoff 0x\(String(d.shoff, radix: 16)) → 0x\(String(tableOff, radix: 16))")
        if dryRun { return }
        try writeJournal(fd: fd, regions: [(0, 64)], fileSize: d.fileSize)
        try failpoint?("append")
        try put(fd, blob, at: end)
        try sync(fd)
        try failpoint?("switch-header")
        try ensureUnchanged(fd, at: 0, expected: eh, size: end + UInt64(blob.count))
        let tail = le(tableOff) + [0, 0, 0, 0] + [UInt8(64), 0, 0, 0, 64, 0] + [UInt8(shdrs.count & 0xff), UInt8(shdrs.count >> 8), UInt8(newStrndx & 0xff), UInt8(newStrndx >> 8)]
        // e_shoff (0x28, 8 bytes) … e_shstrndx (0x3e): one write inside the ELF header.
        var hdr = eh
        hdr.replaceSubrange(0x28..<0x30, with: tail[0..<8])
        hdr.replaceSubrange(0x3C..<0x40, with: tail[18..<22])
        try put(fd, Array(hdr[0x28..<0x40]), at: 0x28)
        try sync(fd)
        end = 0
        report.bytesWritten = UInt64(blob.count) + 24
        dropJournal()
    }

    private func findString(_ t: [UInt8], _ s: String) -> Int? {
        let needle = Array(s.utf8) + [0]
        guard t.count >= needle.count else { return nil }
        for i in 0...(t.count - needle.count) where (i == 0 || t[i - 1] == 0) && Array(t[i..<i + needle.count]) == needle { return i }
        return nil
    }

    // MARK: small helpers

    private func sync(_ fd: Int32) throws {
        if let e = NoteInjector.faultHook?(path, "fsync") { throw DumpError(path, "fsync failed: \(String(cString: strerror(e)))") }
        guard fsync(fd) == 0 else { throw DumpError(path, "fsync failed: \(String(cString: strerror(errno)))") }
    }

    /// Every write into the dump goes through here: the bytes it replaces are kept first, so
    /// that a failure at any later step (a full disk, EIO, a check that fails after writing)
    /// puts the dump back byte for byte before the command exits (run(), rollBack).
    private func put(_ fd: Int32, _ b: [UInt8], at off: UInt64) throws {
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

func le(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
func rd(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
func rd2(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
func rd4(_ b: [UInt8], _ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) } }
func set(_ b: [UInt8], _ o: Int, _ v: UInt64) -> [UInt8] { var c = b; c.replaceSubrange(o..<o + 8, with: le(v)); return c }
func set4(_ b: [UInt8], _ o: Int, _ v: UInt32) -> [UInt8] { var c = b; for i in 0..<4 { c[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }; return c }
