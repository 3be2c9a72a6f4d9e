import P2MTools
print("p2m-emit: not yet implemented")
