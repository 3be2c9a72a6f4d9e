// A PV guest's registers at the crash, for every vCPU that can be found, and where each set
// came from. Under Xen a dump's NT_PRSTATUS notes hold Xen's registers (one per physical CPU,
// written by kexec_crash_save_cpu), never the guest's. The guest's are in Xen's memory:
//
//  • Each physical CPU's Xen stack is STACK_SIZE = 8 pages, 32 KiB-aligned, with struct cpu_info
//    at its top (xen/arch/x86/include/asm/current.h; 0x108 bytes in every 4.17.x and 4.20.x tag,
//    its layout taken from XenHost.structLayout: xen-syms' DWARF or the table of checked builds;
//    for a build known to neither, no frame is read). Its first member, guest_cpu_user_regs, is
//    the frame saved when the CPU last entered Xen from a guest (an NMI from guest context copies
//    its frame there too, x86_64/entry.S handle_ist_exception), and Xen's lazy context switch leaves the last guest
//    vCPU's registers there while the CPU idles. The PRSTATUS RSP lies in that 32 KiB block
//    (on the NMI stack for a CPU that was shot down), so top = (rsp | 0x7fff) + 1.
//    processor_id sits at top − 0x40 and current_vcpu at top − 0x38 (asm-offsets.c CPUINFO_*;
//    gdb's ptype/o of 4.20's xen-syms: 0xc8 and 0xd0 of 0x108).
//  • struct cpu_user_regs (public/arch-x86/xen-x86_64.h, 200 bytes): r15 r14 r13 r12 rbp rbx r11
//    r10 r9 r8 rax rcx rdx rsi rdi, error_code and entry_vector (u32 each), rip, cs (u16),
//    saved_upcall_mask, rflags, rsp, ss (u16), then es ds fs gs.
//  • Which guest CPU a frame belongs to: the PRSTATUS gs_base is the MSR_GS_BASE Xen left loaded,
//    which for a PV kernel in kernel mode is its per-CPU base, __per_cpu_offset[cpu] (checked on
//    the real dumps of Tools/real-dump: it tracks the vCPU Xen had loaded). This needs the
//    guest's symbols and no Xen layout at all. Without them, a CPU whose current_vcpu is a guest
//    vCPU (not the idle one) names it through struct vcpu's vcpu_id and domain pointer (where
//    the build's layout is known: XenHost.structLayout), and struct domain's domain_id
//    (VMCOREINFO_XEN).
//  • An xl dump-core's .xen_prstatus holds one vcpu_guest_context (0x1430 bytes,
//    public/arch-x86/xen.h) per vCPU whose context Xen gave (tools/libs/guest/xg_core.c):
//    user_regs at 0x208, gs_base_kernel at 0x1420.
//  • A vCPU on no physical CPU keeps its state in struct vcpu's arch.user_regs, saved when Xen
//    switched it out; its offset is build-specific (XenHost.vcpus, where the build is known).
import DumpIO
import Foundation
import P2MFormat

/// One guest CPU's registers, in x86-64 NT_PRSTATUS order (struct user_regs_struct), with their
/// origin.
public struct GuestRegisters: Sendable, Codable {
    /// struct user_regs_struct's members, the order of `values` and of an NT_PRSTATUS's pr_reg.
    public static let names = ["r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
                               "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs"]
    /// The guest's CPU number (Linux's), nil when it could not be told.
    public var cpu: Int?
    /// The physical CPU whose Xen stack held the set (nil: not from a physical CPU).
    public var pcpu: Int?
    /// Whether the vCPU was on a physical CPU at the crash.
    public var running: Bool
    /// Where the set came from, for people.
    public var source: String
    /// How the guest CPU number was found.
    public var cpuFrom: String?
    /// The 27 registers, `names` order.
    public var values: [UInt64]

    public init(cpu: Int?, pcpu: Int?, running: Bool, source: String, cpuFrom: String?, values: [UInt64]) {
        self.cpu = cpu; self.pcpu = pcpu; self.running = running; self.source = source; self.cpuFrom = cpuFrom; self.values = values
    }

    public func value(_ name: String) -> UInt64? { Self.names.firstIndex(of: name).map { values[$0] } }

    /// rip's place in `values`: a set whose rip is 0 was never saved.
    public static let ripIndex = 16

