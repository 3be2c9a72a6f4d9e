// Where a guest's p2m really lives in a dump, and how to read it without any pfn→mfn step:
// - the linear list at xen_p2m_addr, read through the machine-only page walk, with the shared
//   p2m_missing / p2m_identity pages (and PMD-level shared page tables) recognised by frame;
// - the 3-level frame-list tree whose root Xen's crash info names, read by machine address;
// - an xl dump-core's .xen_p2m pairs.
// Readers stream into a sink page by page: a 1 TiB guest's table is never held in memory.
import DumpIO
import Foundation
import P2MFormat

/// Receives a table in pfn order.
public protocol P2MSink: AnyObject {
    func invalid(_ count: UInt64) throws
    func identity(_ count: UInt64) throws
    func entries(_ e: UnsafeBufferPointer<UInt64>) throws
    /// The frame backing the next `count` pages of the linear list (nil: unmapped).
    func listFrames(_ mfn: MFN?, count: UInt64) throws
}

extension P2MSink {
    public func listFrames(_ mfn: MFN?, count: UInt64) throws {}
}

/// The kernel's shared p2m pages, by machine frame.
public struct SharedP2MFrames: Sendable {
    public var missing: MFN?
    public var identity: MFN?
    public var missingPte: MFN?
    public var identityPte: MFN?
    public init(missing: MFN? = nil, identity: MFN? = nil, missingPte: MFN? = nil, identityPte: MFN? = nil) {
        self.missing = missing; self.identity = identity; self.missingPte = missingPte; self.identityPte = identityPte
    }
    public var identityKnown: Bool { identity != nil }
}

public struct TranslationError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}

/// A guest kernel inside a dump: its page-table root, symbols and p2m location.
public final class GuestKernelView {
    public let dump: DumpFile
    public let memory: MachineMemory
    public let walker: MachinePageWalker
    public let symbols: SymbolTable
    public let root: MachAddr
    public let rootSource: String

    /// Find the root page table: `cr3` if given, else each cr3 the dump records (Xen crash
    /// regs per CPU, an xl dump's vcpu context and shared info), keeping the first under which
    /// the kernel's own symbols translate.
    public init(dump: DumpFile, memory: MachineMemory, symbols: SymbolTable, cr3: UInt64? = nil) throws {
        self.dump = dump
        self.memory = memory
        self.symbols = symbols
        self.walker = MachinePageWalker(memory: memory)
        var candidates: [(UInt64, String)] = []
        if let c = cr3 { candidates.append((c, "--cr3")) }
        for (i, r) in dump.crashRegs.enumerated() { candidates.append((r.cr3, "Xen crash regs of CPU \(i)")) }
        if let x = memory as? XenCoreMemory {
            if let c = try x.vcpu0CR3(), c != 0 { candidates.append((c, ".xen_prstatus vcpu 0 ctrlreg[3]")) }
            if let s = try x.sharedInfoArch(), s.p2mCR3 != 0 { candidates.append((s.p2mCR3, ".xen_shared_info p2m_cr3")) }
        }
        guard !candidates.isEmpty else {
            throw TranslationError("\(dump.path): no page-table root: the dump has no Xen crash-regs note (and no vcpu context); pass --cr3 with the machine address of dom0's top page table")
        }
        let probe = symbols.address("xen_p2m_addr") ?? symbols.address("linux_banner") ?? symbols.address("init_top_pgt")
        var chosen: (UInt64, String)? = nil
        if cr3 != nil { chosen = candidates[0] }
        else if let p = probe {
            for c in candidates {
                if (try? walker.translate(p, root: MachAddr(c.0 & PTE.addressMask))) != nil { chosen = c; break }
            }
        } else { chosen = candidates[0] }
        guard let c = chosen else {
            throw TranslationError("\(dump.path): none of the recorded cr3 values (\(candidates.map { "0x" + String($0.0, radix: 16) + " from " + $0.1 }.joined(separator: ", "))) maps the kernel's symbols; pass --cr3")
        }
        root = MachAddr(c.0 & PTE.addressMask)
        rootSource = c.1
    }

    public func symbol(_ name: String) throws -> KVAddr {
        guard let a = symbols.address(name) else {
            throw TranslationError("symbol \(name) not found: pass --system-map or --vmlinux (the dump's VMCOREINFO, if any, does not list it)")
        }
        return a
    }

