"""``python -m rayir`` = the ``rayir`` console script."""

from .cli import main

main()
