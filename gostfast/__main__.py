"""``python -m gostfast`` = the ``gostfast`` command."""

from gostfast.cli import main

main()
