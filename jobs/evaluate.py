"""Score a TREC run with ir_measures (= ``rayir evaluate``).

python jobs/evaluate.py --run outputs/scifact/test.run --qrels data/scifact --split test
"""

import _path  # noqa: F401 - makes the submitted working directory's rayir importable

from rayir.cli import run_job

if __name__ == "__main__":
    run_job("evaluate")
