"""``python -m rlbudget.cli`` is the ``rlbudget`` command."""

from rlbudget.cli import main

main()
