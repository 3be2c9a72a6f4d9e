// Command logic of p2m-emit, p2m-inject and p2m-analyze.
import P2MFormat
import DumpIO
import Translation
