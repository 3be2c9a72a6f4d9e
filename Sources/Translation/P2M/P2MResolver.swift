// Every place a guest's p2m can be found in a dump, as one ordered list of sources, and the
// one cross-checker that the emitter, the injector, `info` and `check` all call.
//
// Sources, in the order a reader should trust them:
//   note          the p2mnote note (this format)
//   linear list   xen_p2m_addr through the guest's own page tables (knows identity pages)
//   frame tree    Xen's frame-list tree (crash info or --p2m-mfn): identity reads as missing
//   .xen_p2m      an xl dump-core's (pfn, mfn) pairs: lists present pages only
import DumpIO
import Foundation
import P2MFormat

/// What a source can say.
public struct P2MCoverage: Sendable, Codable {
    /// Entries from pfn 0.
    public var entries: UInt64
    /// Whether it tells identity pages from missing ones.
    public var knowsIdentity: Bool
    /// Whether only listed pfns are known (unlisted ones: no word either way).
    public var sparse: Bool
    /// Whether it can name foreign frames (Xen's M2P cannot: they are another domain's).
    public var knowsForeign = true
    public init(entries: UInt64, knowsIdentity: Bool, sparse: Bool, knowsForeign: Bool = true) {
        self.entries = entries; self.knowsIdentity = knowsIdentity; self.sparse = sparse; self.knowsForeign = knowsForeign
    }
}

/// Every p2m source, by the stable name JSON, `info` and `check` print.
public enum P2MSourceName: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    public var description: String { rawValue }
    case note
    case linearList = "linear-list"
    case frameTree = "frame-tree"
    case xenP2M = "xen-p2m"
    case xenM2P = "xen-m2p"
}

public protocol P2MTableSource: AnyObject {
    /// Stable name (JSON's "source").
    var name: P2MSourceName { get }
    /// Where it was found, for people.
    var location: String { get }
    var coverage: P2MCoverage { get }
    /// The source code a note made from it records.
    var sourceCode: P2MSource { get }
    func stream(into sink: P2MSink, progress: ((UInt64, UInt64) -> Void)?) throws
    /// List pages the last `stream` found missing from the dump (their pfns went out as unknown).
    var pagesNotInDump: [ListPageNotInDump] { get }
    /// Other ways the source is incomplete, for people (said loudly by emit).
    var incomplete: [String] { get }
}

extension P2MTableSource {
    public var pagesNotInDump: [ListPageNotInDump] { [] }
    public var incomplete: [String] { [] }

    /// The table as a lookup map.
    public func map() throws -> P2MMap {
        let s = MapSink()
        try stream(into: s, progress: nil)
        return s.finish()
    }
}

public final class NoteSource: P2MTableSource {
    public let note: ElfNote
    public let decoded: DecodedP2MNote
    public init(note: ElfNote, decoded: DecodedP2MNote) { self.note = note; self.decoded = decoded }
    public var name: P2MSourceName { .note }
    public var location: String { "p2mnote note at file offset 0x\(String(note.fileOffset, radix: 16))" }
    public var coverage: P2MCoverage { P2MCoverage(entries: decoded.header.nrPfns, knowsIdentity: decoded.header.identityKnown, sparse: false) }
    public var sourceCode: P2MSource { decoded.header.source ?? .unknown }
    public func stream(into sink: P2MSink, progress: ((UInt64, UInt64) -> Void)?) throws {
        let m = decoded.map
        var err: Error?
        var buf: [UInt64] = []
        m.forEachSegment(from: 0, count: m.nrPfns) { start, len, first, step, lits in
            guard err == nil else { return }
            do {
                if let l = lits { buf = Array(l); try buf.withUnsafeBufferPointer { try sink.entries($0) }; return }
                if first == .max && step == 0 { try sink.invalid(len); return }
                if step == 1 && first == start | P2MEntry.identityBit { try sink.identity(len); return }
                var off: UInt64 = 0
                while off < len {
                    let n = Int(min(4096, len - off))
                    buf = (0..<n).map { first &+ step &* (off + UInt64($0)) }
                    try buf.withUnsafeBufferPointer { try sink.entries($0) }
                    off += UInt64(n)
                }
            } catch { err = error }
        }
        if let e = err { throw e }
    }
}

