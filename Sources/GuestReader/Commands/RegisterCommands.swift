// regs: the guest's registers at the crash, each CPU's set with where it came from.
import DumpIO
import Foundation
import P2MFormat
import Translation

enum Regs {
    static let spec = CommandSpec("regs", abstract: "The guest's registers at the crash, per CPU, and where each set came from (Xen's per-CPU stacks, struct vcpu, .xen_prstatus).",
                                  discussion: "Under Xen the dump's NT_PRSTATUS notes hold Xen's registers; the guest's are read from the Xen stack of each physical CPU (cpu_info.guest_cpu_user_regs), matched to the guest's CPUs by their per-CPU base (gs_base = __per_cpu_offset[cpu], needs the guest's symbols) or by current_vcpu.") { s, _ in
        try execute(in: s)
    }

    struct CPU: Encodable {
        var cpu: Int?
        var pcpu: Int?
        var running: Bool
        var source: String
        var cpuFrom: String?
        var rip: KVAddr
        var ripSymbol: String?
        var registers: [String: Hex64]
    }
    struct Result: TextResult {
        var cpus: [CPU]
        var text: String {
            cpus.map { c in
                var t = "CPU \(c.cpu.map(String.init) ?? "?")\(c.running ? "" : " (not running)"): \(c.source)\(c.cpuFrom.map { "; cpu from \($0)" } ?? "")\n"
                t += "    RIP: \(c.rip)\(c.ripSymbol.map { " (\($0))" } ?? "")\n"
                let shown = GuestRegisters.names.filter { $0 != "rip" && $0 != "orig_rax" }
                for row in stride(from: 0, to: shown.count, by: 3) {
                    t += "   " + shown[row..<min(row + 3, shown.count)].map { n in
                        " " + (n.uppercased() + ":").padding(toLength: 8, withPad: " ", startingAt: 0) + String(format: "%016llx", c.registers[n]?.value ?? 0)
                    }.joined() + "\n"
                }
                return t
            }.joined(separator: "\n")
        }
    }

    static func execute(in s: GuestSession) throws -> CommandOutput {
        let cpus = try s.registers().map { r -> CPU in
            let rip = KVAddr(rawValue: r.value("rip") ?? 0)
            let sym = s.symbols.symbol(at: rip).map { $0.1 == 0 ? $0.0.name : "\($0.0.name)+0x\(String($0.1, radix: 16))" }
            var regs: [String: Hex64] = [:]
            for (n, v) in zip(GuestRegisters.names, r.values) { regs[n] = Hex64(v) }
            return CPU(cpu: r.cpu, pcpu: r.pcpu, running: r.running, source: r.source, cpuFrom: r.cpuFrom, rip: rip, ripSymbol: sym, registers: regs)
        }
        return try s.output("regs", Result(cpus: cpus))
    }
}
