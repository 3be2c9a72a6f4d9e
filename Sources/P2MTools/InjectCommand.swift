import ArgumentParser
import DumpIO
import Foundation
import GuestReader
import P2MFormat
import Translation

public struct InjectCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "p2m-inject",
        abstract: "Add, replace or remove the p2mnote note of a dump in place, without copying it.",
        discussion: reflow("""
        ELF vmcores: the note is appended to the one PT_NOTE segment, below the first PT_LOAD
        data where crash looks for notes. When there is no room (makedumpfile -E output), only
        the first pages of that PT_LOAD are moved to the end of the file. xl dump-core files get
        a `.note.p2mnote` section. Writes are ordered and fsynced so that an interruption leaves a
        readable dump; an undo journal (DUMP.p2minject.journal) lets the next run restore it.
        Before anything is written, the note is compared with the dump's own tables (as
        `p2m-analyze check` does); a note that does not match the dump is refused unless --force.

        kdump-compressed files (makedumpfile -c/-l/-p/-z) get a new notes blob at the end of the
        file (every old note, then the p2m note), switched in by one write of the sub-header's
        offset_note/size_note/offset_vmcoreinfo. A flattened stream (makedumpfile -F) is never
        written in place: -o OUT gets the kdump-compressed file it describes, with the note.

        Examples:
          p2m-inject dom0.vmcore --note dom0.vmcore.p2mnote --verify
          p2m-inject dom0.vmcore --emit --system-map System.map -o dom0-p2m.vmcore
          p2m-inject dom0.vmcore --remove
          p2m-inject host.vmcore --emit --all-domains --system-map System.map --verify
        """),
        version: p2mnoteVersion)

    @Argument(help: "The dump: ELF vmcore, xl dump-core, kdump-compressed or (with -o) flattened.") var dump: String
    @Option(help: "A note file made by p2m-emit.") var note: String?
    @Flag(help: "Emit the note from the dump itself (needs --system-map/--vmlinux for the linear list).") var emit = false
    @Option(help: "System.map for --emit.") var systemMap: String?
    @Option(help: "vmlinux for --emit.") var vmlinux: String?
    @Option(name: [.short, .long], help: "Write the result to a new file (a sparse copy) instead of in place.") var output: String?
    @Flag(help: "Replace an existing p2mnote note.") var replace = false
    @Flag(help: "Remove the p2mnote note.") var remove = false
    @Flag(help: "Say what would be done, change nothing.") var dryRun = false
    @Flag(help: "Also compare a hash of all memory bytes before and after.") var verify = false
    @Flag(help: "Inject a note even if it does not match the dump's own tables.") var force = false
    @Option(help: "A host dump's domain: --emit makes its note from Xen's tables; --remove removes its note. Other domains' notes stay as they are.") var domain: UInt16?
    @Flag(help: "With --emit: a note for every PV guest of a host dump.") var allDomains = false
    @Option(help: "Xen's symbols (xen-syms or xen-syms.map), optional, for --emit on a host dump.") var xenSyms: String?

    @Flag(help: "Print what was done (and errors, on stderr) as JSON.") var json = false

    public init() {}

    /// What a run did (`--json`; the text output is the same lines).
    struct InjectSummary: Encodable {
        var dump: String
        var target: String
        var action: String
        var dryRun: Bool
        var lines: [String] = []
        var bytesWritten: UInt64 = 0
        var domains: [UInt32] = []
    }
    final class Said { var summary: InjectSummary; init(_ s: InjectSummary) { summary = s } }

    public func run() throws {
        let said = Said(InjectSummary(dump: dump, target: output ?? dump, action: remove ? "remove" : (replace ? "replace" : "add"), dryRun: dryRun))
        try reportingErrors(json: json, tool: "p2m-inject") {
            try inject { line in said.summary.lines.append(line); if !json { print(line) } } written: { n, d in said.summary.bytesWritten += n; if let d { said.summary.domains.append(d) } }
            if json { try printJSON(said.summary) }
        }
    }

    /// `say`: a line of what was done (printed, or kept for JSON); `written`: bytes and domain per note.
    func inject(say: (String) -> Void, written: (UInt64, UInt32?) -> Void) throws {
        if remove && (note != nil || emit) { throw ValidationError("--remove takes no note") }
        if !remove && note == nil && !emit { throw ValidationError("give --note FILE or --emit (or --remove)") }
        var target = dump
        var created: String? = nil
        // A failed -o removes what it created: never a partial copy left behind.
        var done = false
        defer { if !done, let c = created { unlink(c) } }
        if let out = output {
            try OutputFile.checkWritable(out, force: false)
            let source = try OpenFile(path: dump)
            if DumpSniffer.identify(try source.read(offset: 0, count: Int(min(source.size, 64)))) == .flattened {
                // A flattened stream is not written in place (its readers disagree on
                // overlapping records): -o gets the kdump-compressed file it describes, as
                // `makedumpfile -R` would rebuild it, and the note goes into that.
                created = out
                try FlattenedFile(source).restore(to: out)
                warn("p2m-inject: \(dump) is a flattened stream; \(out) is the kdump-compressed file it describes (as makedumpfile -R rebuilds it), with the note")
            } else {
                try sparseCopy(from: dump, to: out)
            }
            created = out
            target = out
        }
        // One open of the target serves the symbols and the cross-check.
        let container = try openDump(path: target)
        let symbols = try SymbolTable.forDump(systemMap: systemMap, vmlinux: vmlinux, dump: container)
        if allDomains {
            // One note per PV guest, all maps rebuilt in one pass over Xen's tables, each checked
            // against the guest's own copies; each injected as its own domain's note.
            guard emit, note == nil, !remove, domain == nil else { throw ValidationError("--all-domains goes with --emit (not --note, --remove or --domain)") }
            var o = EmitOptions(input: target); o.guest.systemMap = systemMap; o.guest.vmlinux = vmlinux; o.guest.xenSyms = xenSyms
            let before = verify ? try ContentHash.of(path: target) : nil
            for r in try Emitter.emitAllDomains(o, dump: container) {
                let id = r.note.header.domainID
                if let w = r.summary.partialWarning { warn("p2m-inject: domain \(id): " + w) }
                if let c = r.summary.crossCheck, !c.agrees {
                    try refuseUnlessForced("domain \(id)'s note does not match its other copies:\n" + CrossCheckText.render(c), "nothing more was written", target)
                }
                // --replace replaces the notes there are; a guest with none gets one added.
                let has = try container.p2mNote(domain: id) != nil
                let report = try NoteInjector(path: target).run(action: replace && has ? .replace : .add, note: r.note.elfNoteBytes, dryRun: dryRun)
                say("domain \(id): " + report.description); written(report.bytesWritten, id)
            }
            if !dryRun, let v = try verifyUnchanged(before, target) { say(v) }
            done = true
            return
        }
        var noteBytes: [UInt8]? = nil
        if let n = note {
            guard let d = FileManager.default.contents(atPath: n) else { throw DumpError(n, "cannot read the note file") }
            noteBytes = [UInt8](d)
        } else if emit {
            var o = EmitOptions(input: target)
            o.guest.systemMap = systemMap; o.guest.vmlinux = vmlinux; o.guest.domain = domain; o.guest.xenSyms = xenSyms
            let r = try Emitter.emitFromDump(o, dump: container)
            if let w = r.summary.partialWarning { warn("p2m-inject: " + w) }
            noteBytes = r.note.elfNoteBytes
        }
        if let nb = noteBytes, !remove {
            let dec: DecodedP2MNote
            do { dec = try P2MNote.decode(descriptor: try P2MNote.descriptor(fromElfNote: nb)) }
            catch { throw DumpError(note ?? target, "not a valid p2mnote note: \(error)") }
            // The same cross-check as emit and `check`: a note from another dump is refused.
            var ro = GuestSelection()
            let noteDomain = dec.header.domainID
            if noteDomain != .max, let d = UInt16(exactly: noteDomain), container.vmcoreInfoXen != nil, d != 0 || domain != nil { ro.domain = d }
            let resolver = P2MResolver(dump: container, symbols: symbols, options: ro)
            let c = resolver.crossCheck(dec.map, identityKnown: dec.header.identityKnown)
            if !c.agrees {
                try refuseUnlessForced("the note does not match this dump's own tables:\n" + CrossCheckText.render(c), "nothing was written", target)
            } else if !c.compared {
                warn("p2m-inject: note: no other copy of the p2m is readable in this dump, so the note could not be checked against it" + (systemMap == nil && vmlinux == nil ? " (pass --system-map to compare with the guest's linear list)" : ""))
            } else {
                say("checked: the note agrees with " + c.comparisons.map(\.source.rawValue).joined(separator: ", "))
            }
        }
        let before = verify ? try ContentHash.of(path: target) : nil
        let injector = NoteInjector(path: target)
        let action: InjectAction = remove ? .remove : (replace ? .replace : .add)
        let notesBefore = container.p2mNotes.count
        let which: UInt32? = noteBytes.flatMap { try? P2MNote.descriptor(fromElfNote: $0) }.map { P2MNote.domainID(ofElfNoteDescriptor: $0) } ?? domain.map(UInt32.init)
        // Re-open and check what is there now, while the injector can still undo every write:
        // a failure here leaves the dump as it was (a note no reader finds is no success).
        var verified: [String] = []
        let report = try injector.run(action: action, note: noteBytes, domain: domain.map(UInt32.init), dryRun: dryRun) {
            let after = try openDump(path: target)
            if action == .remove {
                let gone = which == nil ? true : (try after.p2mNote(domain: which)) == nil
                guard after.p2mNotes.count == notesBefore - 1, gone else {
                    throw DumpError(target, "the note is still there after removal")
                }
                verified.append("verified: no p2mnote note")
            } else {
                guard let n = try after.p2mNote(domain: which) else { throw DumpError(target, "the note is not found after injection") }
                let dec = try P2MNote.decode(descriptor: n.desc)
                verified.append("verified: note at file offset 0x\(String(n.fileOffset, radix: 16)) decodes (\(dec.header.nrPfns) pfns, digest 0x\(String(dec.header.mapDigest, radix: 16)))")
            }
            if let v = try verifyUnchanged(before, target) { verified.append(v) }
        }
        say(report.description)
        if dryRun { say("dry run: nothing written"); done = true; return }
        verified.forEach { say($0) }
        written(report.bytesWritten, which)
        say("wrote \(report.bytesWritten) bytes")
        done = true
    }

    /// A note that disagrees with the dump's own copies: refused, or with --force said and taken.
    func refuseUnlessForced(_ msg: String, _ nothing: String, _ target: String) throws {
        if force { warn("p2m-inject: warning (--force): " + msg) } else { throw DumpError(target, msg + "\(nothing); pass --force to inject it anyway") }
    }

    /// --verify: the memory content hash taken before writing must be the one after.
    func verifyUnchanged(_ before: UInt64?, _ target: String) throws -> String? {
        guard let b = before else { return nil }
        let a = try ContentHash.of(path: target)
        guard a == b else { throw DumpError(target, "memory content hash changed: 0x\(String(b, radix: 16)) → 0x\(String(a, radix: 16))") }
        return "verified: memory content hash unchanged (0x\(String(a, radix: 16)))"
    }
}