public final class LinearListSource: P2MTableSource {
    public let kernel: GuestKernel
    public let list: P2MListLocation
    public let vaddr: KVAddr
    public let shared: SharedP2MFrames
    public let sourceCode: P2MSource
    public init(kernel: GuestKernel) throws {
        self.kernel = kernel
        let (va, size) = try kernel.linearList()
        vaddr = va
        shared = try kernel.sharedFrames()
        list = .linearList(root: kernel.root, vaddr: va, size: size)
        sourceCode = kernel.dump.kind == .xenDumpCore ? .xlPagesLinear : .linearList
    }
    /// A list whose address and size come from elsewhere than the kernel's symbols: a host
    /// dump's guest publishes p2m_vaddr and max_pfn in its shared_info (arch_shared_info).
    public init(kernel: GuestKernel, vaddr: KVAddr, size: UInt64, shared: SharedP2MFrames, sourceCode: P2MSource = .linearList) {
        self.kernel = kernel; self.vaddr = vaddr; self.shared = shared; self.sourceCode = sourceCode
        list = .linearList(root: kernel.root, vaddr: vaddr, size: size)
    }
    public var name: P2MSourceName { .linearList }
    public var location: String { "linear list at \(vaddr) read through cr3 \(kernel.root) (\(kernel.rootSource))" }
    public var coverage: P2MCoverage { P2MCoverage(entries: list.size, knowsIdentity: shared.identityKnown, sparse: false) }
    public private(set) var pagesNotInDump: [ListPageNotInDump] = []
    public func stream(into sink: P2MSink, progress: ((UInt64, UInt64) -> Void)?) throws {
        pagesNotInDump = []
        try ListReader.read(list, walker: kernel.walker, shared: shared, sink: sink, progress: progress) { self.pagesNotInDump.append($0) }
    }
}

public final class FrameTreeSource: P2MTableSource {
    public let fll: MFN
    public let list: P2MListLocation
    public let walker: PageTableWalker
    public let shared: SharedP2MFrames
    public let origin: String
    public init(fll: MFN, size: UInt64, walker: PageTableWalker, shared: SharedP2MFrames, origin: String) throws {
        self.fll = fll; self.walker = walker; self.origin = origin
        // The tree cannot tell identity pages (a PMD's worth of them is named by
        // p2m_mid_missing_mfn, i.e. p2m_missing): only the missing frames are used.
        self.shared = SharedP2MFrames(missing: shared.missing, midMissing: shared.midMissing)
        list = try .frameTree(fll: fll, size: size)
    }
    public var name: P2MSourceName { .frameTree }
    public var location: String { "frame-list tree at mfn \(fll) (\(origin))" }
    public var coverage: P2MCoverage { P2MCoverage(entries: list.size, knowsIdentity: false, sparse: false) }
    public var sourceCode: P2MSource { .frameListTree }
    public private(set) var pagesNotInDump: [ListPageNotInDump] = []
    public func stream(into sink: P2MSink, progress: ((UInt64, UInt64) -> Void)?) throws {
        pagesNotInDump = []
        try ListReader.read(list, walker: walker, shared: shared, sink: sink, progress: progress) { self.pagesNotInDump.append($0) }
    }
}

public final class XenP2MSectionSource: P2MTableSource {
    public let core: GuestRecord
    public let size: UInt64
    private let sorted: [(pfn: UInt64, mfn: UInt64)]
    public init(core: GuestRecord) throws {
        self.core = core
        sorted = core.pairs.sorted { $0.pfn < $1.pfn }
        for k in sorted.indices.dropFirst() where sorted[k].pfn == sorted[k - 1].pfn {
            throw DumpError(core.path, "pfn 0x\(String(sorted[k].pfn, radix: 16)) appears twice in .xen_p2m")
        }
        guard let last = sorted.last, last.pfn < 1 << 40 else {
            throw DumpError(core.path, sorted.isEmpty ? ".xen_p2m lists no pages" : ".xen_p2m lists pfn 0x\(String(sorted.last!.pfn, radix: 16)), beyond 2^40")
        }
        var s = last.pfn + 1
        if let si = try core.sharedInfoArch(), si.maxPfn > s, si.maxPfn <= 1 << 40 { s = si.maxPfn }
        size = s
    }
    public var name: P2MSourceName { .xenP2M }
    public var location: String { ".xen_p2m section (\(sorted.count) pairs)" }
    /// Neither identity nor foreign entries can be told: a {pfn, gmfn} pair names a frame of the
    /// domain's own that the file holds (a grant-mapped FOREIGN frame is another domain's; libxc
    /// and p2m-extract list it as INVALID, as the M2P sees it).
    public var coverage: P2MCoverage { P2MCoverage(entries: size, knowsIdentity: false, sparse: true, knowsForeign: false) }
    public var sourceCode: P2MSource { .xlP2M }
    public func stream(into sink: P2MSink, progress: ((UInt64, UInt64) -> Void)?) throws {
        var next: UInt64 = 0
        var batch: [UInt64] = []
        batch.reserveCapacity(4096)
        func flush() throws { if !batch.isEmpty { try batch.withUnsafeBufferPointer { try sink.entries($0) }; batch.removeAll(keepingCapacity: true) } }
        for (pfn, mfn) in sorted where pfn < size {
            if pfn > next { try flush(); try sink.unknown(pfn - next) }
            batch.append(mfn)
            if batch.count == 4096 { try flush() }
            next = pfn + 1
        }
        try flush()
        if next < size { try sink.unknown(size - next) }
    }
}

