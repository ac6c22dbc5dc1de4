"""Re-rank a run with a cross-encoder or bi-encoder on a Ray Data actor pool.

    python jobs/rerank.py --model path/to/cross-encoder --run bm25.run --queries data/scifact \
        --split test --corpus data/scifact --qrels data/scifact --output reranked.run
"""

from rayir.cli import rerank, run_stage

if __name__ == "__main__":
    run_stage(rerank)
