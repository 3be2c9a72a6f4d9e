// p2m-gendump: makes test dumps of Xen PV guests with a JSON manifest of ground truth.
import ArgumentParser
import DumpGen
import Foundation

struct GenDump: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "p2m-gendump",
        abstract: "Generate faithful test dumps of Xen PV Linux guests (with System.map and manifest).",
        version: "p2mnote 0.3.0 (p2m-gendump)",
        subcommands: [Dom0.self, XL.self])
}

struct Common: ParsableArguments {
    @Option(help: "Guest RAM in MiB (≥ 64; huge guests make sparse files).") var guestMib: UInt64 = 512
    @Option(help: "Layout profile: \(LayoutProfile.allCases.map(\.rawValue).joined(separator: ", ")).") var profile: String = "dom0"
    @Option(help: "Seed: the same seed gives the same bytes.") var seed: UInt64 = 1
    @Option(help: "Entries of the p2m table (xen_p2m_size); default 2^27 or what RAM needs.") var nrPfns: UInt64?
    @Option(help: "Module area base: 0xffffffffa0000000 (older kernels) or 0xffffffffc0000000.") var moduleBase: String = "0xffffffffa0000000"
    @Option(help: "Number of modules in the modules list.") var modules: Int = 6
    @Option(name: [.short, .long], help: "Output file.") var output: String

    func kernel() throws -> KernelOptions {
        var k = KernelOptions()
        guard let b = UInt64(moduleBase.hasPrefix("0x") ? String(moduleBase.dropFirst(2)) : moduleBase, radix: 16) else {
            throw ValidationError("--module-base: not a hex address: \(moduleBase)")
        }
        k.moduleBase = b
        k.moduleCount = modules
        return k
    }
    func layoutProfile() throws -> LayoutProfile {
        guard let p = LayoutProfile(rawValue: profile) else { throw ValidationError("unknown --profile \(profile)") }
        return p
    }
}

struct Dom0: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A dom0 kdump ELF vmcore as Xen's kexec crash path leaves it.")
    @OptionGroup var common: Common
    @Option(help: "Machine RAM in MiB (default: guest × 1.25 + 512).") var machineMib: UInt64?
    @Option(help: "Physical CPUs (one CORE + crash-regs note each).") var cpus: Int = 2
    @Flag(help: "Leave out Xen's crash-info note (no frame-list-list root).") var noCrashInfo = false
    @Flag(help: "Leave out Xen's crash-regs notes (no cr3).") var noCrashRegs = false
    @Flag(help: "Leave out the VMCOREINFO_XEN note.") var noVmcoreinfoXen = false
    @Flag(help: "Add dom0's own VMCOREINFO note (real Xen 4.17 + kexec-tools dumps have none).") var withDom0Vmcoreinfo = false
    @Flag(help: "Lay the file out as makedumpfile -E does: no slack after the notes, unaligned PT_LOAD offsets.") var makedumpfileLayout = false

    func run() throws {
        var o = Dom0DumpOptions()
        o.guestMiB = common.guestMib; o.machineMiB = machineMib; o.profile = try common.layoutProfile()
        o.seed = common.seed; o.nrPfns = common.nrPfns; o.cpus = cpus
        o.crashInfo = !noCrashInfo; o.crashRegs = !noCrashRegs; o.vmcoreinfoXen = !noVmcoreinfoXen
        o.dom0VMCoreInfo = withDom0Vmcoreinfo; o.makedumpfileELayout = makedumpfileLayout; o.kernel = try common.kernel()
        let t0 = Date()
        let g = try DumpGenerator.generateDom0(o, to: common.output)
        print("wrote \(g.path) (\(g.manifest.guestPages >> 8) MiB dom0, \(g.manifest.nrPfns) p2m entries, profile \(g.manifest.profile)) in \(String(format: "%.2f", Date().timeIntervalSince(t0))) s")
        print("      \(g.systemMapPath)\n      \(g.manifestPath)")
    }
}

struct XL: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "An xl dump-core file of a PV domU.")
    @OptionGroup var common: Common
    @Option(help: "Domain id recorded in the manifest.") var domid: UInt32 = 1

    func run() throws {
        var o = XLDumpOptions()
        o.guestMiB = common.guestMib; o.profile = try common.layoutProfile(); o.seed = common.seed
        o.nrPfns = common.nrPfns; o.kernel = try common.kernel(); o.domainID = domid
        let t0 = Date()
        let g = try DumpGenerator.generateXL(o, to: common.output)
        print("wrote \(g.path) (\(g.manifest.guestPages >> 8) MiB domU, \(g.manifest.nrPfns) p2m entries, profile \(g.manifest.profile)) in \(String(format: "%.2f", Date().timeIntervalSince(t0))) s")
        print("      \(g.systemMapPath)\n      \(g.manifestPath)")
    }
}

GenDump.main()
