"""SSH hosts: members on real machines reached over OpenSSH (`ssh_target`), their files,
their etcd install and their checks."""
