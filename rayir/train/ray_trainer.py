"""``fit``: one Lightning training run on Ray Train's ``TorchTrainer`` (DDP over ``num_workers``).

Each worker builds the module and datasets itself, trains under ``RayDDPStrategy`` +
``RayLightningEnvironment``, and reports checkpoints that hold both a Hugging Face model directory
(``model/``) and Lightning's full training state (``checkpoint.ckpt``). After a worker failure Ray
restarts the group (``max_failures``) and training resumes from the last reported checkpoint. The
finished model is copied to ``<output>/checkpoint``, which encoding and re-ranking load unchanged.
The trainer is Ray's, with two repairs for a worker lost while its group starts (``worker_groups``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ..atomic import write_json
from ..locks import output_lock
from ..loss_base import Loss
from ..options import LoraSettings
from ..ray_runtime import ensure_ray
from .loggers import check_loggers
from .options import Optimization, Scaling, TrainingData, ValidationData

CHECKPOINT_DIR = "checkpoint"
MODEL_SUBDIR = "model"
LIGHTNING_CHECKPOINT = "checkpoint.ckpt"


logger = logging.getLogger(__name__)


@dataclass
class FitResult:
    checkpoint: Path
    metrics: dict[str, float]
    steps: int
    samples: int
    seconds: float

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds else float("inf")


def fit(
    model: str,
    output: str | Path,
    data: TrainingData,
    losses: Sequence[Loss],
    kind: Literal["bi", "cross"] = "bi",
    validation: ValidationData | None = None,
    optimization: Optimization | None = None,
    scaling: Scaling | None = None,
    model_config: dict[str, Any] | None = None,
    overwrite: bool = False,
    callbacks: Sequence[Any] = (),
    loggers: Sequence[str] = ("csv",),
    adapter: LoraSettings | None = None,
) -> FitResult:
    """Fine-tune ``model`` (a bi- or cross-encoder directory) on ``data``; returns the final checkpoint.

    ``callbacks`` are extra Lightning callbacks run on every worker, or Ray Train callbacks run by its
    controller (tests inject failures with both kinds). ``loggers`` (``csv``, ``tensorboard``,
    ``wandb``) write the logged metrics under ``<output>/logs``.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.v2.api.callback import RayTrainCallback

    from .worker_groups import TorchTrainer

    optimization, scaling = optimization or Optimization(), scaling or Scaling()
    if kind not in ("bi", "cross"):
        raise ValueError(f"kind={kind!r}; expected 'bi' or 'cross'")
    if not losses:
        raise ValueError("give at least one loss")
    if scaling.num_workers < 1 or optimization.batch_size < 1:
        raise ValueError("num_workers and batch_size must be >= 1")
    if data.streamed and optimization.max_steps < 1:
        raise ValueError(f"{data.triples} is streamed (it has no length): set optimization.max_steps")
    check_loggers(list(loggers))
    out = Path(output).resolve()
    with output_lock(out):
        final = out / CHECKPOINT_DIR
        if final.exists() and not overwrite:
            raise FileExistsError(f"{final} exists: a finished training run; pass overwrite to train again")
        if overwrite:
            shutil.rmtree(out / "ray_train", ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        ensure_ray(state_api=True)  # Ray Train's controller polls the State API
        # Ray Train runs workers in their own directory: relative paths must be resolved here.
        data = _with_absolute_paths(data)
        validation = _with_absolute_paths(validation) if validation else None
        config = {
            "model": _absolute(model),
            "kind": kind,
            "data": data,
            "validation": validation,
            "losses": list(losses),
            "optimization": optimization,
            "scaling": scaling,
            "model_config": model_config or {},
            "callbacks": [c for c in callbacks if not isinstance(c, RayTrainCallback)],
            "run_key": hashlib.sha256(str(out).encode()).hexdigest()[:16],  # names worker staging dirs
            "loggers": list(loggers),
            "log_dir": str(out / "logs"),
            "adapter": adapter,
        }
        trainer = TorchTrainer(
            train_worker,
            train_loop_config=config,
            scaling_config=ScalingConfig(
                num_workers=scaling.num_workers,
                use_gpu=scaling.use_gpu,
                resources_per_worker={"CPU": scaling.cpus_per_worker},
            ),
            run_config=RunConfig(
                name="fit",
                storage_path=str(out / "ray_train"),
                failure_config=FailureConfig(max_failures=scaling.max_failures),
                checkpoint_config=CheckpointConfig(num_to_keep=scaling.keep_checkpoints),
                callbacks=[c for c in callbacks if isinstance(c, RayTrainCallback)],
            ),
        )
        start = time.perf_counter()
        result = trainer.fit()
        seconds = time.perf_counter() - start
        if result.error is not None:
            raise RuntimeError(f"training failed: {result.error}") from result.error
        if result.checkpoint is None:
            raise RuntimeError("training reported no checkpoint")
        metrics = {k: float(v) for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))}
        with result.checkpoint.as_directory() as directory:
            _install(Path(directory) / MODEL_SUBDIR, final)
        steps = int(metrics.get("step", 0))
        summary = FitResult(final, metrics, steps, int(metrics.get("samples", 0)), seconds)
        write_json(
            out / "training.json",
            {
                "model": model,
                "kind": kind,
                "checkpoint": str(final),
                "metrics": metrics,
                "steps": steps,
                "seconds": round(seconds, 2),
                "samples_per_second": round(summary.samples_per_second, 2),
                "losses": [repr(loss) for loss in losses],
                "data": asdict(data),
                "validation": asdict(validation) if validation else None,
                "optimization": asdict(optimization),
                "scaling": asdict(scaling),
                "model_config": model_config or {},
                "loggers": list(loggers),
                "adapter": asdict(adapter) if adapter and adapter.r else None,
            },
        )
        return summary


