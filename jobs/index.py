"""Encode a corpus on Ray Data and build a sharded index.

    python jobs/index.py --corpus data/scifact --model path/to/model --output outputs/scifact
    ray job submit --working-dir . -- python jobs/index.py --config configs/index.yaml
"""

from rayir.cli import index, run_stage

if __name__ == "__main__":
    run_stage(index)
