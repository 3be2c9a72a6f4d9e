// Where struct domain and struct vcpu keep what the readers use beyond VMCOREINFO_XEN's few
// offsets, for one Xen build: from that build's own types (xen-syms' DWARF, given with
// --xen-syms; Debian's 4.20 -dbg package ships xen-syms with DWARF), else from a table of builds
// each checked against a real dump of it, else not at all: the domains then come from a frame
// table scan and the vCPUs' saved registers are not read. Never another build's numbers.
// Member names: xen/include/xen/sched.h (struct domain, struct vcpu) and
// xen/arch/x86/include/asm/domain.h (struct arch_vcpu), the same names in 4.17 and 4.20.
import DumpIO
import P2MFormat

public struct XenStructLayout: Sendable, Equatable {
    /// struct domain
    public var sharedInfo: UInt64, totPages: UInt64, xenHeapPages: UInt64, maxVcpus: UInt64, vcpus: UInt64
    /// struct vcpu: vcpu_id, its domain pointer, arch.user_regs (struct cpu_user_regs, saved when
    /// Xen switched the vCPU out) and arch.guest_table (the mfn of the guest kernel's L4).
    public var vcpuId: UInt64, vcpuDomain: UInt64, userRegs: UInt64, guestTable: UInt64
    /// struct cpu_info, at the top of each physical CPU's stack (asm/current.h): its size, and
    /// where guest_cpu_user_regs, processor_id and current_vcpu are in it.
    public var cpuInfoSize: UInt64 = 0x108, cpuInfoGuestRegs: UInt64 = 0, cpuInfoProcessorId: UInt64 = 0xc8, cpuInfoCurrentVcpu: UInt64 = 0xd0
    /// Where the layout came from, for people.
    public var source: String

    public init(sharedInfo: UInt64, totPages: UInt64, xenHeapPages: UInt64, maxVcpus: UInt64, vcpus: UInt64,
                vcpuId: UInt64, vcpuDomain: UInt64, userRegs: UInt64, guestTable: UInt64, source: String) {
        self.sharedInfo = sharedInfo; self.totPages = totPages; self.xenHeapPages = xenHeapPages; self.maxVcpus = maxVcpus
        self.vcpus = vcpus; self.vcpuId = vcpuId; self.vcpuDomain = vcpuDomain; self.userRegs = userRegs
        self.guestTable = guestTable; self.source = source
    }

    /// From the build's types. Each member must be there with the size the readers assume.
    public init(types: some TypeLayouts) throws {
        func field(_ path: String, of s: String, size: UInt64) throws -> UInt64 {
            let m = try types.need(path, of: s)
            guard m.size == nil || m.size == size else {
                throw TranslationError("\(types.origin): struct \(s).\(path) is \(m.size.map(String.init) ?? "?") bytes, not \(size)", kind: .noLayout)
            }
            return m.offset
        }
        self.init(sharedInfo: try field("shared_info", of: "domain", size: 8), totPages: try field("tot_pages", of: "domain", size: 4),
                  xenHeapPages: try field("xenheap_pages", of: "domain", size: 4), maxVcpus: try field("max_vcpus", of: "domain", size: 4),
                  vcpus: try field("vcpu", of: "domain", size: 8), vcpuId: try field("vcpu_id", of: "vcpu", size: 4),
                  vcpuDomain: try field("domain", of: "vcpu", size: 8), userRegs: try field("arch.user_regs", of: "vcpu", size: 200),
                  guestTable: try field("arch.guest_table", of: "vcpu", size: 8), source: types.origin)
        guard let size = types.size(of: "cpu_info"), (0x100...0x1000).contains(size) else {
            throw TranslationError("\(types.origin): no struct cpu_info of a plausible size", kind: .noLayout)
        }
        cpuInfoSize = size
        cpuInfoGuestRegs = try field("guest_cpu_user_regs", of: "cpu_info", size: 200)
        cpuInfoProcessorId = try field("processor_id", of: "cpu_info", size: 4)
        cpuInfoCurrentVcpu = try field("current_vcpu", of: "cpu_info", size: 8)
        guard cpuInfoGuestRegs + 200 <= size, cpuInfoProcessorId + 8 <= size, cpuInfoCurrentVcpu + 8 <= size else {   // each read as a word
            throw TranslationError("\(types.origin): struct cpu_info's members lie past its \(size) bytes", kind: .noLayout)
        }
    }

