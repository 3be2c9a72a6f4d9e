// What every fuzz target does with its input: hand it to one parser of the toolkit the way a
// user's file reaches it (a file, here an in-memory one), then exercise what that parser gives
// the layers above. Any error is fine; a trap, a hang or a leak is a finding.
import DumpIO
import Foundation
import P2MFormat
import Translation

public enum Harness {
    /// The input as a file: one file per process in /dev/shm (memory, no disk I/O), rewritten
    /// for each input and opened by its path as any dump is; `body` gets the path.
    static let scratch: (fd: Int32, path: String) = {
        let path = "/dev/shm/p2mfuzz-\(getpid())"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        atexit { unlink("/dev/shm/p2mfuzz-\(getpid())") }
        return (fd, path)
    }()

    public static func withFile(_ data: UnsafeRawBufferPointer, _ body: (String) -> Void) {
        let (fd, path) = scratch
        // Overwrite, then cut to size: truncating to 0 first would free and re-add every page
        // of the file to the page cache on each execution (perf: shmem_add_to_page_cache).
        guard fd >= 0 else { return }
        var done = 0
        while done < data.count {
            let n = pwrite(fd, data.baseAddress! + done, data.count - done, off_t(done))
            guard n > 0 else { return }
            done += n
        }
        guard ftruncate(fd, off_t(data.count)) == 0 else { return }
        body(path)
    }

    /// The symbols of the generated guest the seeds come from (Tools/fuzz/seeds), so that the
    /// p2m sources get as far as the linear list; FUZZ_SYSTEM_MAP overrides.
    static let symbols: SymbolTable = {
        let p = ProcessInfo.processInfo.environment["FUZZ_SYSTEM_MAP"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("seeds/guest.System.map").path
        return (try? SymbolTable.systemMap(path: p)) ?? SymbolTable()
    }()

    /// A valid note (Spec/vectors) for the injector's plan.
    static let note: [UInt8] = {
        let p = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Spec/vectors/dom0-like.note").path
        return (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: p)))) ?? []
    }()

    public static func note(_ data: UnsafeRawBufferPointer) {
        guard let d = try? P2MNote.decode(descriptor: data) else { return }
        _ = d.map.canonical()
        _ = d.map.m2p(MFN(rawValue: 0x1000))
        _ = d.map.entry(PFN(rawValue: d.header.nrPfns / 2))
    }

    /// Open as a dump, then what every reader above does: notes, the note's decode, the roots,
    /// a few bytes of the first and last page of every segment.
    public static func container(_ data: UnsafeRawBufferPointer) {
        withFile(data) { path in
            guard let d = try? openDump(path: path) else { return }
            _ = d.layoutDescription
            _ = d.crashInfo; _ = d.crashRegs; _ = d.vmcoreInfo
            if let n = try? d.p2mNote() { _ = try? P2MNote.decode(descriptor: n.desc) }
            _ = try? d.recordedRoots()
            var buf = [UInt8](repeating: 0, count: 64)
            for s in d.memory.segments.prefix(256) {
                for a in [s.start, s.end &- 64] {
                    buf.withUnsafeMutableBytes { b in _ = try? d.memory.read(MachAddr(rawValue: a), into: b) }
                }
            }
        }
    }

    /// The resolver on the dump: the note, the linear list, the frame tree, `.xen_p2m`, and
    /// the cross-check of one against the others.
    public static func p2mSources(_ data: UnsafeRawBufferPointer) {
        withFile(data) { path in
            guard let d = try? openDump(path: path) else { return }
            let r = P2MResolver(dump: d, symbols: symbols)
            if let k = try? r.kernel() {
                _ = try? k.banner()
                _ = try? k.sharedFrames()
                _ = try? k.modules(ModuleLayout(ModuleOffsets(), source: "fuzz"))
                _ = try? k.btf()
            }
            if let (map, source) = try? r.resolve() {
                _ = r.crossCheck(map, identityKnown: source.coverage.knowsIdentity, skip: source.name)
                // The kernel's own symbols without a System.map: its VMCOREINFO page, then kallsyms.
                for (_, info) in Kallsyms.vmcoreInfoPages(map: map, machine: d.memory) {
                    if let k = try? r.kernel() { _ = try? Kallsyms.symbols(info, read: { try k.pageTables.readBytes(KVAddr(rawValue: $0), count: $1) }) }
                }
            }
            // Xen's tables of a host dump: the domain list, the frame table, the M2P rebuild,
            // struct vcpu and the per-CPU frames.
            if let host = try? XenHost(dump: d), let doms = try? host.domains() {
                _ = try? host.domains(scan: true)
                for dom in doms.prefix(8) { _ = try? host.vcpus(of: dom) }
                _ = try? GuestRegisterFinder.cpuFrames(dump: d, host: host)
                if let m = try? XenM2PSource.rebuild(host: host, domains: doms.filter { !$0.system }) {
                    for s in m { _ = try? s.map() }
                }
            }
        }
    }

    /// The injector's whole plan (every check it makes before writing), in dry-run mode.
    public static func injectPlan(_ data: UnsafeRawBufferPointer) {
        withFile(data) { path in
            let inj = NoteInjector(path: path)
            _ = try? inj.run(action: .add, note: note, dryRun: true)
            _ = try? inj.run(action: .replace, note: note, dryRun: true)
            _ = try? inj.run(action: .remove, note: nil, dryRun: true)
        }
    }
}
