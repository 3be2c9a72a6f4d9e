import P2MTools
print("p2m-analyze: not yet implemented")
