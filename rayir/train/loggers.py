"""Experiment loggers for ``rayir fit``: Lightning's CSV, TensorBoard and Weights & Biases loggers,
chosen by name in the config and writing under ``<output>/logs`` (rank 0 writes, as Lightning does)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError

LoggerName = Literal["csv", "tensorboard", "wandb"]

# The package each logger needs beyond Lightning (TensorBoard's writer is either of two).
_NEEDS = {"tensorboard": ("tensorboardX", "tensorboard"), "wandb": ("wandb",)}


def check_loggers(names: list[str]) -> None:
    """In the driver, before Ray starts: each name once, and its package installed."""
    if len(set(names)) != len(names):
        raise ConfigError(f"loggers={names}: name each logger once")
    for name in names:
        packages = _NEEDS.get(name, ())
        if packages and not any(importlib.util.find_spec(p) for p in packages):
            extra = "pip install 'rayir[tensorboard]'" if name == "tensorboard" else f"pip install {packages[0]}"
            raise ConfigError(f"loggers: {name} needs the {packages[0]} package ({extra})")


def experiment_loggers(names: list[str], directory: str | Path) -> list[Any]:
    """The Lightning loggers, in a fixed sub-directory each, so that a resumed run appends to its own."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

    made: list[Any] = []
    for name in names:
        if name == "csv":
            made.append(CSVLogger(str(directory), name="csv", version=""))
        elif name == "tensorboard":
            made.append(TensorBoardLogger(str(directory), name="tensorboard", version="", default_hp_metric=False))
        elif name == "wandb":
            made.append(WandbLogger(save_dir=str(directory), project="rayir"))
        else:
            raise ConfigError(f"unknown logger {name!r}; expected csv, tensorboard or wandb")
    return made
