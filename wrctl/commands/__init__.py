"""One module per command group: each command's signature and its body, which resolves the
arguments, calls the libraries and reports. Imports beyond typer happen inside the bodies."""
