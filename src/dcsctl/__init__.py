"""dcsctl: a secure etcd DCS for Patroni, from one spec."""