    public func readU64(symbol name: String) throws -> UInt64 { try walker.readU64(try symbol(name), root: root) }

    /// The machine frame of the page that a kernel *pointer variable* points at.
    ///
    /// arch/x86/xen/p2m.c declares `static unsigned long *p2m_missing, *p2m_identity;` and
    /// `static pte_t *p2m_missing_pte, *p2m_identity_pte;`: System.map names the variables
    /// (in .bss), whose values are direct-map addresses of pages that alloc_p2m_page()
    /// took from memblock. So: read the variable through the walk, then translate its value.
    /// nil when the symbol is unknown; a known symbol that cannot be followed is an error,
    /// because silently losing it turns every identity page into INVALID.
    public func frame(pointedToBy name: String) throws -> MFN? {
        guard let a = symbols.address(name) else { return nil }
        let value: UInt64
        do { value = try walker.readU64(a, root: root) } catch {
            throw TranslationError("cannot read the pointer variable \(name) at \(a): \(error)")
        }
        guard value != 0 else { throw TranslationError("\(name) at \(a) is NULL: the kernel had not set up its p2m list") }
        guard value & 0xfff == 0 else {
            throw TranslationError("\(name) at \(a) holds 0x\(String(value, radix: 16)), not a page address (a System.map of another kernel?)")
        }
        do { return try walker.translate(KVAddr(value), root: root).mfn() } catch {
            throw TranslationError("\(name) = 0x\(String(value, radix: 16)) does not translate: \(error)")
        }
    }

    /// The shared p2m pages and page tables. The missing and identity pages are distinct
    /// allocations on every kernel, so equal frames mean the dump or the symbols are wrong.
    public func sharedFrames() throws -> SharedP2MFrames {
        let s = SharedP2MFrames(missing: try frame(pointedToBy: "p2m_missing"), identity: try frame(pointedToBy: "p2m_identity"),
                                missingPte: try frame(pointedToBy: "p2m_missing_pte"), identityPte: try frame(pointedToBy: "p2m_identity_pte"))
        if let m = s.missing, let i = s.identity, m == i {
            throw TranslationError("p2m_missing and p2m_identity both point at machine frame \(m): they are distinct pages on a real kernel")
        }
        if let m = s.missingPte, let i = s.identityPte, m == i {
            throw TranslationError("p2m_missing_pte and p2m_identity_pte both point at machine frame \(m)")
        }
        return s
    }

    /// xen_p2m_addr and xen_p2m_size, read through the walk.
    public func linearList() throws -> (vaddr: KVAddr, size: UInt64) {
        let addr = try readU64(symbol: "xen_p2m_addr")
        let size = try readU64(symbol: "xen_p2m_size")
        guard KernelRegion.of(KVAddr(addr)) == .vmalloc || KernelRegion.of(KVAddr(addr)) == .directMap || KernelRegion.of(KVAddr(addr)) == .kernelText else {
            throw TranslationError("xen_p2m_addr = 0x\(String(addr, radix: 16)) is not a kernel address (wrong System.map or cr3?)")
        }
        guard size > 0, size <= 1 << 40 else { throw TranslationError("xen_p2m_size = \(size) is implausible") }
        return (KVAddr(addr), size)
    }
}

