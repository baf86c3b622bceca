"""Use cases, one module per verb family; each returns a typed result and prints nothing."""