// MARK: the resolver

/// Which guest of a dump to read, and where its symbols and tables are: what every reader of a
/// guest is given (the analyzer's session, the emitter, the C library's open options).
public struct GuestSelection: Sendable {
    /// The guest kernel's System.map.
    public var systemMap: String?
    /// The guest kernel's vmlinux (its symbol table, build ID and banner).
    public var vmlinux: String?
    /// The guest's top page table, as a cr3 value (--cr3); nil: the roots the dump records.
    public var cr3: MachAddr?
    /// The frame-list-list page (--p2m-mfn); nil: Xen's crash info or the guest's shared_info.
    public var p2mMFN: MFN?
    /// Whether a p2mnote note is read first (--no-note: the dump's own tables only).
    public var useNote = true
    /// A host dump's domain, found in Xen's tables (nil: the dump's own guest, dom0 of a kdump).
    public var domain: UInt16?
    /// Xen's own symbols (xen-syms or its .map), optional.
    public var xenSyms: String?
    public init() {}
}

/// A source that could not be used, and why.
public struct UnavailableSource: Sendable, Codable {
    public var source: P2MSourceName
    public var reason: String
    public init(source: P2MSourceName, reason: String) { self.source = source; self.reason = reason }
}

/// One source compared with a map over what both cover.
public struct SourceComparison: Sendable, Codable {
    public var source: P2MSourceName
    public var location: String
    public var sourceEntries: UInt64
    public var mapEntries: UInt64
    public var compared: UInt64
    public var differences: UInt64
    public var first: [P2MDifference]
    public var identityBlind: Bool
    public var sparse: Bool
    public var error: String?
    /// Pfns this source could not say anything about: its list pages are not in the dump.
    public var unknownPfns: UInt64 = 0
    /// FOREIGN in the map vs INVALID in the source counted as equal (the source cannot see them).
    public var foreignBlind = false
    public var agrees: Bool { error == nil && differences == 0 }
}

public struct CrossCheckReport: Sendable, Codable {
    public var comparisons: [SourceComparison]
    public var unavailable: [UnavailableSource]
    public var agrees: Bool { comparisons.allSatisfy(\.agrees) }
    /// Whether any independent source was compared at all.
    public var compared: Bool { !comparisons.isEmpty }
}

public final class P2MResolver {
    public let dump: DumpContainer
    public let symbols: SymbolTable
    public let options: GuestSelection
    public let walker: PageTableWalker
    private var kernelResult: Result<GuestKernel, Error>?
    private var noteResult: Result<NoteSource?, Error>?
    private var hostResult: Result<XenHost, Error>?
    private var domainResult: Result<XenDomain, Error>?
    private var m2pResult: Result<XenM2PSource, Error>?
    public private(set) var unavailable: [UnavailableSource] = []

    public init(dump: DumpContainer, symbols: SymbolTable, options: GuestSelection = .init()) {
        self.dump = dump; self.symbols = symbols; self.options = options
        walker = PageTableWalker(memory: dump.memory)
    }

    /// Xen's tables of a host dump.
    public func host() throws -> XenHost {
        if let r = hostResult { return try r.get() }
        let r = Result { try XenHost.open(dump: dump, xenSyms: options.xenSyms) }
        hostResult = r
        return try r.get()
    }

