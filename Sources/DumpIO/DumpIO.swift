// Dump I/O layer: ELF kdump vmcores and xl dump-core files, read through libelf.
import CLibElf
import P2MFormat