def _absolute(value: str | None) -> str | None:
    """An existing relative path made absolute; ids (``irds:…``, ``pkg:…``) and ``None`` unchanged."""
    if value is None or not Path(value).exists():
        return value
    return str(Path(value).resolve())


def _with_absolute_paths(options: Any) -> Any:
    fields = {name: _absolute(value) for name, value in asdict(options).items() if isinstance(value, str)}
    return replace(options, **fields)


def _install(source: Path, target: Path) -> None:
    """Copy the reported model directory into place atomically (a temp name, then a rename)."""
    if not (source / "config.json").exists():
        raise RuntimeError(f"the last checkpoint has no Hugging Face model at {source}")
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def train_worker(config: dict[str, Any]) -> None:
    """The per-worker loop: build module + data, train with Lightning under Ray's DDP strategy."""
    import lightning
    import ray.train
    import torch
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer

    from ..data.datamodule import RankDataModule
    from ..logs import configure_logging
    from ..models import adapters
    from ..modules import BiEncoderModule, CrossEncoderModule
    from ..ray_runtime import quiet_worker

    configure_logging(propagate=False)  # this worker's progress lines reach the driver's output, once each
    quiet_worker()
    from .callbacks import ProgressLog, ReportCheckpoint, SetDatasetEpoch
    from .loggers import experiment_loggers

    optimization: Optimization = config["optimization"]
    scaling: Scaling = config["scaling"]
    validation: ValidationData | None = config["validation"]
    if not scaling.use_gpu:
        torch.set_num_threads(max(1, scaling.cpus_per_worker))
    lightning.seed_everything(optimization.seed, workers=True, verbose=False)

    module_cls = BiEncoderModule if config["kind"] == "bi" else CrossEncoderModule
    module = module_cls(config["model"], **config["model_config"])
    if config["adapter"] and config["adapter"].r:  # LoRA: the backbone frozen, low-rank updates trained
        adapters.add_lora(module.model, config["adapter"], config["model"], config["model_config"])
    module.configure_training(
        config["losses"],
        lr=optimization.lr,
        weight_decay=optimization.weight_decay,
        warmup_steps=optimization.warmup_steps,
        measures=validation.measures if validation else ("nDCG@10",),
        lr_schedule=optimization.lr_schedule,
    )
    datamodule = RankDataModule(
        train=config["data"].build,
        batch_size=optimization.batch_size,
        val=validation.build if validation else None,
        seed=optimization.seed,
    )
    every = validation.every_n_steps if validation else None
    trainer = lightning.Trainer(
        max_epochs=optimization.max_epochs,
        max_steps=optimization.max_steps,
        accelerator="gpu" if scaling.use_gpu else "cpu",
        devices="auto",
        strategy=RayDDPStrategy(find_unused_parameters=True),  # e.g. a BERT pooler no score uses
        plugins=[RayLightningEnvironment()],
        callbacks=[
            ReportCheckpoint(config["run_key"], scaling.checkpoint_every_n_steps),
            ProgressLog(),
            SetDatasetEpoch(),
            *config["callbacks"],
        ],
        precision=optimization.precision,
        gradient_clip_val=optimization.gradient_clip or None,
        val_check_interval=every if every else 1.0,
        check_val_every_n_epoch=None if every else 1,
        limit_val_batches=1.0 if validation else 0,
        num_sanity_val_steps=0,
        logger=experiment_loggers(config["loggers"], config["log_dir"]) or False,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer = prepare_trainer(trainer)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        trainer.fit(module, datamodule=datamodule)
    else:
        with checkpoint.as_directory() as directory:
            logger.info("resuming from %s", directory)
            # weights_only: the resume path never unpickles arbitrary objects from the checkpoint.
            trainer.fit(
                module, datamodule=datamodule, ckpt_path=str(Path(directory) / LIGHTNING_CHECKPOINT), weights_only=True
            )
    wait_until_reports_are_collected()


def wait_until_reports_are_collected() -> None:
    """Return only once Ray Train's controller has taken this worker's last report.

    Ray 2.60's worker status poll reads the report queue and *then* asks whether the training
    thread still runs. A final report queued between the two (a loaded machine makes that likely)
    is dropped: the run ends with the previous checkpoint and its step count (a 4-step fit that
    reported 3 steps). The poll marks each report it takes as done, so joining the queue closes
    the window: the thread is still running until its last report is on its way to the driver.
    """
    from ray.train.v2._internal.execution.context import get_train_context

    get_train_context().get_result_queue().join()
