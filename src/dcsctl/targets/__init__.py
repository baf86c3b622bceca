"""Where members run: the `Target` protocol, one class per kind of place (lab processes on
this machine, SSH hosts), and the one factory that picks it from the spec."""
