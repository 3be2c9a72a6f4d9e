// p2m-gendump: makes test dumps of Xen PV guests with a JSON manifest of ground truth.
import ArgumentParser
import DumpGen
import Foundation

struct GenDump: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "p2m-gendump",
        abstract: "Generate faithful test dumps of Xen PV Linux guests (with System.map and manifest).",
        version: "p2mnote 0.3.0 (p2m-gendump)",
        subcommands: [Dom0.self, XL.self, Host.self, Kdump.self, Malformed.self])
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
    @Flag(help: "PT_LOADs only over frames that hold something (as makedumpfile -E -d 1 splits them): a file of a few hundred KiB.") var onlyWrittenPages = false

    func run() throws {
        var o = Dom0DumpOptions()
        o.guestMiB = common.guestMib; o.machineMiB = machineMib; o.profile = try common.layoutProfile()
        o.seed = common.seed; o.nrPfns = common.nrPfns; o.cpus = cpus
        o.crashInfo = !noCrashInfo; o.crashRegs = !noCrashRegs; o.vmcoreinfoXen = !noVmcoreinfoXen
        o.dom0VMCoreInfo = withDom0Vmcoreinfo; o.makedumpfileELayout = makedumpfileLayout; o.onlyWrittenPages = onlyWrittenPages; o.kernel = try common.kernel()
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
    @Flag(help: ".xen_pages only for pages that hold something (xl itself writes every page): a small file.") var onlyWrittenPages = false

    func run() throws {
        var o = XLDumpOptions()
        o.guestMiB = common.guestMib; o.profile = try common.layoutProfile(); o.seed = common.seed
        o.nrPfns = common.nrPfns; o.kernel = try common.kernel(); o.domainID = domid; o.onlyWrittenPages = onlyWrittenPages
        let t0 = Date()
        let g = try DumpGenerator.generateXL(o, to: common.output)
        print("wrote \(g.path) (\(g.manifest.guestPages >> 8) MiB domU, \(g.manifest.nrPfns) p2m entries, profile \(g.manifest.profile)) in \(String(format: "%.2f", Date().timeIntervalSince(t0))) s")
        print("      \(g.systemMapPath)\n      \(g.manifestPath)")
    }
}

struct Kdump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a generated ELF vmcore into makedumpfile's kdump-compressed file (or its flattened stream).",
        discussion: "Written as makedumpfile 1.7 lays them out; the notes go into the header's notes blob (versions ≥ 4).")
    @Argument(help: "The ELF vmcore (from `p2m-gendump dom0`).") var input: String
    @Option(name: [.short, .long], help: "Output file.") var output: String
    @Option(help: "Page compression: \(KdumpCompression.allCases.map(\.rawValue).joined(separator: ", ")).") var compression = "zlib"
    @Option(help: "disk_dump_header version, 1 to 6.") var headerVersion: Int32 = 6
    @Flag(help: "Leave out all-zero pages, as makedumpfile -d 1 does.") var excludeZeroPages = false
    @Flag(help: "Write the flattened stream (makedumpfile -F) instead.") var flatten = false

    func run() throws {
        guard let c = KdumpCompression(rawValue: compression) else { throw ValidationError("unknown --compression \(compression)") }
        guard (1...6).contains(headerVersion) else { throw ValidationError("--header-version must be 1 to 6") }
        var o = KdumpWriteOptions(); o.compression = c; o.headerVersion = headerVersion; o.excludeZeroPages = excludeZeroPages
        let target = flatten ? output + ".kdump-tmp" : output
        try KdumpWriter.write(fromELF: input, to: target, o)
        if flatten {
            defer { unlink(target) }
            try KdumpWriter.flatten(target, to: output)
        }
        print("wrote \(output)")
    }
}

GenDump.main()

struct Host: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A crashed Xen host's kdump vmcore: Xen 4.17's own tables (idle page tables, frame table, M2P, domain list, shared_info) and several PV guests.",
        discussion: "Writes DUMP, DUMP.manifest.json, and per guest DUMP.domN.System.map and DUMP.domN.manifest.json.")
    @Option(name: [.short, .long], help: "Output file.") var output: String
    @Option(help: "Machine RAM in MiB.") var machineMib: UInt64 = 2048
    @Option(help: "The guests as ID:MIB:PROFILE, dom0 first (profiles: \(LayoutProfile.allCases.map(\.rawValue).joined(separator: ", "))).")
    var guest: [String] = ["0:512:dom0", "1:160:ballooned", "2:256:fragmented"]
    @Option(help: "Seed: the same seed gives the same bytes.") var seed: UInt64 = 1
    @Option(help: "Entries of each guest's p2m table (xen_p2m_size).") var nrPfns: UInt64?

    func run() throws {
        var o = HostDumpOptions(); o.machineMiB = machineMib; o.seed = seed; o.nrPfns = nrPfns
        o.guests = try guest.map { g in
            let f = g.split(separator: ":")
            guard f.count == 3, let id = UInt16(f[0]), let mib = UInt64(f[1]), let p = LayoutProfile(rawValue: String(f[2])) else {
                throw ValidationError("--guest \(g): expected ID:MIB:PROFILE")
            }
            return HostGuestSpec(domainID: id, mib: mib, profile: p)
        }
        let h = try DumpGenerator.generateHost(o, to: output)
        print("wrote \(output): \(h.manifest.guests.count) guests (\(h.manifest.guests.map { "dom\($0.domainID) \($0.pages) pages" }.joined(separator: ", "))), manifest \(h.manifestPath)")
    }
}

struct Malformed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The malformed-dump corpus: small dumps of every container, each broken one way, with DIR/cases.json saying what each tool must say.")
    @Option(name: [.short, .long], help: "Output directory.") var output: String
    func run() throws {
        let c = try MalformedCorpus.write(to: output)
        print("wrote \(c.count) malformed dumps and \(output)/cases.json")
    }
}
