"""Training throughput: rayir on Ray Train (1 and 2 workers) against a plain Lightning Trainer.

All three train the same module (all-MiniLM-L6-v2, in-batch cross-entropy) on the same samples with
the same global batch, on the same machine in one run: plain Lightning in this process with all
CPU threads; Ray Train with 1 worker holding all CPUs; Ray Train with 2 workers of 1 CPU each and
half the batch each (DDP, cross-worker in-batch negatives). Reported: steady-state samples/s (after
``--warmup`` steps, timed inside the training loop) and end-to-end samples/s (wall time of the whole
job, start-up included), each with its ratio to plain Lightning.

    python benchmarks/train.py --data ../shared/data/scifact --run outputs/scifact-bm25/train.run
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import lightning
import ray
import torch

from rayir.data.datamodule import RankDataModule
from rayir.losses import InBatchCrossEntropy
from rayir.modules import BiEncoderModule
from rayir.resources import default_model_path
from rayir.train.options import Optimization, Scaling, TrainingData
from rayir.train.ray_trainer import fit


class StepClock(lightning.Callback):
    """Rank 0 writes the time between the end of step ``warmup`` and the last step to ``path``."""

    def __init__(self, path: str, warmup: int) -> None:
        self.path, self.warmup = path, warmup
        self.start: float | None = None
        self.samples = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start, self.samples = time.perf_counter(), 0
        elif self.start is not None:
            self.samples += len(batch) * trainer.world_size

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_rank == 0 and self.start is not None:
            Path(self.path).write_text(
                json.dumps({"seconds": time.perf_counter() - self.start, "samples": self.samples})
            )


def plain_lightning(model: str, data: TrainingData, opt: Optimization, clock: StepClock, threads: int) -> None:
    torch.set_num_threads(threads)
    lightning.seed_everything(opt.seed, verbose=False)
    module = BiEncoderModule(model, doc_max_length=256).configure_training([InBatchCrossEntropy(0.05)], lr=opt.lr)
    datamodule = RankDataModule(train=data.build, batch_size=opt.batch_size, seed=opt.seed)
    trainer = lightning.Trainer(
        max_steps=opt.max_steps,
        accelerator="cpu",
        devices=1,
        precision=opt.precision,
        callbacks=[clock],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=datamodule)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="BEIR directory with a train split")
    parser.add_argument("--run", help="hard-negative run for the train queries (else positives only)")
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16, help="global batch (queries per step)")
    parser.add_argument("--steps", type=int, default=14)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--precision", default="bf16-mixed")
    args = parser.parse_args()

    cpus = os.cpu_count() or 2
    model = default_model_path()
    data = TrainingData(
        queries=args.data,
        corpus=args.data,
        split="train",
        qrels=args.data,
        run=args.run,
        num_negatives=args.negatives if args.run else 0,
        depth=30,
    )
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, workers in (
            ("plain Lightning (1 process)", 0),
            ("Ray Train, 1 worker", 1),
            ("Ray Train, 2 workers", 2),
        ):
            clock = StepClock(f"{tmp}/{workers}.json", args.warmup)
            batch = args.batch_size // max(workers, 1)
            opt = Optimization(batch_size=batch, max_steps=args.steps, precision=args.precision, lr=2e-5)
            start = time.perf_counter()
            if workers == 0:
                plain_lightning(model, data, opt, clock, cpus)
            else:
                fit(
                    model,
                    f"{tmp}/out{workers}",
                    data,
                    [InBatchCrossEntropy(0.05)],
                    optimization=opt,
                    scaling=Scaling(num_workers=workers, cpus_per_worker=cpus // workers, max_failures=0),
                    model_config={"doc_max_length": 256},
                    callbacks=[clock],
                )
            wall = time.perf_counter() - start
            steady = json.loads(Path(clock.path).read_text())
            rows.append((name, steady["samples"] / steady["seconds"], args.steps * args.batch_size / wall))
    base_steady, base_wall = rows[0][1], rows[0][2]
    print(
        f"\nMiniLM, in-batch CE + {data.num_negatives} hard negatives, global batch {args.batch_size}, "
        f"{args.steps} steps, {args.precision}, {cpus} CPUs"
    )
    print("| setup | steady samples/s | vs plain | end-to-end samples/s | vs plain |")
    print("|---|---|---|---|---|")
    for name, steady, wall in rows:
        print(f"| {name} | {steady:.2f} | {steady / base_steady:.2f}x | {wall:.2f} | {wall / base_wall:.2f}x |")


if __name__ == "__main__":
    main()