    /// The domain asked for (--domain), from Xen's tables.
    public func domain() throws -> XenDomain? {
        guard let id = options.domain else { return nil }
        if let r = domainResult { return try r.get() }
        let r = Result { () throws -> XenDomain in
            do { return try host().domain(id) }
            catch let e as TranslationError where e.kind == .noDomain { throw e }
            catch { throw TranslationError("domain \(id) cannot be looked up: Xen's tables in this dump cannot be read: \(error)", kind: .noDomain) }
        }
        domainResult = r
        return try r.get()
    }

    /// A domU's root: --cr3, else the p2m_cr3 its kernel published in shared_info (Linux sets it
    /// to swapper_pg_dir's frame, the kernel's own page table).
    private func domainRoot() throws -> MachAddr? {
        guard let d = try domain(), d.id != 0 else { return nil }
        if let c = options.cr3 { return c }
        guard let a = d.arch, a.p2mCr3 != 0 else {
            throw TranslationError("\(dump.path): domain \(d.id) published no p2m_cr3 in its shared_info (not a Linux PV guest?); pass --cr3", kind: .noRoot)
        }
        return MachAddr(rawValue: a.p2mCr3)
    }

    /// The guest kernel (its page-table root found once).
    public func kernel() throws -> GuestKernel {
        if let r = kernelResult { return try r.get() }
        let r = Result { () -> GuestKernel in
            // Say where the root came from: --cr3 only when it was given.
            if options.cr3 == nil, let d = try domainRoot() {
                return try GuestKernel(dump: dump, symbols: symbols, walker: walker, cr3: d, cr3Source: "the domain's p2m_cr3 in its shared_info")
            }
            return try GuestKernel(dump: dump, symbols: symbols, walker: walker, cr3: options.cr3)
        }
        kernelResult = r
        return try r.get()
    }

    /// The dump's p2mnote note, decoded (nil: none; a bad note is an error).
    public func note() throws -> NoteSource? {
        if let r = noteResult { return try r.get() }
        let r = Result { () -> NoteSource? in
            // A host dump carries one note per domain: --domain picks its own.
            guard let n = try dump.p2mNote(domain: options.domain.map(UInt32.init)) else { return nil }
            return NoteSource(note: n, decoded: try P2MNote.decode(descriptor: n.desc))
        }
        noteResult = r
        return try r.get()
    }

    private func record(_ name: P2MSourceName, _ reason: String) {
        if !unavailable.contains(where: { $0.source == name }) { unavailable.append(UnavailableSource(source: name, reason: reason)) }
    }

    public func linearList() -> LinearListSource? {
        if let d = try? domain(), symbols.address("xen_p2m_addr") == nil {
            // No System.map of the guest: the list's address and extent from its shared_info.
            guard let a = d.arch, a.p2mVaddr != 0, a.maxPfn > 0 else {
                record(.linearList, "domain \(d.id) published no p2m_vaddr in its shared_info (pass the guest's --system-map)"); return nil
            }
            do { return LinearListSource(kernel: try kernel(), vaddr: KVAddr(rawValue: a.p2mVaddr), size: a.maxPfn, shared: SharedP2MFrames()) }
            catch { record(.linearList, "\(error)"); return nil }
        }
        guard symbols.address("xen_p2m_addr") != nil else {
            record(.linearList, "no xen_p2m_addr symbol (pass --system-map or --vmlinux)"); return nil
        }
        do { return try LinearListSource(kernel: try kernel()) } catch { record(.linearList, "\(error)"); return nil }
    }

    /// The frame-list-list root: --p2m-mfn, else Xen's crash info (dom0), else an xl dump's shared info.
    public var frameListRoot: (mfn: MFN, origin: String)? {
        if let m = options.p2mMFN { return (m, "--p2m-mfn") }
        if let d = try? domain(), d.id != 0 {
            guard let a = d.arch, a.fllMfn != 0, a.fllMfn != .max, a.fllMfn < 1 << 40 else { return nil }
            return (MFN(rawValue: a.fllMfn), "domain \(d.id)'s shared_info pfn_to_mfn_frame_list_list")
        }
        if let c = dump.crashInfo?.frameListListMFN { return (c, "Xen crash info") }
        if let x = dump.guestRecord, let s = try? x.sharedInfoArch(), s.fll != 0, s.fll != .max, s.fll < 1 << 40 {
            return (MFN(rawValue: s.fll), ".xen_shared_info pfn_to_mfn_frame_list_list")
        }
        return nil
    }

