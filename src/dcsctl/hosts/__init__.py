"""Hosts run argv lists and write files; the lab uses the local machine."""
