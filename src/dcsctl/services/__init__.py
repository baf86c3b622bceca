"""Services start and stop an etcd member: lab processes now, systemd units on real hosts."""