/// Copy a (sparse) file keeping its holes.
func sparseCopy(from src: String, to dst: String) throws {
    let i = open(src, O_RDONLY)
    guard i >= 0 else { throw DumpError(src, "cannot open") }
    defer { close(i) }
    let o = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard o >= 0 else { throw DumpError(dst, "cannot create (exists already?): \(String(cString: strerror(errno)))") }
    var ok = false
    defer { close(o); if !ok { unlink(dst) } }
    var st = stat(); fstat(i, &st)
    guard ftruncate(o, st.st_size) == 0 else { throw DumpError(dst, "cannot size") }
    var buf = [UInt8](repeating: 0, count: 1 << 20)
    var pos: off_t = 0
    while pos < st.st_size {
        let data = lseek(i, pos, seekData)
        if data < 0 { break }
        let hole = lseek(i, data, seekHole)
        var p = data
        while p < hole {
            let n = try buf.withUnsafeMutableBytes { b -> Int in
                let r = pread(i, b.baseAddress, min(b.count, Int(hole - p)), p)
                guard r > 0 else { throw DumpError(src, offset: UInt64(p), "read failed") }
                return r
            }
            let w = buf.withUnsafeBytes { pwrite(o, $0.baseAddress, n, p) }
            guard w == n else { throw DumpError(dst, offset: UInt64(p), "write failed: \(String(cString: strerror(errno)))") }
            p += off_t(n)
        }
        pos = hole
    }
    guard fsync(o) == 0 else { throw DumpError(dst, "fsync failed: \(String(cString: strerror(errno)))") }
    ok = true
}
