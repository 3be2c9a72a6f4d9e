// The ELF kdump vmcore's plan. crash reads notes only from the header region [0, lowest
// PT_LOAD offset) and expects one PT_NOTE as phdr[0] (crash's netdump.c reads the first one),
// so the note goes at the end of that PT_NOTE.
//  • Slack after the notes (a /proc/vmcore copy has 0–4095 bytes): write the note into the
//    slack, fsync, then grow PT_NOTE's p_filesz/p_memsz with one 16-byte write inside
//    sector 0, fsync. Every instant leaves a dump readers open (old or new note set).
//    Replacing our note when it is the last one: shrink (one write), write, grow.
//  • No room (makedumpfile -E has none): copy only the first K pages of the PT_LOAD whose data
//    starts the file's data to the end of the file (fsync), then rewrite the header region with
//    one more PT_LOAD: the head, now at the end of the file, and the rest of the segment left in
//    place with p_offset/p_paddr advanced by K pages. Cost ∝ note size, never ∝ segment size.
//    That rewrite is one write() of the header region (all-or-nothing against a kill); as a
//    power loss could tear it, the original region is first saved to the undo journal.
import CLibElf
import Foundation
import P2MFormat

extension NoteInjector {
    /// The byte range of p_filesz and p_memsz inside a program header (adjacent in Elf64_Phdr).
    private static let noteSizeFields: Range<Int> = {
        let at = MemoryLayout<GElf_Phdr>.offset(of: \GElf_Phdr.p_filesz)!
        return at..<(at + 16)
    }()

