"""SSH hosts: members on real machines reached over OpenSSH (`SshTarget`), their files,
their etcd install and their checks."""
