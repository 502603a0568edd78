"""One module per wrctl command: resolve arguments, call the libraries, report."""
