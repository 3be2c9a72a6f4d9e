// Little-endian words in byte arrays, for the non-ELF headers the containers and the injector
// read and write (kdump-compressed's disk_dump_header and kdump_sub_header, the undo journal)
// and for the records read out of a guest's memory (kallsyms, Xen's stacks); ELF headers go
// through libelf (DumpFile, Inject/ElfRecords).

/// The little-endian unsigned integer of T's width at `o`; 0 where it lies (partly) outside `b`,
/// never a trap: callers that must tell a short array check its length first.
@inline(__always) public func littleEndian<T: FixedWidthInteger & UnsignedInteger>(_ b: [UInt8], at o: Int, as: T.Type = T.self) -> T {
    let n = T.bitWidth / 8
    guard o >= 0, o <= b.count - n else { return 0 }
    var v: T = 0
    for i in 0..<n { v |= T(b[o + i]) << (8 * i) }
    return v
}

func le(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
func rd(_ b: [UInt8], _ o: Int) -> UInt64 { littleEndian(b, at: o) }
func rd4(_ b: [UInt8], _ o: Int) -> UInt32 { littleEndian(b, at: o) }
