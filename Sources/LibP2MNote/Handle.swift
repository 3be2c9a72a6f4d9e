// One open dump behind a C handle: the reader core's session (container, symbols, resolver),
// the C strings handed out (they live as long as the handle), and a lock that serialises the
// calls made on it from several threads (libelf and the page caches are not thread-safe).
import CP2MNote
import DumpIO
import Foundation
import P2MFormat
import GuestReader
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
    let session: GuestSession
    let vmlinux: VmlinuxImage?
    /// The domain asked for at open (-1: none named).
    let domain: Int64
    private var strings: [String: UnsafeMutablePointer<CChar>] = [:]
    private var vmcoreInfoText: (text: UnsafeMutablePointer<CChar>, count: Int, origin: KernelIdentity.VMCoreInfoOrigin)?

    init(session: GuestSession, vmlinux: VmlinuxImage?, domain: Int64) {
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

    func kernel() throws -> GuestKernel { try session.kernel() }

    func p2m() throws -> (map: P2MMap, source: P2MTableSource) {
        do { return try session.p2m() } catch let e as TranslationError { throw APIError(P2MNOTE_ERR_NO_P2M, e.message) }
        catch let e where e is P2MFormatError || e is StreamError { throw APIError(P2MNOTE_ERR_FORMAT, "\(dump.path): the p2mnote note is malformed: \(e)") }
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

    /// A read in one of the C interface's spaces, through the session's reader.
    func read(_ space: p2mnote_space, _ address: UInt64, _ buffer: UnsafeMutableRawPointer, _ count: Int, _ done: inout Int) throws {
        let s: AddressSpace
        switch space {
        case P2MNOTE_KVIRT: s = .kernelVirtual
        case P2MNOTE_PPHYS: s = .pseudoPhysical
        case P2MNOTE_MACHINE: s = .machine
        default: throw APIError(P2MNOTE_ERR_ARGUMENT, "unknown address space \(space.rawValue) (0 KVIRT, 1 PPHYS, 2 MACHINE)")
        }
        try session.read(s, at: address, into: UnsafeMutableRawBufferPointer(start: buffer, count: count), done: &done)
    }
}
