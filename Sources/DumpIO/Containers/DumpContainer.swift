// What every dump container gives the layers above: machine memory as segments, the ELF notes
// it carries, the page-table roots it records, what it is called, and, as capabilities (values
// that are nil where a container has none), what only some containers record. The ELF vmcore,
// the xl dump-core and makedumpfile's kdump-compressed file (plain or flattened) are one type
// each. Nothing above this file switches on the container or downcasts it.
import Foundation
import P2MFormat

public enum DumpKind: String, Sendable, Codable {
    case kdumpELF = "ELF kdump vmcore"
    case xenDumpCore = "xl dump-core"
    case kdumpCompressed = "kdump-compressed (makedumpfile)"
}

/// A page-table root a dump records (Xen's crash regs, an xl dump's vcpu context, …).
public struct RecordedRoot: Sendable {
    public var cr3: UInt64
    public var source: String
    public init(cr3: UInt64, source: String) { self.cr3 = cr3; self.source = source }
}

public protocol DumpContainer: AnyObject, NoteCarrier {
    var path: String { get }
    var kind: DumpKind { get }
    var fileSize: UInt64 { get }
    var notes: [ElfNote] { get }
    var memory: MachineMemoryMap { get }
    /// Page-table roots recorded in the dump, in the order they should be tried.
    func recordedRoots() throws -> [RecordedRoot]
    /// One line for `info`: "3 PT_LOAD segments", "5 sections".
    var layoutDescription: String { get }
    /// The container's short name, as the C library reports it: "ELF vmcore", "xl dump-core",
    /// "kdump-compressed" or "flattened".
    var containerName: String { get }
    /// What a saved guest's file records of its domain (an xl dump-core's .xen_p2m and
    /// .xen_shared_info); nil for a kernel dump.
    var guestRecord: GuestRecord? { get }
}

extension DumpContainer {
    public var guestRecord: GuestRecord? { nil }
}

/// A saved guest's own records of its domain (libxc's dump-core sections).
public protocol GuestRecord: AnyObject {
    var path: String { get }
    /// The (pfn, mfn) pair of every page the file holds, in file order.
    var pairs: [(pfn: UInt64, mfn: UInt64)] { get }
    /// The domain's shared_info arch fields (nil: the file has no shared info).
    func sharedInfoArch() throws -> (maxPfn: UInt64, fll: UInt64, p2mCR3: UInt64, p2mVAddr: UInt64)?
    /// Each vCPU's vcpu_guest_context as the file holds it (.xen_prstatus), in file order.
    func vcpuContexts() throws -> [[UInt8]]
}

/// Notes every container interprets the same way.
public protocol NoteCarrier {
    var path: String { get }
    var notes: [ElfNote] { get }
}

extension DumpFile: NoteCarrier {}

extension NoteCarrier {
    public var p2mNotes: [ElfNote] { notes.filter { $0.name == P2MNote.ownerName && $0.type == P2MNote.noteType } }

    /// The p2mnote note of `domain` (Spec 1.1: one per domain id, a host dump carries one per
    /// guest), or nil. nil domain: the only note, or, among several, domain 0's (the dump's own
    /// guest on a dom0 kdump). Two notes for one domain id are an error, whichever is asked for.
    public func p2mNote(domain: UInt32? = nil) throws -> ElfNote? {
        let n = p2mNotes
        var seen: [UInt32: ElfNote] = [:]
        for x in n {
            let d = P2MNote.domainID(ofElfNoteDescriptor: x.desc)
            if let first = seen[d] {
                throw DumpError(path, offset: x.fileOffset, "two p2mnote notes for domain \(d == .max ? "(unrecorded)" : String(d)) (at 0x\(String(first.fileOffset, radix: 16)) and here); a dump carries at most one per domain")
            }
            seen[d] = x
        }
        if let d = domain { return seen[d] }
        if n.count <= 1 { return n.first }
        if let d0 = seen[0] { return d0 }
        throw DumpError(path, "\(n.count) p2mnote notes (domains \(seen.keys.sorted().map { $0 == .max ? "unrecorded" : String($0) }.joined(separator: ", "))): say which with --domain")
    }

