"""Re-rank a run with a cross-encoder or bi-encoder on a Ray Data actor pool (= ``rayir re_rank``).

    python jobs/re_rank.py --model cross-encoder/ms-marco-MiniLM-L6-v2 --run bm25.run --queries data/scifact \
        --split test --corpus data/scifact --qrels data/scifact --output reranked.run
"""

import _path  # noqa: F401 - makes the submitted working directory's rayir importable

from rayir.cli import run_job

if __name__ == "__main__":
    run_job("re_rank")
