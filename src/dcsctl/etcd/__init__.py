"""Everything that knows etcd: its binaries, its answers, its errors, and the client."""