public enum LinearListReader {
    /// Stream the linear list into `sink`: `size` entries at `vaddr`, reading machine memory
    /// only. Pages backed by the shared missing/identity frames become bulk runs.
    public static func read(walker: MachinePageWalker, root: MachAddr, vaddr: KVAddr, size: UInt64,
                            shared: SharedP2MFrames, sink: P2MSink, progress: ((UInt64, UInt64) -> Void)? = nil) throws {
        let pagesTotal = (size * 8 + 4095) / 4096
        var page: UInt64 = 0
        var buf = [UInt64](repeating: 0, count: 512)
        while page < pagesTotal {
            let va = KVAddr(vaddr.rawValue &+ page * 4096)
            let entriesLeft = size - page * 512
            // A whole 2 MiB of list behind one shared page table?
            if va.rawValue & 0x1f_ffff == 0, pagesTotal - page >= 512,
               let pmd = try walker.pmdEntry(va, root: root), pmd & PTE.present != 0, pmd & PTE.pse == 0 {
                let t = MFN((pmd & PTE.addressMask) >> 12)
                if t == shared.missingPte || t == shared.identityPte {
                    let n = min(entriesLeft, 512 * 512)
                    if t == shared.missingPte { try sink.invalid(n) } else { try sink.identity(n) }
                    try sink.listFrames(t == shared.missingPte ? shared.missing : shared.identity, count: 512)
                    page += 512
                    progress?(page, pagesTotal)
                    continue
                }
            }
            let m: MachAddr
            do { m = try walker.translate(va, root: root) } catch let e as WalkError {
                throw TranslationError("p2m list page \(page) at \(va) is not mapped: \(e)")
            }
            let mfn = m.mfn()
            if mfn == shared.missing || mfn == shared.identity {
                let n = min(entriesLeft, 512)
                try sink.listFrames(mfn, count: 1)
                if mfn == shared.missing { try sink.invalid(n) } else { try sink.identity(n) }
                page += 1
                if page & 0xfff == 0 { progress?(page, pagesTotal) }
                continue
            }
            // The list's own pages: gather a run of machine-contiguous ones into one read.
            var run: UInt64 = 1
            while run < 256, page + run < pagesTotal,
                  let next = try? walker.translate(KVAddr(va.rawValue &+ run * 4096), root: root),
                  next.mfn().rawValue == mfn.rawValue + run { run += 1 }
            let n = Int(min(entriesLeft, run * 512))
            if buf.count < n { buf = [UInt64](repeating: 0, count: Int(run * 512)) }
            try buf.withUnsafeMutableBytes { b in
                try walker.memory.read(m, into: UnsafeMutableRawBufferPointer(rebasing: b[0..<(n * 8)]))
            }
            for k in 0..<run { try sink.listFrames(MFN(mfn.rawValue + k), count: 1) }
            try buf.withUnsafeBufferPointer { try sink.entries(UnsafeBufferPointer(rebasing: $0[0..<n])) }
            page += run
            if page & 0xfff < run { progress?(page, pagesTotal) }
        }
        progress?(pagesTotal, pagesTotal)
    }
}

public enum FrameTreeReader {
    /// Stream the 3-level frame-list tree rooted at `fll` (L3 page) into `sink`: `size`
    /// entries (at most 2^27). Leaves are read by machine address; a leaf frame seen before as
    /// all INVALID is not read again (the shared p2m_missing page is named 2^18 times).
    public static func read(memory: MachineMemory, fll: MFN, size: UInt64, sink: P2MSink) throws {
        guard size <= 1 << 27 else { throw TranslationError("the frame-list tree covers at most 2^27 pfns; the table has \(size)") }
        guard let l3Addr = fll.address() else { throw TranslationError("frame-list-list mfn \(fll) out of range") }
        let l3 = try memory.readBytes(l3Addr, count: 4096)
        var invalidLeaves = Set<UInt64>()
        var l2Cache: [UInt64: [UInt8]] = [:]
        var buf = [UInt64](repeating: 0, count: 512)
        var pfn: UInt64 = 0
        for top in 0..<512 where pfn < size {
            let l2mfn = le(l3, top * 8)
            guard l2mfn != 0, l2mfn != .max, let l2Addr = MFN(l2mfn).address() else {
                throw TranslationError("frame-list-list slot \(top) holds 0x\(String(l2mfn, radix: 16)): not a frame")
            }
            let l2: [UInt8]
            if let c = l2Cache[l2mfn] { l2 = c } else { l2 = try memory.readBytes(l2Addr, count: 4096); l2Cache[l2mfn] = l2 }
            for mid in 0..<512 where pfn < size {
                let leaf = le(l2, mid * 8)
                let n = Int(min(512, size - pfn))
                if invalidLeaves.contains(leaf) {
                    try sink.invalid(UInt64(n))
                } else {
                    guard let a = MFN(leaf).address() else { throw TranslationError("leaf frame 0x\(String(leaf, radix: 16)) out of range") }
                    try buf.withUnsafeMutableBytes { try memory.read(a, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<4096])) }
                    if buf.allSatisfy({ $0 == .max }) { invalidLeaves.insert(leaf) }
                    try buf.withUnsafeBufferPointer { try sink.entries(UnsafeBufferPointer(rebasing: $0[0..<n])) }
                }
                pfn += UInt64(n)
            }
        }
    }

    static func le(_ b: [UInt8], _ o: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(b[o + i]) << (8 * UInt64(i)) }
        return v
    }
}

