// Reading a guest's p2m table out of machine memory, page by page, streamed into a sink (a
// 1 TiB guest's table is never held in memory). The linear list at xen_p2m_addr and Xen's
// frame-list tree are the same thing seen through two paging forms: an array of list pages,
// each named by an entry one level above it, with whole stretches named by shared pages
// (p2m_missing / p2m_identity) or shared tables (p2m_missing_pte / p2m_identity_pte,
// p2m_mid_missing_mfn). One reader does both.
import DumpIO
import Foundation
import P2MFormat

/// Receives a table in pfn order.
public protocol P2MSink: AnyObject {
    func invalid(_ count: UInt64) throws
    func identity(_ count: UInt64) throws
    func entries(_ e: UnsafeBufferPointer<UInt64>) throws
    /// `count` pfns the source says nothing about (`.xen_p2m` lists only present pages).
    func unknown(_ count: UInt64) throws
    /// The frame backing the next `count` pages of the list (nil: unmapped).
    func listFrames(_ mfn: MFN?, count: UInt64) throws
}

extension P2MSink {
    public func listFrames(_ mfn: MFN?, count: UInt64) throws {}
    /// Unless a sink says otherwise, an unlisted pfn has no frame.
    public func unknown(_ count: UInt64) throws { try invalid(count) }
}

/// Where a list lives: which form, which root, and how list page k is addressed.
public struct P2MListLocation: Sendable {
    public let form: PagingForm
    public let root: MachAddr
    /// Entries of the table.
    public let size: UInt64
    /// Address of list page k in the form's address space.
    let pageAddress: @Sendable (UInt64) -> UInt64
    /// Level whose entry names a list page (1 for a virtual array, 2 for the frame tree).
    let pageLevel: Int
    public let description: String

    /// The linear list: `size` entries at `vaddr` in the kernel's virtual space.
    public static func linearList(root: MachAddr, vaddr: KVAddr, size: UInt64) -> P2MListLocation {
        let base = vaddr.rawValue
        return P2MListLocation(form: .x86_64, root: root, size: size, pageAddress: { base &+ $0 &* 4096 }, pageLevel: 1,
                               description: "linear list at \(vaddr)")
    }

    /// Xen's frame-list tree rooted at the frame-list-list page: pfn p sits in list page p/512,
    /// whose frame the level-2 entry for pseudo-physical address (p/512) << 21 names.
    public static func frameTree(fll: MFN, size: UInt64) throws -> P2MListLocation {
        guard let r = fll.address() else { throw TranslationError("frame-list-list mfn \(fll) out of range") }
        return P2MListLocation(form: .xenFrameTree, root: r, size: min(size, 1 << 27), pageAddress: { $0 << 21 }, pageLevel: 2,
                               description: "frame-list tree at mfn \(fll)")
    }
}

/// A page of the list that the dump does not hold (makedumpfile's dump level excluded it, or no
/// segment covers its frame): its 512 pfns are unknown, not INVALID.
public struct ListPageNotInDump: Sendable, Codable, Equatable {
    /// Index of the page in the list (pfns page × 512 ...).
    public var page: UInt64
    public var mfn: MFN
    public var firstPfn: PFN
    public var pfns: UInt64
    public var reason: String
}

