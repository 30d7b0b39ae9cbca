"""Reference commune cloud: the server end of every protocol the hub speaks (docs/protocol.md)."""