/// Sink that feeds a note encoder, list frames included (streamed: nothing is collected).
public final class EncoderSink: P2MSink {
    public let encoder: P2MEncoder
    public let keepFrames: Bool
    public init(_ e: P2MEncoder, keepFrames: Bool = false) { encoder = e; self.keepFrames = keepFrames }
    public func invalid(_ count: UInt64) throws { try encoder.appendInvalid(count: count) }
    public func identity(_ count: UInt64) throws { try encoder.appendIdentity(count: count) }
    public func entries(_ e: UnsafeBufferPointer<UInt64>) throws { try encoder.append(entries: e) }
    public func listFrames(_ mfn: MFN?, count: UInt64) throws {
        if keepFrames { try encoder.appendListFrames(repeating: mfn, count: count) }
    }
}

/// Sink that computes the map digest and counts (to compare memory with a note).
public final class DigestSink: P2MSink {
    public var digester = MapDigester()
    public init() {}
    public func invalid(_ count: UInt64) throws { digester.feedInvalid(count: count) }
    public func identity(_ count: UInt64) throws { digester.feedIdentity(count: count) }
    public func entries(_ e: UnsafeBufferPointer<UInt64>) throws { digester.feed(entries: e) }
}

/// Sink that compares a streamed table with a decoded map, keeping the first differences.
public final class CompareSink: P2MSink {
    public let map: P2MMap
    public private(set) var pfn: UInt64 = 0
    public private(set) var differences: [(pfn: UInt64, expected: UInt64, found: UInt64)] = []
    public private(set) var differenceCount: UInt64 = 0
    /// When the source cannot tell identity from missing, count identity-vs-INVALID as equal.
    public let identityBlind: Bool
    private var buf = [UInt64](repeating: 0, count: 512)
    public init(map: P2MMap, identityBlind: Bool = false) { self.map = map; self.identityBlind = identityBlind }

    private func check(_ got: UnsafeBufferPointer<UInt64>) {
        var i = 0
        while i < got.count {
            let n = min(512, got.count - i)
            let k = buf.withUnsafeMutableBufferPointer { map.entries(from: pfn, into: UnsafeMutableBufferPointer(rebasing: $0[0..<n])) }
            for j in 0..<n {
                let exp = j < k ? buf[j] : .max
                let g = got[i + j]
                if exp != g && !(identityBlind && g == .max && P2MEntry(raw: exp).kind == .identity) {
                    differenceCount += 1
                    if differences.count < 10 { differences.append((pfn + UInt64(j), exp, g)) }
                }
            }
            pfn += UInt64(n); i += n
        }
    }
    public func entries(_ e: UnsafeBufferPointer<UInt64>) throws { check(e) }
    public func invalid(_ count: UInt64) throws { bulk(count, first: .max, step: 0) }
    public func identity(_ count: UInt64) throws { bulk(count, first: pfn | P2MEntry.identityBit, step: 1) }

    private func note(_ p: UInt64, _ exp: UInt64, _ got: UInt64) {
        if exp != got && !(identityBlind && got == .max && P2MEntry(raw: exp).kind == .identity) {
            differenceCount += 1
            if differences.count < 10 { differences.append((p, exp, got)) }
        }
    }

    /// A run found in memory, compared with the map's runs segment by segment.
    private func bulk(_ count: UInt64, first: UInt64, step: UInt64) {
        var covered: UInt64 = 0
        map.forEachSegment(from: pfn, count: count) { start, len, mFirst, mStep, lits in
            covered += len
            let got0 = first &+ step &* (start - pfn)
            if lits == nil {
                if mStep == step && mFirst == got0 { return }
                // Identity in the note, INVALID in a source that cannot tell them apart.
                if identityBlind && step == 0 && first == .max && mStep == 1 && mFirst == start | P2MEntry.identityBit { return }
            }
            for i in 0..<len {
                let exp = lits.map { $0[$0.startIndex + Int(i)] } ?? (mFirst &+ mStep &* i)
                note(start + i, exp, got0 &+ step &* i)
                if differences.count >= 10 && differenceCount > 1_000_000 { break }
            }
        }
        // Beyond the map's end every found entry differs from "absent" (INVALID).
        if covered < count {
            for i in covered..<count { note(pfn + i, .max, first &+ step &* i); if differenceCount > 1_000_000 { break } }
        }
        pfn += count
    }
}
