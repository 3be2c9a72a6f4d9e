import Foundation
import Testing

/// Runs an external program; a missing program is a test failure, never a silent pass.
public struct ToolRun {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public init(status: Int32, stdout: String, stderr: String) { self.status = status; self.stdout = stdout; self.stderr = stderr }
}

public func runTool(_ argv: [String], stdin: String? = nil) throws -> ToolRun {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out; p.standardError = err; p.standardInput = inp
    try p.run()
    if let s = stdin { inp.fileHandleForWriting.write(Data(s.utf8)) }
    try inp.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return ToolRun(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

public func requireTool(_ path: String) {
    if !FileManager.default.isExecutableFile(atPath: path) {
        Issue.record("REQUIRED EXTERNAL TOOL MISSING: \(path) — install it (make deps / .ci/run does)")
    }
}

public func tempDir() throws -> String {
    let d = NSTemporaryDirectory() + "p2mtest-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// python3-libkdumpfile script: open a dump, force the page-table root to the machine
/// address of dom0's top table (cr3 from the manifest), read each sample by KVADDR.
public let libkdumpfileSampleScript = """
import sys, json, kdumpfile, addrxlat
path = sys.argv[1]
man = json.load(open(sys.argv[2]))
k = kdumpfile.kdumpfile(path)
k.attr['addrxlat.ostype'] = 'linux'
k.attr['addrxlat.force.virt_bits'] = 48
s = k.get_addrxlat_sys()
m = s.get_meth(addrxlat.SYS_METH_PGT)
m.root = addrxlat.FullAddress(addrxlat.MACHPHYSADDR, man['cr3'])
s.set_meth(addrxlat.SYS_METH_PGT, m)
bad = 0
for smp in man['samples']:
    n = len(smp['bytes']) // 2
    got = k.read(addrxlat.KVADDR, smp['vaddr'], n).hex()
    if got != smp['bytes']:
        bad += 1
        print('MISMATCH', hex(smp['vaddr']), smp['what'], got, smp['bytes'])
print('format', k.attr['file.format'], 'samples', len(man['samples']), 'bad', bad)
"""

/// Two calls at once (crash takes ~14 s to load a vmlinux, and the before/after comparisons
/// run it on two dumps): their results in the order given.
public func concurrently<T>(_ a: @escaping () throws -> T, _ b: @escaping () throws -> T) throws -> (T, T) {
    var ra: Result<T, Error>?, rb: Result<T, Error>?
    let lock = NSLock()
    DispatchQueue.concurrentPerform(iterations: 2) { i in
        let r = Result { try (i == 0 ? a : b)() }
        lock.lock(); if i == 0 { ra = r } else { rb = r }; lock.unlock()
    }
    return (try ra!.get(), try rb!.get())
}
