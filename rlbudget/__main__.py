"""``python -m rlbudget`` is the ``rlbudget`` command."""

from rlbudget.cli import main

main()
