// The guest's registers at the crash, matched to its CPUs: from the physical CPUs' Xen stacks
// (a dom0 kdump, each guest of a host's dump), from an xl dump-core's vCPU contexts, and for a
// vCPU on no physical CPU from struct vcpu where Xen's build is known (GuestRegisterFinder).
import DumpIO
import Foundation
import P2MFormat
import Translation

extension GuestSession {
    /// The registers of every guest CPU the dump holds, guest CPU order (sets whose CPU could
    /// not be told last). Throws when the dump records no registers of this guest at all.
    public func registers() throws -> [GuestRegisters] {
        if let cached = registersCache { return try cached.get() }
        let r = Result { try findRegisters() }
        registersCache = r
        return try r.get()
    }

    /// The guest kernel's per-CPU bases (__per_cpu_offset[0 ..< nr_cpu_ids]), nil without symbols.
    func perCPUOffsets() -> [UInt64]? {
        guard let k = try? kernel(), let base = symbols.address("__per_cpu_offset") else { return nil }
        let n = Int((try? k.readU64(symbol: "nr_cpu_ids")).map { $0 & 0xffff_ffff } ?? 1)
        guard n > 0, n <= 8192 else { return nil }
        return (0..<n).compactMap { try? k.pageTables.readU64(KVAddr(rawValue: base.rawValue &+ UInt64($0) * 8)) }
    }

    private func findRegisters() throws -> [GuestRegisters] {
        let offsets = perCPUOffsets()
        func cpu(ofGSBase gs: UInt64) -> Int? { offsets?.firstIndex(of: gs) }
        var out: [GuestRegisters] = []
        if let record = dump.guestRecord {
            for c in try GuestRegisterFinder.contexts(record) {
                let j = cpu(ofGSBase: c.gsBaseKernel)
                out.append(GuestRegisters(cpu: j ?? c.index, pcpu: nil, running: false, source: ".xen_prstatus vcpu_guest_context \(c.index)",
                                          cpuFrom: j != nil ? "gs_base_kernel is __per_cpu_offset[\(j!)]" : "its place in .xen_prstatus", values: c.regs))
            }
            guard !out.isEmpty else { throw SessionError("\(dump.path): the xl dump-core holds no vCPU context (.xen_prstatus)") }
            return out.sorted { ($0.cpu ?? .max) < ($1.cpu ?? .max) }
        }
        guard dump.vmcoreInfoXen != nil, dump.crashInfo != nil else {
            throw SessionError("\(dump.path): no Xen crash notes, so no guest registers: a \(dump.containerName) of a PV guest records them only through Xen's per-CPU stacks")
        }
        let host = try resolver.host()
        let domain = options.guest.domain ?? 0
        let roots = dump.crashRegs
        let k = try? kernel()
        // The machine address linux_banner has in this guest: a physical CPU whose loaded page
        // table maps it there runs this guest (another guest's tables map other frames).
        let probe = symbols.address("linux_banner") ?? symbols.address("_text")
        let here = probe.flatMap { p in try? k?.pageTables.translate(p) }
        func belongs(_ f: GuestRegisterFinder.CPUFrame) -> Bool {
            if let c = f.current { return c.domain == domain }
            guard let p = probe, let here, f.pcpu < roots.count else { return options.guest.domain == nil }
            return (try? resolver.walker.translate(p.rawValue, root: roots[f.pcpu].rootTable, form: .x86_64)) == here
        }
        var seen: Set<Int> = []
        for f in try GuestRegisterFinder.cpuFrames(dump: dump, host: host) where belongs(f) {
            var c: Int? = nil, from: String? = nil
            if let j = cpu(ofGSBase: f.gsBase) { c = j; from = "gs_base is __per_cpu_offset[\(j)]" }
            else if let cur = f.current { c = cur.vcpu; from = "current_vcpu's vcpu_id" }
            if let c { guard seen.insert(c).inserted else { continue } }
            let how = f.idle ? "held for the vCPU Xen had last loaded on it (the CPU was idle)" : "the vCPU it was running"
            out.append(GuestRegisters(cpu: c, pcpu: f.pcpu, running: !f.idle, source: "physical CPU \(f.pcpu)'s Xen stack (cpu_info.guest_cpu_user_regs, \(how))",
                                      cpuFrom: from, values: f.regs))
        }
        // vCPUs on no physical CPU: struct vcpu, where Xen's build is known.
        if let d = try? host.domain(domain), let vcpus = try? host.vcpus(of: d) {
            for v in vcpus where !seen.contains(v.id) {
                guard let regs = GuestRegisters.fromXen(v.userRegs), regs[GuestRegisters.ripIndex] != 0 else { continue }
                out.append(GuestRegisters(cpu: v.id, pcpu: nil, running: false, source: "struct vcpu \(v.id) of domain \(domain) (arch.user_regs, saved when Xen switched it out)",
                                          cpuFrom: "vcpu_id", values: regs))
            }
        }
        guard !out.isEmpty else {
            let why = host.structLayout == nil ? host.structLayoutWhy : "no physical CPU's Xen stack holds its frame, and no struct vcpu of it has saved registers"
            throw SessionError("\(dump.path): no registers of domain \(domain) found: \(why)")
        }
        return out.sorted { ($0.cpu ?? .max) < ($1.cpu ?? .max) }
    }
}