public enum ListReader {
    /// Stream the list into `sink`. Pages named by a shared frame become bulk runs; a frame
    /// once seen all-INVALID is not read again (the tree names p2m_missing 2^18 times).
    /// A list page that is not in the dump is an error, unless `missing` is given: then its
    /// pfns go to the sink as `unknown` and `missing` hears which page it was.
    public static func read(_ loc: P2MListLocation, walker: PageTableWalker, shared: SharedP2MFrames,
                            sink: P2MSink, progress: ((UInt64, UInt64) -> Void)? = nil,
                            missing: ((ListPageNotInDump) -> Void)? = nil) throws {
        let pagesTotal = (loc.size + 511) / 512
        let groupMissing = loc.pageLevel == 1 ? shared.missingPte : shared.midMissing
        let groupIdentity = loc.pageLevel == 1 ? shared.identityPte : nil
        var knownInvalid = Set<UInt64>()
        if let m = shared.missing { knownInvalid.insert(m.rawValue) }
        var page: UInt64 = 0
        var buf = [UInt64](repeating: 0, count: 512 * 256)
        func frame(_ k: UInt64, _ level: Int) throws -> MFN? {
            do { return try walker.frame(for: loc.pageAddress(k), atLevel: level, root: loc.root, form: loc.form) }
            catch let e as WalkError { throw TranslationError("\(loc.description): list page \(k) is not mapped: \(e)") }
        }
        while page < pagesTotal {
            let entriesLeft = loc.size - page * 512
            // A whole group of 512 list pages behind one shared table?
            if page % 512 == 0, pagesTotal - page >= 512, groupMissing != nil || groupIdentity != nil,
               let t = try? frame(page, loc.pageLevel + 1), t == groupMissing || t == groupIdentity {
                let n = min(entriesLeft, 512 * 512)
                if t == groupMissing { try sink.invalid(n); try sink.listFrames(shared.missing, count: 512) }
                else { try sink.identity(n); try sink.listFrames(shared.identity, count: 512) }
                page += 512
                progress?(page, pagesTotal)
                continue
            }
            if page & 0x3ff == 0 { try Interrupt.check() }
            guard let mfn = try frame(page, loc.pageLevel) else {
                throw TranslationError("\(loc.description): list page \(page) sits in a large page")
            }
            let n1 = min(entriesLeft, 512)
            if mfn == shared.identity {
                try sink.listFrames(mfn, count: 1); try sink.identity(n1)
                page += 1; if page & 0xfff == 0 { progress?(page, pagesTotal) }
                continue
            }
            if knownInvalid.contains(mfn.rawValue) {
                try sink.listFrames(mfn, count: 1); try sink.invalid(n1)
                page += 1; if page & 0xfff == 0 { progress?(page, pagesTotal) }
                continue
            }
            // The list's own pages: gather machine-contiguous ones into one read.
            var run: UInt64 = 1
            while run < 256, page + run < pagesTotal,
                  let next = try? frame(page + run, loc.pageLevel), next.rawValue == mfn.rawValue &+ run,
                  !knownInvalid.contains(next.rawValue), next != shared.identity { run += 1 }
            let n = Int(min(entriesLeft, run * 512))
            guard let at = mfn.address() else { throw TranslationError("list page frame \(mfn) out of range") }
            do {
                try buf.withUnsafeMutableBytes { b in
                    try walker.memory.read(at, into: UnsafeMutableRawBufferPointer(rebasing: b[0..<(n * 8)]))
                }
            } catch let e as DumpError where e.notInDump {
                // Some page of the run is not in the dump: page by page, the missing ones as unknown.
                for k in 0..<run {
                    let first = (page + k) * 512, cnt = min(loc.size - first, 512)
                    try sink.listFrames(MFN(rawValue: mfn.rawValue + k), count: 1)
                    do {
                        try buf.withUnsafeMutableBytes { b in
                            try walker.memory.read(MachAddr(rawValue: PageGeometry.x86.base(mfn.rawValue + k)), into: UnsafeMutableRawBufferPointer(rebasing: b[0..<(Int(cnt) * 8)]))
                        }
                        try buf.withUnsafeBufferPointer { try sink.entries(UnsafeBufferPointer(rebasing: $0[0..<Int(cnt)])) }
                    } catch let e as DumpError where e.notInDump {
                        guard let report = missing else {
                            throw TranslationError("\(loc.description): list page \(page + k) (pfns 0x\(String(first, radix: 16))–0x\(String(first + cnt - 1, radix: 16)), mfn \(MFN(rawValue: mfn.rawValue + k))): \(e)")
                        }
                        report(ListPageNotInDump(page: page + k, mfn: MFN(rawValue: mfn.rawValue + k), firstPfn: PFN(rawValue: first), pfns: cnt, reason: e.message))
                        try sink.unknown(cnt)
                    }
                }
                page += run
                if page & 0xfff < run { progress?(page, pagesTotal) }
                continue
            }
            for k in 0..<run { try sink.listFrames(MFN(rawValue: mfn.rawValue + k), count: 1) }
            if run == 1 && n == 512 && buf[0..<512].allSatisfy({ $0 == .max }) { knownInvalid.insert(mfn.rawValue) }
            try buf.withUnsafeBufferPointer { try sink.entries(UnsafeBufferPointer(rebasing: $0[0..<n])) }
            page += run
            if page & 0xfff < run { progress?(page, pagesTotal) }
        }
        progress?(pagesTotal, pagesTotal)
    }
}

// MARK: sinks

/// Feeds a note encoder, list frames included (streamed: nothing is collected).
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

/// Builds a lookup map directly (no encode/decode round trip).
public final class MapSink: P2MSink {
    public var builder = P2MMapBuilder()
    public init() {}
    public func invalid(_ count: UInt64) throws { builder.appendInvalid(count: count) }
    public func identity(_ count: UInt64) throws { builder.appendIdentity(count: count) }
    public func entries(_ e: UnsafeBufferPointer<UInt64>) throws { builder.append(entries: e) }
    public func finish() -> P2MMap { builder.finish() }
}

