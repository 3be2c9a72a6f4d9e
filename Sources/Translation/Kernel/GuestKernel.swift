// A PV guest kernel inside a dump: its page-table root (and where it was found), its symbols,
// and what its p2m code left in memory (arch/x86/xen/p2m.c): the linear list and the shared
// pages. Everything is read through the machine-only walk.
import DumpIO
import Foundation
import P2MFormat

public struct TranslationError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, for callers that map errors to codes (libp2mnote's status).
    public enum Kind: Sendable { case other, noRoot, noSymbol, mismatch, unmapped, beyondTable, noP2M, noDomain, interrupted, noLayout }
    public let message: String
    public let kind: Kind
    public init(_ m: String, kind: Kind = .other) { message = m; self.kind = kind }
    public var description: String { message }
}

/// The kernel's shared p2m pages, by machine frame.
public struct SharedP2MFrames: Sendable, Equatable {
    public var missing: MFN?
    public var identity: MFN?
    public var missingPte: MFN?
    public var identityPte: MFN?
    /// p2m_mid_missing_mfn: the frame-list tree's shared mid page (every slot names p2m_missing).
    public var midMissing: MFN?
    public init(missing: MFN? = nil, identity: MFN? = nil, missingPte: MFN? = nil, identityPte: MFN? = nil, midMissing: MFN? = nil) {
        self.missing = missing; self.identity = identity; self.missingPte = missingPte; self.identityPte = identityPte; self.midMissing = midMissing
    }
    public var identityKnown: Bool { identity != nil }
}

public final class GuestKernel {
    var btfResult: Result<BTF, Error>?
    public let dump: DumpContainer
    public let symbols: SymbolTable
    public let pageTables: KernelPageTables
    public var root: MachAddr { pageTables.root }
    public var walker: PageTableWalker { pageTables.walker }
    public let rootSource: String

    /// Find the root page table: `cr3` if given, else each root the dump records, keeping the
    /// first under which the kernel's own symbols translate.
    /// `cr3`: a root to use as it is (given with --cr3, or a domain's published root, named by
    /// `cr3Source`); else the roots the dump records, the first that maps the symbols.
    public init(dump: DumpContainer, symbols: SymbolTable, walker: PageTableWalker, cr3: MachAddr? = nil, cr3Source: String = "--cr3") throws {
        self.dump = dump
        self.symbols = symbols
        var candidates: [RecordedRoot] = []
        if let c = cr3 { candidates.append(RecordedRoot(cr3: c.rawValue, source: cr3Source)) }
        candidates += try dump.recordedRoots()
        guard !candidates.isEmpty else {
            throw TranslationError("\(dump.path): no page-table root: the dump has no Xen crash-regs note (and no vcpu context); pass --cr3 with the machine address of the guest's top page table", kind: .noRoot)
        }
        let probe = symbols.address("xen_p2m_addr") ?? symbols.address("linux_banner") ?? symbols.address("init_top_pgt") ?? symbols.address("_stext")
        var chosen: RecordedRoot? = nil
        if cr3 != nil { chosen = candidates[0] }
        var damaged: Error? = nil
        if cr3 != nil { chosen = candidates[0] }
        else if let p = probe {
            chosen = candidates.first { c in
                do { _ = try walker.translate(p.rawValue, root: MachAddr(rawValue: c.cr3 & PTE.addressMask), form: .x86_64); return true }
                catch is WalkError { return false }
                catch { if damaged == nil { damaged = error }; return false }   // the dump itself, not the root
            }
        } else { chosen = candidates[0] }
        guard let c = chosen else {
            if let e = damaged {
                throw TranslationError("\(dump.path): the kernel's page tables cannot be read: \(e)", kind: .other)
            }
            throw TranslationError("\(dump.path): none of the recorded cr3 values (\(candidates.map { "0x" + String($0.cr3, radix: 16) + " from " + $0.source }.joined(separator: ", "))) maps the kernel's symbols (are the System.map or vmlinux this dump's kernel's?); pass --cr3", kind: .mismatch)
        }
        pageTables = KernelPageTables(walker: walker, root: MachAddr(rawValue: c.cr3 & PTE.addressMask))
        rootSource = c.source
    }

    public func symbol(_ name: String) throws -> KVAddr {
        guard let a = symbols.address(name) else {
            throw TranslationError("\(dump.path): symbol \(name) not found: pass --system-map or --vmlinux (the dump's VMCOREINFO, if any, does not list it)", kind: .noSymbol)
        }
        return a
    }

    public func readU64(symbol name: String) throws -> UInt64 { try pageTables.readU64(try symbol(name)) }

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
        do { value = try pageTables.readU64(a) } catch {
            throw TranslationError("cannot read the pointer variable \(name) at \(a): \(error)")
        }
        guard value != 0 else { throw TranslationError("\(name) at \(a) is NULL: the kernel had not set up its p2m list") }
        guard PageGeometry.x86.offset(value) == 0 else {
            throw TranslationError("\(name) at \(a) holds 0x\(String(value, radix: 16)), not a page address (a System.map of another kernel?)")
        }
        do { return try pageTables.translate(KVAddr(rawValue: value)).mfn() } catch {
            throw TranslationError("\(name) = 0x\(String(value, radix: 16)) does not translate: \(error)")
        }
    }

    /// The shared p2m pages and page tables. The missing and identity pages are distinct
    /// allocations on every kernel, so equal frames mean the dump or the symbols are wrong.
    public func sharedFrames() throws -> SharedP2MFrames {
        let s = SharedP2MFrames(missing: try frame(pointedToBy: "p2m_missing"), identity: try frame(pointedToBy: "p2m_identity"),
                                missingPte: try frame(pointedToBy: "p2m_missing_pte"), identityPte: try frame(pointedToBy: "p2m_identity_pte"),
                                midMissing: try frame(pointedToBy: "p2m_mid_missing_mfn"))
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
        let region = KernelRegion.of(KVAddr(rawValue: addr))
        guard region == .vmalloc || region == .directMap || region == .kernelText else {
            throw TranslationError("xen_p2m_addr = 0x\(String(addr, radix: 16)) is not a kernel address (wrong System.map or cr3?)")
        }
        guard size > 0, size <= 1 << 40 else { throw TranslationError("xen_p2m_size = \(size) is implausible") }
        guard addr.addingReportingOverflow(size * 8).overflow == false else { throw TranslationError("the list at 0x\(String(addr, radix: 16)) of \(size) entries wraps past 2^64") }
        return (KVAddr(rawValue: addr), size)
    }

    /// The kernel release from init_uts_ns (struct new_utsname: release at 130).
    public func release() -> String? {
        guard let uts = symbols.address("init_uts_ns"), let b = try? pageTables.readBytes(KVAddr(rawValue: uts.rawValue &+ 130), count: 65) else { return nil }
        return String(decoding: b.prefix { $0 != 0 }, as: UTF8.self)
    }
}
