import CLZ4
