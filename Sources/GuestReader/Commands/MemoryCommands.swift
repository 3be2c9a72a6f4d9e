// The session's commands that read memory: vtop, ptov, rd (kernel virtual, pseudo-physical, machine).
import DumpIO
import Foundation
import P2MFormat
import Translation

// MARK: vtop, ptov

struct Vtop {
    static let spec = CommandSpec("vtop", abstract: "Page walk of a kernel virtual address, level by level (machine memory only).",
                                  parameters: [.argument("address", "Address (hex) or symbol[+offset].")]) { s, w in
        try Vtop(address: w.value("address")).execute(in: s)
    }
    let address: String
    struct Step: Encodable { var level: String; var tableMfn: MFN; var index: Int; var entry: Hex64; var flags: String }
    struct Result: TextResult {
        var vaddr: KVAddr; var region: String; var steps: [Step]; var machine: MachAddr; var mfn: MFN
        /// The pfn whose p2m entry is the mfn ("0x…"; null when none, ambiguous or no p2m: see pfnStatus).
        var pfn: PFN?; var pfnStatus: PfnOfMfn.Status; var pfnCandidates: [PFN]; var pageSize: UInt64
        private var pfnText: String { PfnOfMfn(pfn: pfn, status: pfnStatus, candidates: pfnCandidates).text }
        var text: String {
            var t = "VIRTUAL           \(vaddr)  (\(region))\n"
            for s in steps { t += String(format: "  %@  table mfn 0x%llx [%3d] = 0x%016llx  %@\n", s.level as NSString, s.tableMfn.rawValue, s.index, s.entry.value, s.flags as NSString) }
            return t + "  MACHINE         \(machine)  (mfn \(mfn), \(pfnText), page \(pageSize >> 10) KiB)\n"
        }
    }
    func execute(in s: GuestSession) throws -> CommandOutput {
        let va = KVAddr(rawValue: try s.parseAddress(address))
        let r = try s.kernel().pageTables.walk(va)
        let p = s.pfn(ofMfn: r.address.mfn())
        let names = ["", "PTE", "PMD", "PUD", "PGD"]
        return try s.output("vtop", Result(vaddr: va, region: KernelRegion.of(va).rawValue,
                                           steps: r.steps.map { Step(level: names[$0.level], tableMfn: $0.tableMFN, index: $0.index, entry: Hex64($0.entry), flags: PTE.flagString($0.entry)) },
                                           machine: r.address, mfn: r.address.mfn(), pfn: p.pfn, pfnStatus: p.status, pfnCandidates: p.candidates, pageSize: r.pageSize))
    }
}

struct Ptov {
    static let spec = CommandSpec("ptov", abstract: "Kernel virtual addresses of a pseudo-physical address, and its machine address.",
                                  parameters: [.argument("address", "Pseudo-physical address (hex).")]) { s, w in
        try Ptov(address: try hexWord(w, "address")).execute(in: s)
    }
    let address: UInt64
    struct Result: TextResult {
        var paddr: PhysAddr; var directMap: KVAddr; var kernelImage: KVAddr?; var machine: MachAddr?
        var text: String {
            "PHYSICAL \(paddr) → direct map \(directMap)" + (kernelImage.map { ", kernel image \($0)" } ?? "") + (machine.map { "; machine \($0)" } ?? "") + "\n"
        }
    }
    func execute(in s: GuestSession) throws -> CommandOutput {
        let p = address
        let (map, src) = try s.p2m()
        guard PageGeometry.x86.frame(p) < map.nrPfns else { throw SessionError("\(hex(p)) is beyond the p2m (\(map.nrPfns) pfns, \(src.location))") }
        var base: UInt64 = 0xffff_8880_0000_0000
        if let a = s.symbols.address("page_offset_base"), let k = try? s.kernel(), let v = try? k.pageTables.readU64(a) { base = v }
        let (dm, o) = base.addingReportingOverflow(p)
        guard !o else { throw SessionError("\(hex(p)) + page_offset_base \(hex(base)) passes 2^64") }
        let kt: KVAddr? = p < 0x4000_0000 ? KVAddr(rawValue: 0xffff_ffff_8000_0000 + p) : nil
        let m = try? s.pseudoPhysical().translate(PhysAddr(rawValue: p))
        return try s.output("ptov", Result(paddr: PhysAddr(rawValue: p), directMap: KVAddr(rawValue: dm), kernelImage: kt, machine: m))
    }
}

// MARK: rd

struct Rd {
    static let spec = CommandSpec("rd", abstract: "64-bit words at a kernel virtual (default), pseudo-physical (-p) or machine (-m) address.",
                                  parameters: [.flag("physical", short: "p", "The address is pseudo-physical (translated through the p2m)."),
                                               .flag("machine", short: "m", "The address is a machine address."),
                                               .argument("address", "Address (hex) or symbol[+offset]."),
                                               .argument("count", default: "1", "Number of 64-bit words (decimal, 1 … 65536).")]) { s, w in
        try Rd(physical: w.flag("physical"), machine: w.flag("machine"), address: w.value("address"), count: w.value("count")).execute(in: s)
    }
    let physical: Bool
    let machine: Bool
    let address: String
    let count: String
    struct Result: TextResult {
        var address: Hex64; var space: AddressSpace; var words: [Hex64]; var hex: String
        /// The bytes read, which `hex` and `words` render for JSON; the text is made from them
        /// (decoding `hex` back, by String offsets, was quadratic: 65,536 words never finished).
        let bytes: [UInt8]
        enum CodingKeys: String, CodingKey { case address, space, words, hex }
        var text: String {
            var t = ""
            for line in stride(from: 0, to: bytes.count, by: 16) {
                let chunk = Array(bytes[line..<min(line + 16, bytes.count)])
                let ws = words[(line / 8)..<min(words.count, line / 8 + 2)].map { String(format: "%016llx", $0.value) }
                let ascii = String(chunk.map { (0x20..<0x7f).contains($0) ? Character(UnicodeScalar($0)) : "." })
                t += String(format: "%016llx:  ", address.value &+ UInt64(line)) + ws.joined(separator: " ").padding(toLength: 34, withPad: " ", startingAt: 0) + "  " + ascii + "\n"
            }
            return t
        }
    }

    func execute(in s: GuestSession) throws -> CommandOutput {
        if physical && machine { throw SessionError("rd: give -p or -m, not both") }
        let addr = try s.parseAddress(address)
        guard let n = parseCountArg(count), n >= 1, n <= 1 << 16 else { throw SessionError("COUNT must be 1 … 65536 (decimal), got \(count)") }
        var bytes = [UInt8](repeating: 0, count: Int(n) * 8)
        let space: AddressSpace = physical ? .pseudoPhysical : (machine ? .machine : .kernelVirtual)
        var done = 0
        try bytes.withUnsafeMutableBytes { try s.read(space, at: addr, into: $0, done: &done) }
        let words = stride(from: 0, to: bytes.count, by: 8).map { w in Hex64((0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[w + $1]) << (8 * UInt64($1)) }) }
        return try s.output("rd", Result(address: Hex64(addr), space: space, words: words, hex: bytes.map { String(format: "%02x", $0) }.joined(), bytes: bytes))
    }
}

