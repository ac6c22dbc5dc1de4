"""Fine-tuning on Ray Train: Lightning modules under ``TorchTrainer`` with ``RayDDPStrategy``.

``rayir.train.fit`` (and ``rayir fit`` / ``jobs/fit.py``) runs one training job and leaves a Hugging
Face checkpoint directory that the encode, search and re-rank stages load unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = ["fit"]


def __getattr__(name: str) -> Any:
    if name == "fit":
        from .ray_trainer import fit

        return fit
    raise AttributeError(name)
