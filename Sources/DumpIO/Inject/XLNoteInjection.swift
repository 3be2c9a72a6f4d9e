// The xl dump-core's plan: the note goes in an SHT_NOTE section `.note.p2mnote` (one note per
// domain); the section's notes, a new .shstrtab and a new section header table are appended,
// fsynced, and then e_shoff/e_shnum/e_shstrndx switch with one write in the ELF header. The
// old table stays, unreferenced.
import CLibElf
import Foundation
import P2MFormat

extension NoteInjector {
    func injectXL(_ d: DumpFile, fd: Int32, existing: ElfNote?, newNote: [UInt8]?, dryRun: Bool, report: inout InjectReport) throws {
        let ehsize = MemoryLayout<GElf_Ehdr>.stride
        let shentsize = MemoryLayout<GElf_Shdr>.stride
        let ehBytes = try d.read(offset: 0, count: ehsize)
        var eh = try ElfRecords.ehdr(ehBytes, path: d.path)
        let shnum = Int(eh.e_shnum), shstrndx = Int(eh.e_shstrndx)
        let shoffAt = MemoryLayout<GElf_Ehdr>.offset(of: \GElf_Ehdr.e_shoff)!
        guard d.shoff > 0, shnum > 0, shstrndx < shnum else { throw DumpError(d.path, offset: UInt64(shoffAt), "unsupported section header table") }
        var shdrs = try ElfRecords.shdrs(try d.read(offset: d.shoff, count: shentsize * shnum), count: shnum, path: d.path)
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
        let end = (d.fileSize + 7) / 8 * 8
        var blob: [UInt8] = []
        func place(_ bytes: [UInt8]) -> UInt64 {
            let off = end + UInt64(blob.count)
            blob += bytes
            while blob.count % 8 != 0 { blob.append(0) }
            return off
        }
        let content = kept + (newNote ?? [])
        if !content.isEmpty {
            let noteOff = place(content)
            var nameOff = UInt32(strtab.count)
            if let r = findString(strtab, ".note.p2mnote") { nameOff = UInt32(r) } else { strtab += Array(".note.p2mnote".utf8) + [0] }
            var sh = GElf_Shdr()
            sh.sh_name = nameOff; sh.sh_type = UInt32(SHT_NOTE)
            sh.sh_offset = noteOff; sh.sh_size = UInt64(content.count); sh.sh_addralign = 4
            shdrs.append(sh)
        }
        shdrs[newStrndx].sh_offset = place(strtab)
        shdrs[newStrndx].sh_size = UInt64(strtab.count)
        let tableOff = place(try ElfRecords.encode(shdrs, type: ELF_T_SHDR, path: d.path))
        report.actions.append("\(newNote == nil ? "remove" : (existing == nil ? "add" : "replace")): appended \(blob.count) bytes (note, .shstrtab, \(shdrs.count) section headers) at 0x\(String(end, radix: 16)); e_shoff 0x\(String(d.shoff, radix: 16)) → 0x\(String(tableOff, radix: 16))")
        if dryRun { return }
        try writeJournal(fd: fd, regions: [(0, ehsize)], fileSize: d.fileSize)
        try failpoint?("append")
        try put(fd, blob, at: end)
        try sync(fd)
        try failpoint?("switch-header")
        try ensureUnchanged(fd, at: 0, expected: ehBytes, size: end + UInt64(blob.count))
        // e_shoff … e_shstrndx: one write inside the ELF header (the fields between them,
        // e_flags to e_phnum, are written back as they were).
        guard let n = UInt16(exactly: shdrs.count), let x = UInt16(exactly: newStrndx) else { throw DumpError(d.path, "too many sections") }
        eh.e_shoff = tableOff; eh.e_shnum = n; eh.e_shstrndx = x
        let newEh = try ElfRecords.encode([eh], type: ELF_T_EHDR, path: d.path)
        try put(fd, Array(newEh[shoffAt..<ehsize]), at: UInt64(shoffAt))
        try sync(fd)
        report.bytesWritten = UInt64(blob.count) + UInt64(ehsize - shoffAt)
        dropJournal()
    }

    private func findString(_ t: [UInt8], _ s: String) -> Int? {
        let needle = Array(s.utf8) + [0]
        guard t.count >= needle.count else { return nil }
        for i in 0...(t.count - needle.count) where (i == 0 || t[i - 1] == 0) && Array(t[i..<i + needle.count]) == needle { return i }
        return nil
    }
}
