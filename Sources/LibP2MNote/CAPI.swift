// libp2mnote's C entry points (Sources/CP2MNote/include/p2mnote.h; Spec/libp2mnote.md).
//
// Every entry point checks its pointers, finds the handle in the registry of open handles (a
// closed or made-up pointer is an error, not a crash), takes the handle's lock, and turns
// every thrown error into a status plus a thread-local message. No Swift type crosses the
// boundary: handles are opaque pointers, strings are C strings the handle owns.
import CP2MNote
import DumpIO
import Foundation
import P2MFormat
import GuestReader
import Translation

// MARK: the thread-local message of the last failure

private let lastErrorKey: pthread_key_t = {
    var k = pthread_key_t()
    pthread_key_create(&k) { free($0) }
    return k
}()

private let emptyCString: UnsafeMutablePointer<CChar> = {
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
    p.pointee = 0
    return p
}()

private let versionCString: UnsafeMutablePointer<CChar> = {
    let s = "\(p2mnoteVersion.replacingOccurrences(of: ")", with: ", API \(P2MNOTE_API_VERSION))"))"
    let bytes = Array(s.utf8CString)
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    p.initialize(from: bytes, count: bytes.count)
    return p
}()

@discardableResult
private func fail(_ s: p2mnote_status, _ message: String) -> p2mnote_status {
    let new = strdup(message.replacingOccurrences(of: "\0", with: "\\0"))
    let old = pthread_getspecific(lastErrorKey)
    pthread_setspecific(lastErrorKey, new)
    free(old)
    return s
}

/// The status for an error thrown below, `fallback` when its type says nothing more.
private func status(of error: Error, fallback: p2mnote_status) -> p2mnote_status {
    switch error {
    case let e as APIError: return e.status
    case let e as TranslationError:
        switch e.kind {
        case .noSymbol: return P2MNOTE_ERR_NO_SYMBOL
        case .mismatch: return P2MNOTE_ERR_MISMATCH
        case .unmapped: return P2MNOTE_ERR_UNMAPPED
        case .beyondTable: return P2MNOTE_ERR_RANGE
        case .noP2M: return P2MNOTE_ERR_NO_P2M
        case .noRoot: return P2MNOTE_ERR_FORMAT
        case .noDomain: return P2MNOTE_ERR_NO_DOMAIN
        case .other, .interrupted, .noLayout: return fallback
        }
    case let e as ReadError:
        switch e.kind {
        case .unmapped: return P2MNOTE_ERR_UNMAPPED
        case .beyondP2M, .pastEnd: return P2MNOTE_ERR_RANGE
        case .notInDump: return P2MNOTE_ERR_NOT_IN_DUMP
        }
    case let e as DumpError where e.cannotOpen: return P2MNOTE_ERR_IO
    case is WalkError: return P2MNOTE_ERR_UNMAPPED
    case is P2MFormatError, is StreamError: return P2MNOTE_ERR_FORMAT
    default: return fallback
    }
}

// MARK: the registry of open handles

private let registryLock = NSLock()
private var liveHandles: [UInt: Handle] = [:]

/// Run `body` on the open handle `h` under its lock; errors become statuses.
private func withHandle(_ h: OpaquePointer?, fallback: p2mnote_status = P2MNOTE_ERR_FORMAT,
                        _ body: (Handle) throws -> Void) -> p2mnote_status {
    guard let h else { return fail(P2MNOTE_ERR_ARGUMENT, "the handle is NULL") }
    registryLock.lock()
    let handle = liveHandles[UInt(bitPattern: h)]
    registryLock.unlock()
    guard let handle else { return fail(P2MNOTE_ERR_ARGUMENT, "0x\(String(UInt(bitPattern: h), radix: 16)) is not an open p2mnote handle (closed already?)") }
    handle.lock.lock()
    defer { handle.lock.unlock() }
    do { try body(handle); return P2MNOTE_OK } catch {
        return fail(status(of: error, fallback: fallback), "\(error)")
    }
}

private func argument(_ what: String) -> APIError { APIError(P2MNOTE_ERR_ARGUMENT, what) }

private func string(_ p: UnsafePointer<CChar>?, _ what: String) throws -> String {
    guard let p else { throw argument("\(what) is NULL") }
    return String(cString: p)
}

