from dcsctl.cli import run

run()
