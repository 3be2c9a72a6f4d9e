import P2MTools
print("p2m-inject: not yet implemented")
