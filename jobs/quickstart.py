"""The main job end to end on the bundled sample collection: encode → index → search → evaluate."""

from rayir.cli import run_stage
from rayir.quickstart import main

if __name__ == "__main__":
    run_stage(main)
