// The session's commands that judge the dump: check (every note against the Spec and the dump's own
// tables) and domains (a crashed host's guests, from Xen's tables).
import DumpIO
import Foundation
import P2MFormat
import Translation

// MARK: check

enum Check {
    static let spec = CommandSpec("check", abstract: "Validate every p2mnote note against the Spec, then against each of the dump's own tables over what both cover.",
                                  discussion: "A crashed host's dump carries one note per guest: each is checked against that guest's own tables (--domain: that guest's only). Exit 2 when any note fails.") { s, _ in
        try execute(in: s)
    }
    struct Result: TextResult {
        /// The domain the note records (nil: none).
        var domain: UInt32?
        var format: String
        var rule: Int?
        var error: String?
        var version: String?
        var pfns: UInt64?
        var records: UInt64?
        var crossCheck: CrossCheckReport?
        var ok: Bool
        var text: String {
            var t: String
            if let e = error { t = "format:      INVALID (rule \(rule.map(String.init) ?? "?")): \(e)\n" }
            else { t = "format:      OK (Spec v\(version ?? "?"), every decoder rule holds): \(pfns ?? 0) pfns, \(records ?? 0) records\n" }
            if let c = crossCheck {
                t += CrossCheckText.render(c)
                if !c.compared { t += "compared:    nothing: no other copy of the table is readable in this dump\n" }
            }
            return t + (ok ? "result:      OK\n" : "result:      MISMATCH\n")
        }
        var exitCode: Int32 { ok ? 0 : 2 }
    }
    /// Several notes (a host dump's, no --domain): each one's result, under its domain.
    struct Results: TextResult {
        var notes: [Result]
        var ok: Bool
        var text: String {
            notes.map { "domain \($0.domain.map { $0 == .max ? "(none)" : String($0) } ?? "?"):\n" + $0.text.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n" }.joined()
                + "result:      \(ok ? "OK" : "MISMATCH") (\(notes.filter(\.ok).count) of \(notes.count) notes agree)\n"
        }
        var exitCode: Int32 { ok ? 0 : 2 }
    }

    static func execute(in s: GuestSession) throws -> CommandOutput {
        if s.options.guest.domain == nil, s.dump.p2mNotes.count > 1 {
            var results: [Result] = []
            let ids = s.dump.p2mNotes.map { P2MNote.domainID(ofElfNoteDescriptor: $0.desc) }
            for n in s.dump.p2mNotes {
                let d = P2MNote.domainID(ofElfNoteDescriptor: n.desc)
                if ids.filter({ $0 == d }).count > 1 {
                    results.append(Result(domain: d, format: "invalid", error: "note at 0x\(String(n.fileOffset, radix: 16)): another note records the same domain; a dump carries at most one per domain", ok: false))
                    continue
                }
                var ro = s.resolver.options
                ro.domain = d <= UInt32(UInt16.max) ? UInt16(d) : nil
                // --cr3 and --p2m-mfn name the session's own guest's tables, not the others'.
                if d != 0 && d != .max { ro.cr3 = nil; ro.p2mMFN = nil }
                // The System.map or vmlinux given is the session's own guest's (dom0's here); the
                // other guests are checked from Xen's tables and their own shared_info only.
                let own = d == 0 || d == .max
                results.append(check(n.desc, domain: d, resolver: P2MResolver(dump: s.dump, symbols: own ? s.symbols : SymbolTable(), options: ro)))
            }
            return try s.output("check", Results(notes: results, ok: results.allSatisfy(\.ok)))
        }
        guard let n = try s.dump.p2mNote(domain: s.options.guest.domain.map(UInt32.init)) else {
            throw SessionError("\(s.dump.path): no p2mnote note to check\(s.options.guest.domain.map { " for domain \($0)" } ?? "")")
        }
        return try s.output("check", check(n.desc, domain: P2MNote.domainID(ofElfNoteDescriptor: n.desc), resolver: s.resolver))
    }

