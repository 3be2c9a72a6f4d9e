// An ELF kdump vmcore (/proc/vmcore, makedumpfile -E, Xen's crash path): PT_LOAD segments of
// machine memory. In a Xen dom0 dump p_paddr is the machine address (kexec-tools writes
// machine ranges); p_vaddr is a placeholder and means nothing.
import P2MFormat

public final class ELFVmcore: DumpContainer {
    public let elf: DumpFile
    public let memory: MachineMemoryMap
    public var path: String { elf.path }
    public var kind: DumpKind { .kdumpELF }
    public var fileSize: UInt64 { elf.fileSize }
    public var notes: [ElfNote] { elf.notes }
    public var layoutDescription: String { "\(elf.loads.count) PT_LOAD segments" }
    public var containerName: String { "ELF vmcore" }

    public init(_ d: DumpFile) throws {
        precondition(d.kind == .kdumpELF)
        elf = d
        let file = d.file
        memory = try MachineMemoryMap(path: d.path, segments: d.loads.map { l in
            MemorySegment(start: l.paddr, length: l.memsz, origin: "PT_LOAD \(l.index)") { off, buf in
                // Beyond p_filesz: /proc/vmcore never writes such a segment; makedumpfile -E does,
                // for the pages its dump level excluded at a segment's end (crash reads them as
                // zeros). They are not in the dump, and a reader is told so rather than given zeros.
                let inFile = off < l.filesz ? Int(min(UInt64(buf.count), l.filesz - off)) : 0
                if inFile < buf.count {
                    throw DumpError.notInDump(d.path, "machine address 0x\(String(l.paddr + off + UInt64(inFile), radix: 16)) lies beyond PT_LOAD \(l.index)'s p_filesz (0x\(String(l.filesz, radix: 16)) of p_memsz 0x\(String(l.memsz, radix: 16))): excluded by makedumpfile, not in the dump")
                }
                try file.read(offset: l.offset + off, into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<inFile]))
            }
        })
    }

    public func recordedRoots() throws -> [RecordedRoot] { crashRegRoots }
}