    /// From Xen's struct cpu_user_regs (200 bytes); fs_base and gs_base where known.
    public static func fromXen(_ r: [UInt8], fsBase: UInt64 = 0, gsBase: UInt64 = 0) -> [UInt64]? {
        guard r.count >= 0xa8 else { return nil }
        func q(_ o: Int) -> UInt64 { word(r, at: o) }
        var v = (0..<15).map { q($0 * 8) }                  // r15 … rdi
        v.append(.max)                                       // orig_rax: not a syscall frame
        v += [q(0x80), q(0x88) & 0xffff, q(0x90), q(0x98), q(0xa0) & 0xffff, fsBase, gsBase]
        let seg = r.count >= 0xc8 ? [q(0xb0), q(0xa8), q(0xb8), q(0xc0)].map { $0 & 0xffff } : [0, 0, 0, 0]   // ds es fs gs
        return v + seg
    }
}

/// The registers Xen's stacks and the dump's records hold, before they are matched to the guest.
public enum GuestRegisterFinder {
    /// One physical CPU's frame: the guest registers in its cpu_info and whom they belong to.
    public struct CPUFrame: Sendable {
        public var pcpu: Int
        public var regs: [UInt64]
        /// current_vcpu's (domain, vcpu_id), nil when idle or the layout is not known.
        public var current: (domain: UInt16, vcpu: Int)?
        public var idle: Bool
        public var gsBase: UInt64
    }

    /// Every physical CPU's frame of a dump with Xen's crash notes (a dom0 kdump, a host's dump).
    /// None where the build's struct cpu_info is not known (XenHost.structLayout).
    public static func cpuFrames(dump: DumpContainer, host: XenHost) throws -> [CPUFrame] {
        let prstatus = dump.notes.filter { $0.name == "CORE" && $0.type == 1 }
        guard let l = host.structLayout else { return [] }
        let size = Int(l.cpuInfoSize), regsAt = Int(l.cpuInfoGuestRegs)
        var out: [CPUFrame] = []
        for (i, n) in prstatus.enumerated() {
            let d = n.desc
            guard d.count >= 112 + 27 * 8 else { continue }
            func reg(_ k: Int) -> UInt64 { word(d, at: 112 + k * 8) }
            let rsp = reg(19), fsBase = reg(21), gsBase = reg(22)
            // A CPU that was not shot down left its note unwritten.
            guard rsp != 0 else { continue }
            let top = (rsp | 0x7fff) &+ 1
            guard top > l.cpuInfoSize, let info = try? host.pageTables.readBytes(KVAddr(rawValue: top - l.cpuInfoSize), count: size) else { continue }
            func q(_ o: Int) -> UInt64 { word(info, at: o) }
            // cpu_info.processor_id must be this note's CPU: else the stack is not what we think.
            guard q(Int(l.cpuInfoProcessorId)) & 0xffff_ffff == UInt64(i) else { continue }
            guard let regs = GuestRegisters.fromXen(Array(info[regsAt..<regsAt + 200]), fsBase: fsBase, gsBase: gsBase), regs[GuestRegisters.ripIndex] != 0 else { continue }
            var current: (UInt16, Int)? = nil
            var idle = false
            let v = q(Int(l.cpuInfoCurrentVcpu))
            if let vid = try? host.readU64(v &+ l.vcpuId), let dom = try? host.readU64(v &+ l.vcpuDomain), let did = try? host.readU64(dom &+ host.domainIdOffset) {
                let id = UInt16(did & 0xffff)
                if id == 0x7fff { idle = true } else { current = (id, Int(vid & 0xffff_ffff)) }
            }
            out.append(CPUFrame(pcpu: i, regs: regs, current: current, idle: idle, gsBase: gsBase))
        }
        return out
    }

    /// An xl dump-core's vCPU contexts: (index, user_regs as Xen's struct, gs_base_kernel).
    public static func contexts(_ record: GuestRecord) throws -> [(index: Int, regs: [UInt64], gsBaseKernel: UInt64)] {
        try record.vcpuContexts().enumerated().compactMap { i, c in
            guard c.count >= 0x1430 else { return nil }
            func q(_ o: Int) -> UInt64 { word(c, at: o) }
            let gsk = q(0x1420)
            guard let regs = GuestRegisters.fromXen(Array(c[0x208..<0x2d0]), fsBase: q(0x1418), gsBase: gsk) else { return nil }
            return (i, regs, gsk)
        }
    }
}

/// The little-endian word at `o` (0 past the end: the callers check the length first).
private func word(_ b: [UInt8], at o: Int) -> UInt64 { littleEndian(b, at: o) }
