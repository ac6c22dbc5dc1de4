"""Encode a corpus on Ray Data and build a sharded index (= ``rayir index``).

python jobs/index.py --corpus data/scifact --model path/to/model --output outputs/scifact
ray job submit --working-dir . -- python jobs/index.py --config configs/index/minilm-scifact.yaml
"""

import _path  # noqa: F401 - makes the submitted working directory's rayir importable

from rayir.cli import run_job

if __name__ == "__main__":
    run_job("index")
