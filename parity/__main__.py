"""``python -m parity``: the command line."""

from parity.cli.app import main

main()
