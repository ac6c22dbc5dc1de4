"""Encode a corpus on Ray Data and build a sharded index (= ``rayir index``).

python jobs/index.py --corpus data/scifact --model sentence-transformers/all-MiniLM-L6-v2 --output outputs/scifact
ray job submit --working-dir . -- python jobs/index.py --config configs/index/scifact-minilm.yaml \
    --corpus /mnt/rayir/data/scifact --output /mnt/rayir/outputs/scifact-minilm
"""

import _path  # noqa: F401 - makes the submitted working directory's rayir importable

from rayir.cli import run_job

if __name__ == "__main__":
    run_job("index")
