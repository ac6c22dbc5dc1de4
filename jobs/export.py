"""Export a dense bi-encoder as a sentence-transformers directory (= ``rayir export``).

python jobs/export.py --checkpoint outputs/fit/minilm-scifact/checkpoint --output outputs/minilm-st
"""

import _path  # noqa: F401 - makes the submitted working directory's rayir importable

from rayir.cli import run_job

if __name__ == "__main__":
    run_job("export")
