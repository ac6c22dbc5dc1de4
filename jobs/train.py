"""Fine-tune a bi- or cross-encoder on Ray Train (= ``rayir fit``).

python jobs/train.py --config configs/fit/minilm-scifact.yaml
ray job submit --working-dir . -- python jobs/train.py --config configs/fit/minilm-scifact.yaml
"""

import _path  # noqa: F401 - makes the submitted working directory's rayir importable

from rayir.cli import run_job

if __name__ == "__main__":
    run_job("fit")
