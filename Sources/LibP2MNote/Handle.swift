// One open dump behind a C handle: the analyzer's session (container, symbols, resolver),
// the C strings handed out (they live as long as the handle), and a lock that serialises the
// calls made on it from several threads (libelf and the page caches are not thread-safe).
import CP2MNote
import DumpIO
import Foundation
import P2MFormat
import P2MTools
import Translation

/// An error with the status the C caller sees.
struct APIError: Error, CustomStringConvertible {
    let status: p2mnote_status
    let message: String
    init(_ s: p2mnote_status, _ m: String) { status = s; message = m }
    var description: String { message }
}

final class Handle {
    let lock = NSLock()
    let session: AnalyzerSession
    let vmlinux: VmlinuxImage?
    /// The domain asked for at open (-1: none named).
    let domain: Int64
    private var strings: [String: UnsafeMutablePointer<CChar>] = [:]
    private var pseudo: PseudoPhysicalMemory?
    private var vmcoreInfoText: (text: UnsafeMutablePointer<CChar>, count: Int, origin: KernelIdentity.VMCoreInfoOrigin)?

    init(session: AnalyzerSession, vmlinux: VmlinuxImage?, domain: Int64) {
        self.session = session
        self.vmlinux = vmlinux
        self.domain = domain
    }

    deinit {
        for p in strings.values { free(p) }
        if let v = vmcoreInfoText { free(v.text) }
    }

    var dump: DumpContainer { session.dump }

    /// A C copy of `value` kept under `key` until close (a key's value never changes).
    func keep(_ key: String, _ value: String) -> UnsafePointer<CChar>? {
        if let p = strings[key] { return UnsafePointer(p) }
        guard let p = strdup(value.replacingOccurrences(of: "\0", with: "\\0")) else { return nil }
        strings[key] = p
        return UnsafePointer(p)
    }

    var containerName: String {
        switch dump.kind {
        case .kdumpELF: return "ELF vmcore"
        case .xenDumpCore: return "xl dump-core"
        case .kdumpCompressed: return dump.layoutDescription.hasPrefix("flattened") ? "flattened" : "kdump-compressed"
        }
    }

    func kernel() throws -> GuestKernel { try session.kernel() }

    func p2m() throws -> (map: P2MMap, source: P2MTableSource) {
        do { return try session.p2m() } catch let e as TranslationError { throw APIError(P2MNOTE_ERR_NO_P2M, e.message) }
        catch let e where e is P2MFormatError || e is StreamError { throw APIError(P2MNOTE_ERR_FORMAT, "\(dump.path): the p2mnote note is malformed: \(e)") }
    }

    func pseudoPhysical() throws -> PseudoPhysicalMemory {
        if let p = pseudo { return p }
        let (m, s) = try p2m()
        let p = PseudoPhysicalMemory(map: m, machine: dump.memory, origin: s.location)
        pseudo = p
        return p
    }

    /// The VMCOREINFO text (the dump's own, completed, or a made one), made once.
    func vmcoreInfo() throws -> (text: UnsafeMutablePointer<CChar>, count: Int, origin: KernelIdentity.VMCoreInfoOrigin) {
        if let v = vmcoreInfoText { return v }
        let own = dump.vmcoreInfo
        let ownText = dump.notes.first { $0.name == "VMCOREINFO" }.map { String(decoding: $0.desc.prefix { $0 != 0 }, as: UTF8.self) }
        let (text, origin) = try KernelIdentity.vmcoreInfo(of: try kernel(), own: own, ownText: ownText)
        guard let p = strdup(text) else { throw APIError(P2MNOTE_ERR_INTERNAL, "out of memory") }
        let v = (p, text.utf8.count, origin)
        vmcoreInfoText = v
        return v
    }

    // MARK: reads, page by page, so that a failure says which page and `done` counts the rest

    func read(_ space: p2mnote_space, _ address: UInt64, _ buffer: UnsafeMutableRawPointer, _ count: Int,
              _ done: inout Int) throws {
        let memory = dump.memory
        let path = dump.path
        // Each space is a translation to machine addresses; MACHINE is the identity.
        let toMachine: (UInt64) throws -> MachAddr
        switch space {
        case P2MNOTE_KVIRT:
            let tables = try kernel().pageTables
            toMachine = { a in
                do { return try tables.translate(KVAddr(a)) } catch {
                    throw APIError(P2MNOTE_ERR_UNMAPPED, "\(path): kernel virtual address 0x\(String(a, radix: 16)) does not translate: \(error)")
                }
            }
        case P2MNOTE_PPHYS:
            let pp = try pseudoPhysical()
            toMachine = { a in
                do {
                    let mfn = try pp.frame(of: PFN(a >> 12))
                    guard let base = mfn.address() else { throw TranslationError("mfn \(mfn) is out of range", kind: .unmapped) }
                    return MachAddr(base.rawValue | (a & 0xfff))
                } catch let e as TranslationError {
                    throw APIError(e.kind == .beyondTable ? P2MNOTE_ERR_RANGE : P2MNOTE_ERR_UNMAPPED,
                                   "\(path): pseudo-physical address 0x\(String(a, radix: 16)): \(e.message)")
                }
            }
        case P2MNOTE_MACHINE:
            toMachine = { MachAddr($0) }
        default:
            throw APIError(P2MNOTE_ERR_ARGUMENT, "unknown address space \(space.rawValue) (0 KVIRT, 1 PPHYS, 2 MACHINE)")
        }
        while done < count {
            let (a, over) = address.addingReportingOverflow(UInt64(done))
            guard !over else { throw APIError(P2MNOTE_ERR_RANGE, "read of \(count) bytes at 0x\(String(address, radix: 16)) runs past 2^64") }
            let n = min(4096 - Int(a & 0xfff), count - done)
            let dst = UnsafeMutableRawBufferPointer(start: buffer + done, count: n)
            let machine = try toMachine(a)
            do { try memory.read(machine, into: dst) } catch {
                let what = space == P2MNOTE_MACHINE ? "" : " (\(space == P2MNOTE_KVIRT ? "kernel virtual" : "pseudo-physical") 0x\(String(a, radix: 16)))"
                throw APIError(P2MNOTE_ERR_NOT_IN_DUMP, "machine address \(machine)\(what): \(error)")
            }
            done += n
        }
    }
}