    private static func check(_ desc: [UInt8], domain: UInt32, resolver: P2MResolver) -> Result {
        let dec: DecodedP2MNote
        do { dec = try P2MNote.decode(descriptor: desc) } catch let e as P2MFormatError {
            return Result(domain: domain, format: "invalid", rule: e.rule, error: e.description, ok: false)
        } catch {
            return Result(domain: domain, format: "invalid", error: "\(error)", ok: false)
        }
        let c = resolver.crossCheck(dec.map, identityKnown: dec.header.identityKnown)
        return Result(domain: domain, format: "ok", version: "\(dec.header.versionMajor).\(dec.header.versionMinor)", pfns: dec.header.nrPfns,
                      records: dec.header.nrRecords, crossCheck: c, ok: c.agrees)
    }
}

// MARK: domains

struct Domains {
    static let spec = CommandSpec("domains", abstract: "Every domain of a crashed Xen host's dump, from Xen's own tables: id, pages, PV or not, the p2m sources each has.",
                                  discussion: "Needs the dump's VMCOREINFO_XEN and Xen crash info notes (no Xen debug symbols). fll_mfn is what `crash --p2m_mfn` takes for that guest. Page counts come from struct domain where Xen's build is recognised (each checked against the frame table), else from a pass over the whole frame table; --scan forces that pass, which also counts frames whose owner is in no domain list.",
                                  parameters: [.flag("scan", long: "scan", "Count every frame's owner in the frame table instead of reading struct domain.")]) { s, w in
        try Domains(scan: w.flag("scan")).execute(in: s)
    }
    let scan: Bool
    struct Row: Encodable {
        var id: UInt16
        var system: Bool
        var address: Hex64
        var pages: UInt64
        var xenHeapPages: UInt64
        var pv: Bool
        var sharedInfoMfn: MFN?
        var maxPfn: Hex64?
        var fllMfn: MFN?
        var p2mCr3: MachAddr?
        var p2mVaddr: KVAddr?
        var sources: [String]
        var note: Bool
    }
    struct Result: TextResult {
        var xen: String
        var maxPage: Hex64
        var method: String
        var pdx: XenPDX
        var xenSymbols: String?
        var orphanPages: UInt64
        var domains: [Row]
        var text: String {
            var t = "xen:        \(xen), max_page \(maxPage); counts from \(method)\n"
            t += "pdx:        " + (pdx.holeBits == 0 ? "no compression (pdx = mfn)" : "address bits \(pdx.bottomBits + 12)–\(pdx.bottomBits + pdx.holeBits + 11) squeezed out (pfn bits \(pdx.bottomBits)–\(pdx.bottomBits + pdx.holeBits - 1))") + ", from Xen's direct map\n"
            if let x = xenSymbols { t += "xen-syms:   \(x)\n" }
            if orphanPages > 0 { t += "warning:    \(orphanPages) allocated frames name an owner that is in no domain list (a dying domain, or a damaged frame table)\n" }
            t += "  ID  PAGES      PV  MAX_PFN    FLL_MFN    P2M_CR3        SOURCES\n"
            for d in domains {
                let id = d.system ? (d.id == XenLayout.domidXen ? "xen" : d.id == XenLayout.domidIO ? "io" : String(d.id)) : String(d.id)
                func col(_ s: String, _ n: Int) -> String { s.padding(toLength: max(n, s.count), withPad: " ", startingAt: 0) }
                t += col(id.count < 4 ? String(repeating: " ", count: 4 - id.count) + id : id, 4) + "  " + col(String(d.pages), 10) + " "
                    + col(d.system ? "-" : d.pv ? "yes" : "no", 3) + " " + col(d.maxPfn?.description ?? "-", 10) + " " + col(d.fllMfn?.description ?? "-", 10) + " "
                    + col(d.p2mCr3?.description ?? "-", 14) + " " + (d.system ? "(system domain)" : d.sources.joined(separator: ", ") + (d.note ? "; note in dump" : "")) + "\n"
            }
            return t
        }
    }
    func execute(in s: GuestSession) throws -> CommandOutput {
        let host = try s.resolver.host()
        let notes = Set(s.dump.p2mNotes.compactMap { try? P2MNote.decode(descriptor: $0.desc).header.domainID })
        var rows: [Row] = []
        for d in try host.domains(scan: scan) {
            let a = d.arch
            var src: [String] = []
            if !d.system { src.append(P2MSourceName.xenM2P.rawValue) }
            if let a, a.p2mVaddr != 0, a.p2mCr3 != 0 { src.append(P2MSourceName.linearList.rawValue) }
            if let a, a.fllMfn != 0 { src.append(P2MSourceName.frameTree.rawValue) }
            rows.append(Row(id: d.id, system: d.system, address: Hex64(d.address), pages: d.pages, xenHeapPages: d.xenHeapPages, pv: d.looksPV,
                            sharedInfoMfn: d.sharedInfoMfn, maxPfn: a.map { Hex64($0.maxPfn) }, fllMfn: a.flatMap { $0.fllMfn == 0 ? nil : MFN(rawValue: $0.fllMfn) },
                            p2mCr3: a.flatMap { $0.p2mCr3 == 0 ? nil : MachAddr(rawValue: $0.p2mCr3) }, p2mVaddr: a.flatMap { $0.p2mVaddr == 0 ? nil : KVAddr(rawValue: $0.p2mVaddr) },
                            sources: src, note: !d.system && notes.contains(UInt32(d.id))))
        }
        let ci = s.dump.crashInfo
        return try s.output("domains", Result(xen: ci.map { "Xen \($0.major).\($0.minor)" } ?? "Xen", maxPage: Hex64(host.maxPage), method: host.domainsMethod, pdx: host.pdx, xenSymbols: host.symbolCheck, orphanPages: host.orphanPages, domains: rows))
    }
}