    /// A build as its dump tells it apart: the crash info's version and VMCOREINFO_XEN's values.
    public struct Build: Sendable, Equatable, CustomStringConvertible {
        public var major: UInt64, minor: UInt64
        public var domainSize: String?, nextInList: String?, pageInfoSize: String?
        public var description: String {
            "Xen \(major).\(minor) (SIZE(domain)=\(domainSize ?? "?"), OFFSET(domain.next_in_list)=\(nextInList ?? "?"), SIZE(page_info)=\(pageInfoSize ?? "?"))"
        }
        public init(major: UInt64, minor: UInt64, domainSize: String?, nextInList: String?, pageInfoSize: String?) {
            self.major = major; self.minor = minor; self.domainSize = domainSize; self.nextInList = nextInList; self.pageInfoSize = pageInfoSize
        }
        public init?(dump: DumpContainer) {
            guard let ci = dump.crashInfo, let v = dump.vmcoreInfoXen?.values else { return nil }
            self.init(major: ci.major, minor: ci.minor, domainSize: v["SIZE(domain)"], nextInList: v["OFFSET(domain.next_in_list)"], pageInfoSize: v["SIZE(page_info)"])
        }
    }

    /// Builds whose layout was read from their own types and checked on a real dump of them
    /// (RealDumpTests: every domain's counts equal the frame table's, every vCPU points back at its
    /// domain, the registers match the guest's stack):
    /// - Debian 12's Xen 4.17 (4.17.x+…-0+deb12u…): pahole of a rebuild of RELEASE-4.17.7 with
    ///   Debian's config (Debian's 4.17 -dbg ships no DWARF), checked on the Debian 12 host dump;
    ///   struct cpu_info from asm/current.h and asm-offsets.c of 4.17 (0x108 bytes, processor_id at
    ///   0xc8, current_vcpu at 0xd0), checked by the registers of the real dumps (RegisterTests).
    /// - Debian 13's Xen 4.20 (4.20.4+…-0+deb13u1): gdb's `ptype/o` of its -dbg package's
    ///   xen-syms, checked on the Debian 13 host dump (LayoutTests compares this table with that
    ///   DWARF as DWARFTypes reads it).
    public static let verified: [(build: Build, layout: XenStructLayout)] = [
        (Build(major: 4, minor: 17, domainSize: "2304", nextInList: "136", pageInfoSize: "32"),
         XenStructLayout(sharedInfo: 16, totPages: 88, xenHeapPages: 92, maxVcpus: 4, vcpus: 8, vcpuId: 0, vcpuDomain: 16,
                         userRegs: 648, guestTable: 2824, source: "the table of Xen builds checked on real dumps (Debian 12's Xen 4.17)")),
        (Build(major: 4, minor: 20, domainSize: "2304", nextInList: "144", pageInfoSize: "32"),
         XenStructLayout(sharedInfo: 24, totPages: 96, xenHeapPages: 100, maxVcpus: 4, vcpus: 16, vcpuId: 0, vcpuDomain: 24,
                         userRegs: 640, guestTable: 2568, source: "the table of Xen builds checked on real dumps (Debian 13's Xen 4.20)")),
    ]

    /// The layout `table` (by default the verified builds) holds for the build, if any.
    public static func verified(for b: Build, in table: [(build: Build, layout: XenStructLayout)] = verified) -> XenStructLayout? {
        table.first { $0.build == b }?.layout
    }
}