    func injectELF(_ d: DumpFile, fd: Int32, existing: ElfNote?, newNote: [UInt8]?, dryRun: Bool, report: inout InjectReport) throws {
        guard let ns = d.noteSegment else { throw DumpError(d.path, "no PT_NOTE segment") }
        let phentsize = UInt64(MemoryLayout<GElf_Phdr>.stride)
        let ehsize = UInt64(MemoryLayout<GElf_Ehdr>.stride)
        guard ns.index == 0 else { throw DumpError(d.path, offset: d.phoff, "PT_NOTE is program header \(ns.index), not the first (crash requires it first)") }
        guard let firstData = d.firstLoadOffset else { throw DumpError(d.path, "no PT_LOAD data") }
        let noteEnd = ns.offset + ns.size
        guard noteEnd <= firstData else { throw DumpError(d.path, offset: ns.offset, "PT_NOTE runs into PT_LOAD data at 0x\(String(firstData, radix: 16))") }
        // The layout the injector rewrites must be the plain one the kernel writes: headers, then
        // notes, then each PT_LOAD's own bytes. Shared or overlapping file bytes (which a reader
        // can still read) would be moved or overwritten as if they were one segment's.
        let tableEnd = d.phoff + phentsize * UInt64(d.phnum)
        guard tableEnd <= ns.offset || ns.size == 0 else {
            throw DumpError(d.path, offset: d.phoff, "the program header table [0x\(String(d.phoff, radix: 16)), 0x\(String(tableEnd, radix: 16))) overlaps the notes at 0x\(String(ns.offset, radix: 16)); not injecting into this layout")
        }
        let byOffset = d.loads.filter { $0.filesz > 0 }.sorted { $0.offset < $1.offset }
        for k in byOffset.indices.dropFirst() where byOffset[k].offset < byOffset[k - 1].offset + byOffset[k - 1].filesz {
            throw DumpError(d.path, offset: d.phoff + phentsize * UInt64(byOffset[k].index),
                            "PT_LOAD \(byOffset[k].index) and PT_LOAD \(byOffset[k - 1].index) share file bytes at 0x\(String(byOffset[k].offset, radix: 16)); not injecting into this layout")
        }
        // Notes are 4-byte aligned and read until the first zero header: a note added at the end
        // of a PT_NOTE of odd size, or after a zero header inside it, is one no reader finds.
        // Refused before anything is written.
        guard ns.size % 4 == 0 else {
            throw DumpError(d.path, offset: d.phoff + UInt64(Self.noteSizeFields.lowerBound), "PT_NOTE's p_filesz \(ns.size) is not a multiple of 4 (notes are 4-byte aligned); not injecting into this layout")
        }
        let walkedEnd = d.notes.filter { $0.fileOffset >= ns.offset && $0.fileOffset < noteEnd }.map { $0.fileOffset + $0.size }.max() ?? ns.offset
        guard walkedEnd == noteEnd else {
            throw DumpError(d.path, offset: walkedEnd, "a zero note header ends the notes \(noteEnd - walkedEnd) bytes before PT_NOTE's end at 0x\(String(noteEnd, radix: 16)): readers stop there, so a note added after it would never be read; not injecting into this layout")
        }
        let newBytes = newNote ?? []
        let newLen = UInt64(newBytes.count)
        var phs = try ElfRecords.phdrs(try d.read(offset: d.phoff, count: Int(phentsize) * d.phnum), count: d.phnum, path: d.path)
        let phdr0 = d.phoff                               // PT_NOTE's program header
        // PT_NOTE's program header with other sizes, as the 16 bytes of p_filesz and p_memsz.
        func noteSizes(_ size: UInt64) throws -> [UInt8] {
            var ph = phs[0]; ph.p_filesz = size; ph.p_memsz = size
            return Array(try ElfRecords.encode([ph], type: ELF_T_PHDR, path: d.path)[Self.noteSizeFields])
        }
        // Plan A: our note is last (or absent) and the slack holds the new one.
        let oldIsLast = existing.map { $0.fileOffset + $0.size == noteEnd } ?? true
        let base = existing.map { $0.fileOffset } ?? noteEnd
        if oldIsLast && base + newLen <= firstData {
            let keep = base - ns.offset
            report.actions.append("\(existing == nil ? "add" : (newNote == nil ? "remove" : "replace")) in place: note region 0x\(String(ns.offset, radix: 16))+\(ns.size) → +\(keep + newLen) (slack \(firstData - noteEnd) bytes before the first PT_LOAD data at 0x\(String(firstData, radix: 16)))")
            if dryRun { return }
            let sizesAt = phdr0 + UInt64(Self.noteSizeFields.lowerBound)
            var expectSizes = try d.read(offset: sizesAt, count: 16)      // as planned on
            try writeJournal(fd: fd, regions: [(phdr0, Int(phentsize)), (ns.offset, Int(firstData - ns.offset))], fileSize: d.fileSize)
            if existing != nil {
                try failpoint?("shrink")
                try ensureUnchanged(fd, at: sizesAt, expected: expectSizes, size: d.fileSize)
                expectSizes = try noteSizes(keep)
                try put(fd, expectSizes, at: sizesAt)
                try sync(fd)
            }
            if newLen > 0 {
                try failpoint?("write-note")
                try put(fd, newBytes, at: base)
                try sync(fd)
                try failpoint?("grow")
                try ensureUnchanged(fd, at: sizesAt, expected: expectSizes, size: d.fileSize)
                try put(fd, try noteSizes(keep + newLen), at: sizesAt)
                try sync(fd)
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
        // Make room: the PT_LOAD whose data comes first gives up its head (a new PT_LOAD for
        // the head at the end of the file), or, when it is smaller than the room needed, moves
        // whole to the end; then the next one, until the header region fits. Any note size fits.
        let page = PageGeometry.x86.size
        func pageUp(_ v: UInt64) -> UInt64 { (v + page - 1) / page * page }
        var moves: [(from: UInt64, to: UInt64, len: UInt64)] = []
        var dest = pageUp(d.fileSize)
        var dataStart = firstData
        func headerNeed() -> UInt64 { ehsize + phentsize * UInt64(phs.count) + UInt64(notes.count) }
        while headerNeed() > dataStart {
            guard let k = phs.firstIndex(where: { $0.p_type == UInt32(PT_LOAD) && $0.p_offset == dataStart && $0.p_filesz > 0 }) else {
                throw DumpError(d.path, "cannot find the PT_LOAD whose data starts at 0x\(String(dataStart, radix: 16))")
            }
            let seg = phs[k]
            guard seg.p_memsz >= seg.p_filesz else { throw DumpError(d.path, "PT_LOAD \(k): p_memsz \(seg.p_memsz) < p_filesz \(seg.p_filesz)") }
            let headLen = pageUp(headerNeed() + phentsize - dataStart)
            if seg.p_filesz > headLen {
                var head = seg, rest = seg
                head.p_offset = dest; head.p_filesz = headLen; head.p_memsz = headLen
                rest.p_offset = dataStart + headLen
                rest.p_vaddr = seg.p_vaddr &+ headLen; rest.p_paddr = seg.p_paddr &+ headLen
                rest.p_filesz = seg.p_filesz - headLen; rest.p_memsz = seg.p_memsz - headLen
                phs[k] = rest
                phs.insert(head, at: k)
                moves.append((dataStart, dest, headLen))
                dest += headLen
            } else {
                phs[k].p_offset = dest
                moves.append((dataStart, dest, seg.p_filesz))
                dest += pageUp(seg.p_filesz)
            }
            let rest = phs.filter { $0.p_type == UInt32(PT_LOAD) && $0.p_filesz > 0 && $0.p_offset >= dataStart }.map(\.p_offset)
            guard let next = rest.min() else { throw DumpError(d.path, "no PT_LOAD data left to make room before") }
            dataStart = next
        }
        let newFirstData = dataStart
        let noteOff = ehsize + phentsize * UInt64(phs.count)
        phs[0].p_offset = noteOff; phs[0].p_filesz = UInt64(notes.count); phs[0].p_memsz = UInt64(notes.count)
        var eh = try ElfRecords.ehdr(try d.read(offset: 0, count: Int(ehsize)), path: d.path)
        guard let phnum = UInt16(exactly: phs.count), phnum < 0xffff else { throw DumpError(d.path, "\(phs.count) program headers do not fit e_phnum") }
        eh.e_phnum = phnum
        eh.e_phoff = ehsize
        var region = [UInt8](repeating: 0, count: Int(newFirstData))
        region.replaceSubrange(0..<Int(ehsize), with: try ElfRecords.encode([eh], type: ELF_T_EHDR, path: d.path))
        region.replaceSubrange(Int(ehsize)..<Int(noteOff), with: try ElfRecords.encode(phs, type: ELF_T_PHDR, path: d.path))
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
}
