import DumpGen
print("p2m-gendump: not yet implemented")
