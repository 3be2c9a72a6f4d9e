print("p2m-bench: not yet implemented")
