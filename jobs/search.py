"""Search a sharded index and write a TREC run (prints a metrics JSON line when qrels are given).

    python jobs/search.py --index outputs/scifact/index --queries data/scifact --split test \
        --qrels data/scifact --output outputs/scifact/test.run
"""

from rayir.cli import run_stage, search

if __name__ == "__main__":
    run_stage(search)
