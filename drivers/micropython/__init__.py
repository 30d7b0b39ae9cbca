"""The sensor node's firmware (MicroPython). Not deployed from here: `vhnode/` and `main.py` are copied to the
node (see README.md). The hub imports only the pure modules `vhnode.protocol`, `vhnode.pms5003` and `vhnode.node`,
which run unchanged under CPython and MicroPython."""
