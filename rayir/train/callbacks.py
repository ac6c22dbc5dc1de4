"""Lightning callbacks for Ray Train workers: checkpoint reporting, progress lines, per-epoch data."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import lightning
import ray.train
import torch
from ray.train.lightning import RayTrainReportCallback

from ..progress import duration

logger = logging.getLogger(__name__)


class ReportCheckpoint(RayTrainReportCallback):
    """Report metrics plus a checkpoint holding ``model/`` (Hugging Face) and ``checkpoint.ckpt`` (Lightning).

    Ray's own callback saves only the Lightning file; the Hugging Face directory is what the
    encode / re-rank stages load, and the Lightning file is what a restarted run resumes from.
    Reports every ``every_n_steps`` optimiser steps, and always at the end of each epoch.
    """

    def __init__(self, run_key: str, every_n_steps: int | None = None) -> None:
        super().__init__()
        # Ray names its staging directory by job id and rank only, so two fits on one machine under
        # two Ray instances (each job 01000000) shared one. This one is named by the run's output
        # (``run_key``) and rank; a restarted worker clears what a killed one left there.
        rank = ray.train.get_context().get_world_rank()
        self.tmpdir_prefix = os.path.join(tempfile.gettempdir(), f"rayir-fit-staging-{run_key}-rank{rank}")
        shutil.rmtree(self.tmpdir_prefix, ignore_errors=True)
        self.every_n_steps = every_n_steps
        self._last_step = -1
        self._samples = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += len(batch)
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._report(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._report(trainer, pl_module)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        """Remove this worker's staging directory (emptied after each report, but left by Ray)."""
        shutil.rmtree(self.tmpdir_prefix, ignore_errors=True)

    # Saved in the Lightning checkpoint, so a resumed run keeps counting from where it stopped.
    def state_dict(self) -> dict[str, int]:
        return {"samples": self._samples}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._samples = int(state_dict["samples"])

    def _report(self, trainer: lightning.Trainer, pl_module) -> None:
        import ray.train
        from ray.train import Checkpoint

        if trainer.global_step == self._last_step:
            return
        self._last_step = trainer.global_step
        directory = Path(self.tmpdir_prefix, f"step-{trainer.global_step}")
        directory.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(directory / self.CHECKPOINT_NAME, weights_only=False)  # collective
        if trainer.global_rank == 0:
            pl_module.save_pretrained(directory / "model")
        samples = torch.tensor(float(self._samples))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(samples)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics.update(epoch=trainer.current_epoch, step=trainer.global_step, samples=int(samples))
        ray.train.report(metrics=metrics, checkpoint=Checkpoint.from_directory(str(directory)))
        trainer.strategy.barrier()
        shutil.rmtree(directory, ignore_errors=True)


class ProgressLog(lightning.Callback):
    """Progress lines on stderr from rank 0: after the first step, then every ``every_n_steps`` steps
    or ``RAYIR_PROGRESS_SECONDS`` (default 10), and at the last step: step, loss, samples/s and time
    left. Rates count from the first finished step, so start-up does not drag them down."""

    def __init__(self, every_n_steps: int = 10) -> None:
        self.every_n_steps = every_n_steps
        self.interval = float(os.environ.get("RAYIR_PROGRESS_SECONDS", "10"))
        self._first: tuple[float, int, int] | None = None  # (time, step, samples) at the first step
        self._last = 0.0
        self._samples = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._first, self._last, self._samples = None, 0.0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += len(batch) * trainer.world_size
        if trainer.global_rank != 0:
            return
        now, step, total = time.perf_counter(), trainer.global_step, trainer.estimated_stepping_batches
        if self._first is None:
            self._first = (now, step, self._samples)
        due = step == self._first[1] or step >= total or step % self.every_n_steps == 0
        if not due and now - self._last < self.interval:
            return
        self._last = now
        loss = trainer.callback_metrics.get("train_loss")
        shown = float(loss) if loss is not None else float("nan")
        line = f"fit: step {step}/{total} ({100 * step / max(total, 1):.0f}%), loss {shown:.4f}"
        since, first_step, first_samples = self._first
        if now > since and step > first_step:
            steps_per_second = (step - first_step) / (now - since)
            line += f", {(self._samples - first_samples) / (now - since):.1f} samples/s"
            line += f", {duration((total - step) / steps_per_second)} left"
        logger.info("%s", line)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.global_rank == 0:
            found = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
            if found:
                logger.info("step %d validation %s", trainer.global_step, found)


class SetDatasetEpoch(lightning.Callback):
    """Tell the training dataset which epoch starts, so it can redraw its negatives.

    Lightning passes the epoch to a distributed sampler but not to the dataset; datasets with a
    ``set_epoch`` method (``QrelsDataset(fresh_negatives=True)``) get it here, on every worker and
    after a resume alike.
    """

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        dataset = getattr(trainer.train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(trainer.current_epoch)