    public func frameTree() -> FrameTreeSource? {
        guard let (fll, origin) = frameListRoot else {
            record(.frameTree, "no frame-list-list root (no Xen crash info, no --p2m-mfn)"); return nil
        }
        // Size and shared frames from the kernel where its symbols are known; else 2^27.
        var size: UInt64 = 1 << 27
        if let d = try? domain(), let a = d.arch, a.maxPfn > 0 { size = min(a.maxPfn, 1 << 27) }
        var shared = SharedP2MFrames()
        if symbols.address("xen_p2m_size") != nil, let k = try? kernel() {
            if let s = try? k.readU64(symbol: "xen_p2m_size"), s > 0 { size = min(s, 1 << 27) }
            if let s = try? k.sharedFrames() { shared = s }
        }
        do { return try FrameTreeSource(fll: fll, size: size, walker: walker, shared: shared, origin: origin) }
        catch { record(.frameTree, "\(error)"); return nil }
    }

    public func xenP2M() -> XenP2MSectionSource? {
        guard let x = dump.guestRecord else { return nil }
        do { return try XenP2MSectionSource(core: x) } catch { record(.xenP2M, "\(error)"); return nil }
    }

    /// Use a map already rebuilt (with every other domain's, in one pass: `--all-domains`).
    public func preset(m2p: XenM2PSource) { m2pResult = .success(m2p) }

    /// The guest's p2m rebuilt from Xen's frame table and M2P (only with --domain: it reads the
    /// whole frame table).
    public func xenM2P() -> XenM2PSource? {
        guard options.domain != nil else { return nil }
        if let r = m2pResult { return try? r.get() }
        let r = Result { () -> XenM2PSource in
            guard let d = try domain() else { throw TranslationError("no domain") }
            return try XenM2PSource.rebuild(host: try host(), domain: d)
        }
        m2pResult = r
        if case .failure(let e) = r { record(.xenM2P, "\(e)") }
        return try? r.get()
    }

    /// The dump's own tables (everything but the note), most trusted first.
    public func dumpSources() -> [P2MTableSource] {
        var s: [P2MTableSource] = []
        if let l = linearList() { s.append(l) }
        if let t = frameTree() { s.append(t) }
        if let x = xenP2M() { s.append(x) }
        if let m = xenM2P() { s.append(m) }
        return s
    }

    /// The p2m to use: the note first (unless disabled), else the dump's own tables in order.
    public func resolve() throws -> (map: P2MMap, source: P2MTableSource) {
        if options.useNote {
            if let n = try note() { return (n.decoded.map, n) }
            record(.note, "the dump carries no p2mnote note")
        } else { record(.note, "disabled (--no-note)") }
        for s in dumpSources() {
            do { return (try s.map(), s) } catch { record(s.name, "\(error)") }
        }
        throw TranslationError("\(dump.path): no p2m source: " + unavailable.map { "\($0.source): \($0.reason)" }.joined(separator: "; "), kind: .noP2M)
    }

    /// Compare `map` with every source of the dump except `skip`, each over the pfns both cover.
    public func crossCheck(_ map: P2MMap, identityKnown: Bool, skip: P2MSourceName? = nil) -> CrossCheckReport {
        var out: [SourceComparison] = []
        for s in dumpSources() where s.name != skip {
            let cov = s.coverage
            let blind = !cov.knowsIdentity || !identityKnown
            let c = CompareSink(map: map, identityBlind: blind, foreignBlind: !cov.knowsForeign)
            var err: String? = nil
            do { try s.stream(into: c, progress: nil) } catch { err = "\(error)" }
            out.append(SourceComparison(source: s.name, location: s.location, sourceEntries: cov.entries, mapEntries: map.nrPfns,
                                        compared: c.compared, differences: c.differenceCount, first: c.differences,
                                        identityBlind: blind, sparse: cov.sparse, error: err,
                                        unknownPfns: s.pagesNotInDump.reduce(0) { $0 + $1.pfns }, foreignBlind: !cov.knowsForeign))
        }
        return CrossCheckReport(comparisons: out, unavailable: unavailable.filter { $0.source != .note })
    }
}