/// Copy a caller's struct that starts with `uint32_t struct_size` into a zeroed local of our
/// size: an older caller's shorter struct leaves the new fields zero, a newer caller's longer
/// one has its extra fields ignored.
private func copyIn<T>(_ p: UnsafeRawPointer, as: T.Type, zero: T) throws -> T {
    let declared = Int(p.load(as: UInt32.self))
    guard declared >= 8 else { throw argument("struct_size \(declared) is too small (set it to sizeof the struct)") }
    var v = zero
    withUnsafeMutableBytes(of: &v) { dst in dst.copyMemory(from: UnsafeRawBufferPointer(start: p, count: min(declared, dst.count))) }
    return v
}

private func copyOut<T>(_ v: T, to p: UnsafeMutableRawPointer) {
    let declared = Int(p.load(as: UInt32.self))
    withUnsafeBytes(of: v) { src in p.copyMemory(from: src.baseAddress!, byteCount: min(declared, src.count)) }
    p.storeBytes(of: UInt32(declared), as: UInt32.self)   // struct_size stays the caller's
}

// MARK: entry points

@_cdecl("p2mnote_version")
public func p2mnote_version() -> UnsafePointer<CChar> { UnsafePointer(versionCString) }

@_cdecl("p2mnote_last_error")
public func p2mnote_last_error() -> UnsafePointer<CChar> {
    if let p = pthread_getspecific(lastErrorKey) { return UnsafePointer(p.assumingMemoryBound(to: CChar.self)) }
    return UnsafePointer(emptyCString)
}

@_cdecl("p2mnote_open")
public func p2mnote_open(_ path: UnsafePointer<CChar>?, _ opts: UnsafePointer<p2mnote_open_options>?,
                         _ out: UnsafeMutablePointer<OpaquePointer?>?) -> p2mnote_status {
    guard let out else { return fail(P2MNOTE_ERR_ARGUMENT, "out (where the handle goes) is NULL") }
    guard let path else { return fail(P2MNOTE_ERR_ARGUMENT, "the dump path is NULL") }
    let p = String(cString: path)
    var o = p2mnote_open_options()
    if let opts {
        do { o = try copyIn(UnsafeRawPointer(opts), as: p2mnote_open_options.self, zero: p2mnote_open_options()) } catch {
            return fail(P2MNOTE_ERR_ARGUMENT, "p2mnote_open options: \(error)")
        }
    }
    let known = UInt32(P2MNOTE_OPEN_CR3 | P2MNOTE_OPEN_P2M_MFN | P2MNOTE_OPEN_DOMAIN | P2MNOTE_OPEN_NO_NOTE)
    guard o.flags & ~known == 0 else {
        return fail(P2MNOTE_ERR_ARGUMENT, "unknown open flags 0x\(String(o.flags & ~known, radix: 16))")
    }
    var a = GuestOptions(dump: p)
    a.guest.systemMap = o.system_map.map { String(cString: $0) }
    a.guest.vmlinux = o.vmlinux.map { String(cString: $0) }
    if o.flags & UInt32(P2MNOTE_OPEN_CR3) != 0 { a.guest.cr3 = MachAddr(rawValue: o.cr3) }
    if o.flags & UInt32(P2MNOTE_OPEN_P2M_MFN) != 0 { a.guest.p2mMFN = MFN(rawValue: o.p2m_mfn) }
    if o.flags & UInt32(P2MNOTE_OPEN_NO_NOTE) != 0 { a.guest.useNote = false }
    let wantsDomain = o.flags & UInt32(P2MNOTE_OPEN_DOMAIN) != 0
    do {
        // The dump is opened once: "cannot be read" (P2MNOTE_ERR_IO) and "is not a dump" are
        // told apart by the error's kind.
        let dump: DumpContainer
        do { dump = try openDump(path: p) } catch let e as DumpError where e.cannotOpen { throw APIError(P2MNOTE_ERR_IO, "\(e)") }
        if wantsDomain {
            if dump.vmcoreInfoXen != nil {
                // A crashed host's dump: any of its domains, found in Xen's own tables.
                guard let d = UInt16(exactly: o.domain) else { throw APIError(P2MNOTE_ERR_NO_DOMAIN, "\(p): domain \(o.domain) is not a Xen domain id (0-65535)") }
                a.guest.domain = d
            } else {
                // Any other dump holds one guest, which may be named: domain 0 of a dom0 kdump.
                let own: Int64? = dump.guestRecord != nil ? nil : 0
                guard o.domain == own else {
                    throw APIError(P2MNOTE_ERR_NO_DOMAIN, "\(p): domain \(o.domain): this \(dump.kind.rawValue) holds one guest's memory\(own.map { " (domain \($0))" } ?? ""), not a Xen host's with several domains")
                }
            }
        }
        for (file, what) in [(a.guest.systemMap, "the System.map"), (a.guest.vmlinux, "the vmlinux")] {
            if let f = file, access(f, R_OK) != 0 { throw APIError(P2MNOTE_ERR_IO, "\(what): \(f): cannot open: \(String(cString: strerror(errno)))") }
        }
        let session = try GuestSession(dump: dump, options: a)
        var image: VmlinuxImage? = nil
        if a.guest.vmlinux != nil {
            image = try session.vmlinuxImage()
            // With a vmlinux the caller wants this kernel: the session's kernel() refuses it
            // unless its symbols find the root and its build ID (or banner) is the dump's.
            _ = try session.kernel()
        }
        let h = Handle(session: session, vmlinux: image, domain: wantsDomain ? o.domain : -1)
        let key = UInt(bitPattern: Unmanaged.passUnretained(h).toOpaque())
        registryLock.lock()
        liveHandles[key] = h
        registryLock.unlock()
        out.pointee = OpaquePointer(bitPattern: key)
        return P2MNOTE_OK
    } catch {
        return fail(status(of: error, fallback: P2MNOTE_ERR_FORMAT), "\(error)")
    }
}

