"""The `callbuffer` command line: one module per command group."""
