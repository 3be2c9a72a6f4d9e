// makedumpfile's kdump-compressed file's plan (its sub-header fields after the block-sized
// disk_dump_header: makedumpfile's diskdump_mod.h, struct kdump_sub_header, header_version 4+).
import Foundation
import P2MFormat

extension NoteInjector {
    /// offset_vmcoreinfo in struct kdump_sub_header, after phys_base, dump_level, split,
    /// start_pfn and end_pfn; size_vmcoreinfo, offset_note and size_note follow it.
    private static let subHeaderNoteFields: UInt64 = 32
    /// makedumpfile's kdump-compressed file: a new notes blob (every old note but ours, then
    /// the new one) is appended and fsynced; then one 32-byte write in the sub-header switches
    /// offset_vmcoreinfo/size_vmcoreinfo/offset_note/size_note to it (makedumpfile recomputes
    /// the VMCOREINFO offset relative to offset_note when it re-filters, so it moves into the
    /// blob too). The journal holds those 32 bytes and the old size; O(notes) whatever the dump.
    func injectKdump(action: InjectAction, note: [UInt8]?, domain: UInt32?, dryRun: Bool, report: inout InjectReport) throws {
        let k = try KdumpCompressed(file: OpenFile(path: path))       // the whole layout, as strictly as the reader
        guard k.headerVersion >= 4 else { throw DumpError(path, offset: 8, "header_version \(k.headerVersion) has no note fields (needs 4 or later)") }
        let target = try targetDomain(note: note, domain: domain, action: action)
        let existing = try k.p2mNote(domain: target)
        try requireNote(for: action, existing: existing, target: target, notes: k.p2mNotes)
        let fd = open(path, (dryRun ? O_RDONLY : O_RDWR) | O_CLOEXEC)
        guard fd >= 0 else { throw DumpError(path, "cannot open for writing: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        if !dryRun { guard Self.lockExclusive(fd) else { throw DumpError(path, "another p2m-inject is working on this dump") } }
        let fieldsAt = k.blockSize + Self.subHeaderNoteFields
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
        let dest = PageGeometry.x86.roundUp(size)
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
}