@_cdecl("p2mnote_close")
public func p2mnote_close(_ h: OpaquePointer?) {
    guard let h else { return }
    registryLock.lock()
    let handle = liveHandles.removeValue(forKey: UInt(bitPattern: h))
    registryLock.unlock()
    // A call still running on another thread holds its own reference; the handle goes when
    // the last one ends.
    if let handle { handle.lock.lock(); handle.lock.unlock() }
}

@_cdecl("p2mnote_free")
public func p2mnote_free(_ p: UnsafeMutableRawPointer?) { free(p) }

@_cdecl("p2mnote_get_info")
public func p2mnote_get_info(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<p2mnote_info>?) -> p2mnote_status {
    withHandle(h) { s in
        guard let out else { throw argument("out is NULL") }
        let raw = UnsafeMutableRawPointer(out)
        guard raw.load(as: UInt32.self) >= 8 else { throw argument("struct_size \(raw.load(as: UInt32.self)) is too small (set it to sizeof(struct p2mnote_info))") }
        var i = p2mnote_info()
        i.page_size = 4096
        i.path = s.keep("path", s.dump.path)
        i.container = s.keep("container", s.dump.containerName)
        i.machine_bytes = s.dump.memory.totalBytes
        i.kernel_offset = s.dump.vmcoreInfo?.kernelOffset ?? 0
        i.symbol_count = UInt64(s.session.symbols.count)
        i.domain = s.domain
        copyOut(i, to: raw)
    }
}

