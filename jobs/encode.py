"""Encode a corpus into Parquet embedding shards on Ray Data (= ``rayir encode``).

python jobs/encode.py --corpus data/scifact --model sentence-transformers/all-MiniLM-L6-v2 \
    --output outputs/scifact/embeddings
"""

import _path  # noqa: F401 - makes the submitted working directory's rayir importable

from rayir.cli import run_job

if __name__ == "__main__":
    run_job("encode")
