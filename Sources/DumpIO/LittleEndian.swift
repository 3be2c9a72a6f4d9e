// Little-endian words in byte arrays, for the non-ELF headers the containers and the injector
// read and write (kdump-compressed's disk_dump_header and kdump_sub_header, the undo journal);
// ELF headers go through libelf (DumpFile, Inject/ElfRecords).
func le(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
func rd(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
func rd4(_ b: [UInt8], _ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) } }
