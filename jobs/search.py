"""Search a sharded index, write a TREC run, print metrics when qrels are given (= ``rayir search``).

    python jobs/search.py --index outputs/scifact/index --queries data/scifact --split test \
        --qrels data/scifact --output outputs/scifact/test.run
"""

import _path  # noqa: F401 - makes the submitted working directory's rayir importable

from rayir.cli import run_job

if __name__ == "__main__":
    run_job("search")
