// A domain's vCPUs through struct domain and struct vcpu, where Xen's build is known
// (XenHost.structLayout: each vCPU must point back at its domain, or the layout is taken as
// unknown). Their saved registers serve p2m-extract's .xen_prstatus and the registers of a
// vCPU that was on no physical CPU at the crash (GuestRegisters).
import DumpIO
import Foundation
import P2MFormat

extension XenHost {
    /// One vCPU's saved state, where the build's struct vcpu layout is known.
    public struct VCPUState: Sendable {
        public var id: Int
        /// struct cpu_user_regs as Xen saved it (200 bytes, public/arch-x86/xen-x86_64.h).
        public var userRegs: [UInt8]
        public var guestTableMfn: UInt64
    }

    /// The domain's vCPUs (nil: the build's struct vcpu layout is not known). Each vCPU must
    /// point back at its domain, or the layout is taken as unknown.
    public func vcpus(of d: XenDomain) throws -> [VCPUState]? {
        guard let l = structLayout else { return nil }
        let n = try readU64(d.address &+ l.maxVcpus) & 0xffff_ffff
        guard n > 0, n <= 4096 else { return nil }
        let array = try readU64(d.address &+ l.vcpus)
        guard array >= XenLayout.directMapStart else { return nil }
        var out: [VCPUState] = []
        for i in 0..<n {
            let v = try readU64(array &+ i &* 8)
            guard v != 0 else { continue }
            guard v >= XenLayout.directMapStart, try readU64(v &+ l.vcpuDomain) == d.address,
                  try readU64(v &+ l.vcpuId) & 0xffff_ffff == i else { return nil }
            out.append(VCPUState(id: Int(i), userRegs: try pageTables.readBytes(KVAddr(rawValue: v &+ l.userRegs), count: 200),
                                 guestTableMfn: try readU64(v &+ l.guestTable)))
        }
        return out
    }
}
