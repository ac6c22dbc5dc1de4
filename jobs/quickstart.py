"""Exhaustive bi-encoder search + evaluation on the bundled sample collection (single process)."""

from jsonargparse import auto_cli

from rayir.quickstart import main

if __name__ == "__main__":
    auto_cli(main)
