import DumpGen
import Foundation

/// The four layouts p2m-inject writes into, small (only written pages): an ELF vmcore with slack
/// before its first PT_LOAD data, one laid out as makedumpfile -E does (none), an xl dump-core and
/// a kdump-compressed file. (name, dump, its System.map), made in `d`.
func injectionLayouts(in d: String, seed: UInt64) throws -> [(name: String, path: String, map: String)] {
    var o = Dom0DumpOptions(); o.guestMiB = 96; o.machineMiB = 256; o.onlyWrittenPages = true; o.seed = seed
    let slack = try DumpGenerator.generateDom0(o, to: d + "/slack.vmcore")
    o.makedumpfileELayout = true
    let tight = try DumpGenerator.generateDom0(o, to: d + "/tight.vmcore")
    var x = XLDumpOptions(); x.guestMiB = 96; x.onlyWrittenPages = true; x.seed = seed
    let xl = try DumpGenerator.generateXL(x, to: d + "/domU.xcore")
    var k = KdumpWriteOptions(); k.excludeZeroPages = true
    try KdumpWriter.write(fromELF: slack.path, to: d + "/dom0.kdump", k)
    return [("ELF slack", slack.path, slack.systemMapPath), ("ELF makedumpfile -E", tight.path, tight.systemMapPath),
            ("xl dump-core", xl.path, xl.systemMapPath), ("kdump-compressed", d + "/dom0.kdump", slack.systemMapPath)]
}
