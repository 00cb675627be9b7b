"""The ``kptool`` command line: thin layers that parse, call the library and print."""
