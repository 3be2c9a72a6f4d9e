// Test-dump generator library. See Tools/gendump for the command.
import P2MFormat