/// Computes the map digest and counts.
public final class DigestSink: P2MSink {
    public var digester = MapDigester()
    public init() {}
    public func invalid(_ count: UInt64) throws { digester.feedInvalid(count: count) }
    public func identity(_ count: UInt64) throws { digester.feedIdentity(count: count) }
    public func entries(_ e: UnsafeBufferPointer<UInt64>) throws { digester.feed(entries: e) }
}

/// A difference between a map and a source, at one pfn.
public struct P2MDifference: Sendable, Codable {
    public var pfn: PFN
    /// What the map says (normalised entry).
    public var expected: Hex64
    /// What the source says.
    public var found: Hex64
    public init(pfn: UInt64, expected: UInt64, found: UInt64) { self.pfn = PFN(rawValue: pfn); self.expected = Hex64(expected); self.found = Hex64(found) }
    public var text: String { "pfn \(pfn): \(P2MEntry(raw: expected.value)) vs \(P2MEntry(raw: found.value))" }
}

/// Compares a streamed table with a map, over the pfns both cover, keeping the first differences.
public final class CompareSink: P2MSink {
    public let map: P2MMap
    public private(set) var pfn: UInt64 = 0
    public private(set) var differences: [P2MDifference] = []
    public private(set) var differenceCount: UInt64 = 0
    /// Pfns actually compared (both sides say something about them).
    public private(set) var compared: UInt64 = 0
    /// When the source cannot tell identity from missing, identity-vs-INVALID counts as equal.
    public let identityBlind: Bool
    /// When the source cannot see foreign entries (Xen's M2P: the frame is another domain's),
    /// FOREIGN-vs-INVALID counts as equal.
    public let foreignBlind: Bool
    private var buf = [UInt64](repeating: 0, count: 512)
    public init(map: P2MMap, identityBlind: Bool = false, foreignBlind: Bool = false) {
        self.map = map; self.identityBlind = identityBlind; self.foreignBlind = foreignBlind
    }

    /// Whether two different entries count as equal: identity against INVALID either way round
    /// when one side cannot tell them apart (a note without IDENTITY_KNOWN says INVALID for
    /// identity pfns, Spec §4, as Xen's tables do); FOREIGN in the map against INVALID found.
    @inline(__always) private func excused(_ exp: UInt64, _ got: UInt64) -> Bool {
        if identityBlind {
            if got == .max && P2MEntry(raw: exp).kind == .identity { return true }
            if exp == .max && P2MEntry(raw: got).kind == .identity { return true }
        }
        return foreignBlind && got == .max && P2MEntry(raw: exp).kind == .foreign
    }

    @inline(__always) private func note(_ p: UInt64, _ exp: UInt64, _ got: UInt64) {
        if exp != got && !excused(exp, got) {
            differenceCount += 1
            if differences.count < 10 { differences.append(P2MDifference(pfn: p, expected: exp, found: got)) }
        }
    }

    private func covered(_ count: UInt64) -> UInt64 { pfn >= map.nrPfns ? 0 : min(count, map.nrPfns - pfn) }

    public func entries(_ got: UnsafeBufferPointer<UInt64>) throws {
        var i = 0
        let limit = Int(covered(UInt64(got.count)))
        while i < limit {
            let n = min(512, limit - i)
            let k = buf.withUnsafeMutableBufferPointer { map.entries(from: pfn, into: UnsafeMutableBufferPointer(rebasing: $0[0..<n])) }
            for j in 0..<k { note(pfn + UInt64(j), buf[j], got[i + j]) }
            pfn += UInt64(n); i += n; compared += UInt64(n)
        }
        pfn += UInt64(got.count - limit)
    }
    public func invalid(_ count: UInt64) throws { bulk(count, first: .max, step: 0) }
    public func identity(_ count: UInt64) throws { bulk(count, first: pfn | P2MEntry.identityBit, step: 1) }
    public func unknown(_ count: UInt64) throws { pfn += count }

    /// A run found in memory, compared with the map's runs segment by segment.
    private func bulk(_ count: UInt64, first: UInt64, step: UInt64) {
        let c = covered(count)
        compared += c
        map.forEachSegment(from: pfn, count: c) { start, len, mFirst, mStep, lits in
            let got0 = first &+ step &* (start - pfn)
            if lits == nil {
                if mStep == step && mFirst == got0 { return }
                // Identity against INVALID, either way round (see excused).
                if identityBlind && step == 0 && first == .max && mStep == 1 && mFirst == start | P2MEntry.identityBit { return }
                if identityBlind && step == 1 && got0 == start | P2MEntry.identityBit && mStep == 0 && mFirst == .max { return }
            }
            for i in 0..<len {
                let exp = lits.map { $0[$0.startIndex + Int(i)] } ?? (mFirst &+ mStep &* i)
                note(start + i, exp, got0 &+ step &* i)
                if differenceCount > 1_000_000 { break }
            }
        }
        pfn += count
    }
}