    public var crashInfo: XenCrashInfo? { notes.first { $0.name == "Xen" && $0.type == 0x100_0001 }.flatMap { XenCrashInfo($0.desc) } }
    public var crashRegs: [XenCrashRegs] { notes.filter { $0.name == "Xen" && $0.type == 0x100_0002 }.compactMap { XenCrashRegs($0.desc) } }
    public var vmcoreInfo: VMCoreInfo? { notes.first { $0.name == "VMCOREINFO" }.map { VMCoreInfo($0.desc) } }
    public var vmcoreInfoXen: VMCoreInfo? { notes.first { $0.name == "VMCOREINFO_XEN" }.map { VMCoreInfo($0.desc) } }

    /// Xen's per-CPU crash regs as page-table roots; CPU 0 first.
    public var crashRegRoots: [RecordedRoot] {
        crashRegs.enumerated().map { RecordedRoot(cr3: $0.element.cr3, source: "Xen crash regs of CPU \($0.offset)") }
    }
}

/// Open any dump this toolkit reads. The first bytes decide; a file that is no dump gets a
/// message saying what it looks like instead, never a guess.
public func openDump(path: String) throws -> DumpContainer {
    let f = try OpenFile(path: path)
    let head = try f.read(offset: 0, count: Int(min(f.size, 64)))
    switch DumpSniffer.identify(head) {
    case .elf:
        let d = try DumpFile.open(file: f)
        switch d.kind {
        case .kdumpELF: return try ELFVmcore(d)
        case .xenDumpCore: return try XLDumpCore(d)
        case .kdumpCompressed: throw DumpError(path, "internal: an ELF file read as kdump-compressed")
        }
    case .kdumpCompressed(let sig) where sig == "KDUMP   ":
        return try KdumpCompressed(file: f)
    case .flattened:
        let flat = try FlattenedFile(f)
        let inner = try flat.read(offset: 0, count: Int(min(flat.size, 64)))
        switch DumpSniffer.identify(inner) {
        case .kdumpCompressed(let sig) where sig == "KDUMP   ":
            return try KdumpCompressed(file: flat, container: "flattened kdump-compressed (\(flat.recordCount) records)", flattened: true)
        case let other:
            throw DumpError(path, "a flattened file holding \(other.description): only flattened kdump-compressed files are read; `makedumpfile -R` restores it")
        }
    case let other:
        throw DumpError(path, offset: 0, "not a dump this version reads: found \(other.description)")
    }
}

/// What a file's first bytes say it is.
public enum DumpSniffer {
    public enum Finding: Equatable, CustomStringConvertible {
        case elf
        case kdumpCompressed(String)
        case flattened
        case p2mNote
        case compressed(String)
        case empty
        case unknown([UInt8])
        public var description: String {
            switch self {
            case .elf: return "an ELF file"
            case .kdumpCompressed(let sig): return "a diskdump file (signature \"\(sig)\"), which this version does not read (makedumpfile's \"KDUMP   \" files it does)"
            case .flattened: return "a makedumpfile flattened file (-F)"
            case .p2mNote: return "a p2mnote note file (made by p2m-emit), not a dump"
            case .compressed(let w): return "a \(w)-compressed file; decompress it first"
            case .empty: return "an empty file"
            case .unknown(let b): return "the bytes \(b.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")) (no known dump magic)"
            }
        }
    }

    public static func identify(_ b: [UInt8]) -> Finding {
        if b.isEmpty { return .empty }
        if b.starts(with: [0x7f, 0x45, 0x4c, 0x46]) { return .elf }
        if b.starts(with: Array("KDUMP   ".utf8)) { return .kdumpCompressed("KDUMP   ") }
        if b.starts(with: Array("DISKDUMP".utf8)) { return .kdumpCompressed("DISKDUMP") }
        if b.starts(with: Array("makedumpfile".utf8)) { return .flattened }
        if b.count >= 24, b[0] == 11, b[1] == 0, b[2] == 0, b[3] == 0, b[8...11].elementsEqual([0x4e, 0x4d, 0x32, 0x50]),
           b[12..<22].elementsEqual(Array("P2MNOTE-PV".utf8)) { return .p2mNote }
        if b.starts(with: [0x1f, 0x8b]) { return .compressed("gzip") }
        if b.starts(with: [0x28, 0xb5, 0x2f, 0xfd]) { return .compressed("zstd") }
        if b.starts(with: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) { return .compressed("xz") }
        if b.starts(with: [0x04, 0x22, 0x4d, 0x18]) { return .compressed("lz4") }
        if b.starts(with: [0x42, 0x5a, 0x68]) { return .compressed("bzip2") }
        return .unknown(b)
    }
}
