// Address translation layer: see Package.swift. Filled in by the translation work.
import P2MFormat
import DumpIO
