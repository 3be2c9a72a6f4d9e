// A guest's p2m rebuilt from Xen's tables: every machine frame the frame table says the domain
// owns (allocated, not Xen-heap), named by the M2P entry Xen keeps for it. Read in mfn order and
// kept as runs (mfn, pfn, length) — a guest's memory comes in long contiguous chunks, so a
// 1 TiB host needs O(runs) memory, never O(frames) — then streamed in pfn order.
//
// What the M2P cannot say: identity and foreign entries (they name no frame the guest owns)
// and ballooned-out pfns; all of those read as INVALID here, so a note made from this source
// does not know identity (cross-checks are identity-blind) and says so.
import DumpIO
import Foundation
import P2MFormat

public final class XenM2PSource: P2MTableSource {
    /// `count` frames from `mfn` up, naming pfns from `pfn` up (or, `down`, from pfn + count − 1
    /// down: Xen's dom0 builder and migration leave descending stretches too).
    public struct Run: Sendable {
        public var pfn: UInt64; public var mfn: UInt64; public var count: UInt64; public var down = false
        /// The mfn of pfn `pfn + i`.
        @inline(__always) func mfn(at i: UInt64) -> UInt64 { down ? mfn + (count - 1 - i) : mfn + i }
    }
    public let host: XenHost
    public let domain: XenDomain
    public private(set) var runs: [Run] = []
    /// Owned frames whose M2P entry names no pfn (INVALID or SHARED).
    public private(set) var unnamedFrames: UInt64 = 0
    /// Frame ranges whose page_info or M2P words are not in the dump.
    public private(set) var unreadableFrames: [(first: UInt64, count: UInt64)] = []
    /// Pfns named by two frames (a damaged M2P): the first frame wins.
    public private(set) var conflicts: UInt64 = 0
    public let size: UInt64

    /// One domain's map (one pass over the tables, as for many).
    public static func rebuild(host: XenHost, domain: XenDomain) throws -> XenM2PSource {
        try rebuild(host: host, domains: [domain])[0]
    }

    /// Every given domain's map from ONE pass over the frame table and the M2P: the cost of
    /// rebuilding all guests is the cost of reading those two tables once.
    public static func rebuild(host: XenHost, domains: [XenDomain]) throws -> [XenM2PSource] {
        var index: [UInt32: Int] = [:]
        for (i, d) in domains.enumerated() { index[d.ownerPdx] = i }
        var runs = [[Run]](repeating: [], count: domains.count)
        var unnamed = [UInt64](repeating: 0, count: domains.count)
        var holes: [(UInt64, UInt64)] = []
        try host.scanFrames(missing: { f, n, _ in holes.append((f, n)) }) { first, p, m in
            guard let m else { holes.append((first, UInt64(p.count / Int(host.pageInfoSize)))); return }
            var lastOwner: UInt32 = .max, lastIndex: Int? = nil   // owners come in long stretches
            // The hot loop of a host rebuild: one masked compare rejects free, Xen-heap and
            // not-in-use frames (PGC_allocated set, PGC_xen_heap clear, PGC_state "inuse").
            let stride = Int(host.pageInfoSize), ci = Int(host.countInfoOffset), ow = Int(host.ownerOffset)
            for k in 0..<m.count {
                let c = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: k &* stride &+ ci, as: UInt64.self))
                guard XenPageInfo.isGuestFrame(c) else { continue }
                let owner = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: k &* stride &+ ow, as: UInt32.self))
                if owner != lastOwner { lastOwner = owner; lastIndex = index[owner] }
                guard let i = lastIndex else { continue }
                let pfn = UInt64(littleEndian: m[k]), mfn = first + UInt64(k)
                guard pfn < 1 << 40 else { unnamed[i] += 1; continue }
                if let last = runs[i].last, last.mfn + last.count == mfn {
                    let j = runs[i].count - 1
                    if !last.down && last.pfn + last.count == pfn { runs[i][j].count += 1; continue }
                    if (last.down || last.count == 1) && pfn &+ 1 == last.pfn {
                        runs[i][j].down = true; runs[i][j].pfn = pfn; runs[i][j].count += 1; continue
                    }
                }
                runs[i].append(Run(pfn: pfn, mfn: mfn, count: 1))
            }
        }
        return domains.indices.map { XenM2PSource(host: host, domain: domains[$0], runs: runs[$0], unnamed: unnamed[$0], holes: holes) }
    }

    private init(host: XenHost, domain: XenDomain, runs unsorted: [Run], unnamed: UInt64, holes: [(UInt64, UInt64)]) {
        self.host = host; self.domain = domain
        var runs = unsorted
        runs.sort { $0.pfn < $1.pfn }
        // Overlapping runs: a pfn named twice. Trim the later one.
        var clean: [Run] = []
        clean.reserveCapacity(runs.count)
        var conflicts: UInt64 = 0
        for var r in runs {
            if let l = clean.last, r.pfn < l.pfn + l.count {
                let over = min(r.count, l.pfn + l.count - r.pfn)
                conflicts += over
                r.pfn += over; if !r.down { r.mfn += over }; r.count -= over
                if r.count == 0 { continue }
            }
            clean.append(r)
        }
        self.runs = clean
        self.unnamedFrames = unnamed
        self.unreadableFrames = holes
        self.conflicts = conflicts
        let end = clean.last.map { $0.pfn + $0.count } ?? 0
        size = max(end, min(domain.arch?.maxPfn ?? 0, 1 << 40))
    }

    public var incomplete: [String] {
        var out: [String] = []
        if !unreadableFrames.isEmpty {
            let n = unreadableFrames.reduce(0) { $0 + $1.count }
            out.append("Xen's frame table or M2P is not in the dump for \(n) machine frames (first 0x\(String(unreadableFrames[0].first, radix: 16))+\(unreadableFrames[0].count)): a pfn backed by one of them reads INVALID")
        }
        if conflicts > 0 { out.append("\(conflicts) pfns are named by two machine frames in the M2P (a damaged M2P): the lower frame was kept") }
        return out
    }
    public var name: P2MSourceName { .xenM2P }
    public var location: String { "Xen's frame table and M2P (domain \(domain.id), \(runs.count) runs)" }
    public var coverage: P2MCoverage { P2MCoverage(entries: size, knowsIdentity: false, sparse: false, knowsForeign: false) }
    public var sourceCode: P2MSource { .xenM2P }
    public func stream(into sink: P2MSink, progress: ((UInt64, UInt64) -> Void)?) throws {
        var next: UInt64 = 0
        var buf = [UInt64](repeating: 0, count: 4096)
        for r in runs {
            if r.pfn > next { try sink.invalid(r.pfn - next) }
            var off: UInt64 = 0
            while off < r.count {
                let n = Int(min(4096, r.count - off))
                for i in 0..<n { buf[i] = r.mfn(at: off + UInt64(i)) }
                try buf.withUnsafeBufferPointer { try sink.entries(UnsafeBufferPointer(rebasing: $0[0..<n])) }
                off += UInt64(n)
            }
            next = r.pfn + r.count
        }
        if next < size { try sink.invalid(size - next) }
        progress?(size, size)
    }
}