@_cdecl("p2mnote_root")
public func p2mnote_root(_ h: OpaquePointer?, _ root: UnsafeMutablePointer<UInt64>?, _ how: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> p2mnote_status {
    withHandle(h) { s in
        guard let root else { throw argument("root is NULL") }
        let k = try s.kernel()
        root.pointee = k.root.rawValue
        how?.pointee = s.keep("root-source", k.rootSource)
    }
}

@_cdecl("p2mnote_p2m")
public func p2mnote_p2m(_ h: OpaquePointer?, _ nr: UnsafeMutablePointer<UInt64>?, _ source: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                        _ location: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> p2mnote_status {
    withHandle(h, fallback: P2MNOTE_ERR_NO_P2M) { s in
        guard let nr else { throw argument("nr_pfns is NULL") }
        let (m, src) = try s.p2m()
        nr.pointee = m.nrPfns
        source?.pointee = s.keep("p2m-source", src.name.rawValue)
        location?.pointee = s.keep("p2m-location", src.location)
    }
}

@_cdecl("p2mnote_pfn_to_mfn")
public func p2mnote_pfn_to_mfn(_ h: OpaquePointer?, _ pfn: UInt64, _ frame: UnsafeMutablePointer<UInt64>?,
                               _ kind: UnsafeMutablePointer<p2mnote_entry_kind>?) -> p2mnote_status {
    withHandle(h, fallback: P2MNOTE_ERR_NO_P2M) { s in
        guard let frame else { throw argument("frame is NULL") }
        let (m, src) = try s.p2m()
        guard let e = m.entry(PFN(rawValue: pfn)) else {
            throw APIError(P2MNOTE_ERR_RANGE, "\(s.dump.path): pfn 0x\(String(pfn, radix: 16)) is beyond the p2m (\(m.nrPfns) entries, \(src.location))")
        }
        switch e.kind {
        case .mfn: kind?.pointee = P2MNOTE_ENTRY_MFN
        case .invalid: kind?.pointee = P2MNOTE_ENTRY_INVALID
        case .identity: kind?.pointee = P2MNOTE_ENTRY_IDENTITY
        case .foreign: kind?.pointee = P2MNOTE_ENTRY_FOREIGN
        }
        frame.pointee = e.frame?.rawValue ?? .max
    }
}

@_cdecl("p2mnote_p2m_entries")
public func p2mnote_p2m_entries(_ h: OpaquePointer?, _ first: UInt64, _ entries: UnsafeMutablePointer<UInt64>?, _ count: Int,
                                _ got: UnsafeMutablePointer<Int>?) -> p2mnote_status {
    withHandle(h, fallback: P2MNOTE_ERR_NO_P2M) { s in
        guard let got else { throw argument("got is NULL") }
        guard count >= 0 else { throw argument("count is negative") }
        guard count == 0 || entries != nil else { throw argument("entries is NULL") }
        let (m, _) = try s.p2m()
        guard let entries, count > 0, first < m.nrPfns else { got.pointee = 0; return }
        got.pointee = m.entries(from: first, into: UnsafeMutableBufferPointer(start: entries, count: count))
    }
}

@_cdecl("p2mnote_mfn_to_pfn")
public func p2mnote_mfn_to_pfn(_ h: OpaquePointer?, _ mfn: UInt64, _ pfns: UnsafeMutablePointer<UInt64>?, _ capacity: Int,
                               _ count: UnsafeMutablePointer<Int>?) -> p2mnote_status {
    withHandle(h, fallback: P2MNOTE_ERR_NO_P2M) { s in
        guard let count else { throw argument("count is NULL") }
        guard capacity >= 0, capacity == 0 || pfns != nil else { throw argument("pfns is NULL with a capacity of \(capacity)") }
        let (m, _) = try s.p2m()
        let found: [PFN]
        switch m.m2p(MFN(rawValue: mfn)) {
        case .none: found = []
        case .unique(let p): found = [p]
        case .ambiguous(let ps): found = ps
        }
        for (i, p) in found.prefix(capacity).enumerated() { pfns?[i] = p.rawValue }
        count.pointee = found.count
    }
}

@_cdecl("p2mnote_vtop")
public func p2mnote_vtop(_ h: OpaquePointer?, _ vaddr: UInt64, _ out: UnsafeMutablePointer<p2mnote_walk>?) -> p2mnote_status {
    withHandle(h, fallback: P2MNOTE_ERR_UNMAPPED) { s in
        guard let out else { throw argument("out is NULL") }
        let k = try s.kernel()
        let r: WalkResult
        do { r = try k.pageTables.walk(KVAddr(rawValue: vaddr)) } catch {
            throw APIError(P2MNOTE_ERR_UNMAPPED, "\(s.dump.path): kernel virtual address 0x\(String(vaddr, radix: 16)) does not translate: \(error)")
        }
        var w = p2mnote_walk()
        w.vaddr = vaddr
        w.maddr = r.address.rawValue
        w.page_size = r.pageSize
        // The pfn when the p2m names exactly one (the session's m2p answer, as vtop prints it).
        w.pfn = s.session.pfn(ofMfn: r.address.mfn()).pfn?.rawValue ?? .max
        w.nsteps = UInt32(min(r.steps.count, 5))
        withUnsafeMutableBytes(of: &w.steps) { raw in
            let steps = raw.bindMemory(to: p2mnote_walk_step.self)
            for (i, st) in r.steps.prefix(5).enumerated() {
                steps[i] = p2mnote_walk_step(level: UInt32(st.level), index: UInt32(st.index), table_mfn: st.tableMFN.rawValue, entry: st.entry)
            }
        }
        out.pointee = w
    }
}

@_cdecl("p2mnote_read")
public func p2mnote_read(_ h: OpaquePointer?, _ space: p2mnote_space, _ addr: UInt64, _ buf: UnsafeMutableRawPointer?, _ len: Int,
                         _ done: UnsafeMutablePointer<Int>?) -> p2mnote_status {
    var copied = 0
    defer { done?.pointee = copied }
    return withHandle(h, fallback: P2MNOTE_ERR_NOT_IN_DUMP) { s in
        guard len >= 0 else { throw argument("len is negative") }
        guard len > 0 else { return }
        guard let buf else { throw argument("buf is NULL") }
        try s.read(space, addr, buf, len, &copied)
    }
}

@_cdecl("p2mnote_symbol")
public func p2mnote_symbol(_ h: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ addr: UnsafeMutablePointer<UInt64>?) -> p2mnote_status {
    withHandle(h, fallback: P2MNOTE_ERR_NO_SYMBOL) { s in
        let n = try string(name, "name")
        guard let addr else { throw argument("addr is NULL") }
        guard let a = s.session.symbols.address(n) else {
            throw APIError(P2MNOTE_ERR_NO_SYMBOL, "\(s.dump.path): symbol \(n) is unknown (\(s.session.symbols.count) symbols known\(s.session.symbols.isEmpty ? "; pass a System.map or vmlinux" : ""))")
        }
        addr.pointee = a.rawValue
    }
}

@_cdecl("p2mnote_banner")
public func p2mnote_banner(_ h: OpaquePointer?, _ text: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> p2mnote_status {
    withHandle(h) { s in
        guard let text else { throw argument("text is NULL") }
        text.pointee = s.keep("banner", KernelIdentity.bannerText(Array(try s.kernel().banner().utf8)))
    }
}

@_cdecl("p2mnote_vmcoreinfo")
public func p2mnote_vmcoreinfo(_ h: OpaquePointer?, _ text: UnsafeMutablePointer<UnsafePointer<CChar>?>?, _ len: UnsafeMutablePointer<Int>?,
                               _ synthesised: UnsafeMutablePointer<Int32>?) -> p2mnote_status {
    withHandle(h) { s in
        guard let text else { throw argument("text is NULL") }
        let v = try s.vmcoreInfo()
        text.pointee = UnsafePointer(v.text)
        len?.pointee = v.count
        synthesised?.pointee = v.origin.rawValue
    }
}

@_cdecl("p2mnote_registers")
public func p2mnote_registers(_ h: OpaquePointer?, _ index: Int, _ out: UnsafeMutablePointer<p2mnote_registers>?,
                              _ count: UnsafeMutablePointer<Int>?) -> p2mnote_status {
    withHandle(h) { s in
        guard let count else { throw argument("count is NULL") }
        let sets: [GuestRegisters]
        do { sets = try s.session.registers() } catch let e as SessionError { throw APIError(P2MNOTE_ERR_FORMAT, e.message) }
        count.pointee = sets.count
        guard let out else { return }
        let raw = UnsafeMutableRawPointer(out)
        guard raw.load(as: UInt32.self) >= 8 else { throw argument("struct_size \(raw.load(as: UInt32.self)) is too small (set it to sizeof(struct p2mnote_registers))") }
        guard index >= 0, index < sets.count else { throw APIError(P2MNOTE_ERR_RANGE, "\(s.dump.path): register set \(index) of \(sets.count)") }
        let r = sets[index]
        var o = p2mnote_registers()
        o.flags = r.running ? UInt32(P2MNOTE_REGS_RUNNING) : 0
        o.cpu = Int32(clamping: r.cpu ?? -1)
        o.pcpu = Int32(clamping: r.pcpu ?? -1)
        o.source = s.keep("regs-source-\(index)", r.source)
        withUnsafeMutableBytes(of: &o.regs) { b in
            let words = b.bindMemory(to: UInt64.self)
            for (i, v) in r.values.prefix(words.count).enumerated() { words[i] = v }
        }
        copyOut(o, to: raw)
    }
}

@_cdecl("p2mnote_command")
public func p2mnote_command(_ h: OpaquePointer?, _ line: UnsafePointer<CChar>?, _ json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> p2mnote_status {
    withHandle(h, fallback: P2MNOTE_ERR_ARGUMENT) { s in
        let l = try string(line, "line")
        guard let json else { throw argument("json is NULL") }
        let out = try GuestCommands.execute(line: l, in: s.session)
        var bytes = [UInt8](out.jsonData)
        bytes.append(0)
        guard let p = malloc(bytes.count)?.assumingMemoryBound(to: CChar.self) else { throw APIError(P2MNOTE_ERR_INTERNAL, "out of memory") }
        bytes.withUnsafeBytes { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        json.pointee = p
    }
}
