"""The main job end to end on the bundled sample collection: encode → index → search → evaluate."""

import _path  # noqa: F401 - makes the submitted working directory's rayir importable

from rayir.cli import run_function
from rayir.quickstart import main

if __name__ == "__main__":
    run_function(main)
