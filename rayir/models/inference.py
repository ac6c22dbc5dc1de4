"""Loading a scoring module for inference: the one recipe every worker uses.

Encoder actors, query encoders and re-rank scorers all need the same steps in the same order:
set the thread count, load the module (with config overrides), move it, switch to eval, prepare
the precision. Doing it in one place keeps them from drifting apart.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch

from .precision import prepare_for_inference


def load_for_inference(
    module_cls: type,
    model: str | Path,
    overrides: dict[str, Any],
    batch_size: int = 32,
    device: str = "cpu",
    precision: str = "float32",
    threads: int | None = None,
) -> tuple[Any, Callable[[], AbstractContextManager]]:
    """``module_cls(model, **overrides)`` ready to score: on ``device``, in eval mode, at ``precision``.

    Returns the module and the context factory every forward pass must run under."""
    if threads:
        torch.set_num_threads(threads)
    module = module_cls(model, batch_size=batch_size, **overrides).to(device)
    module.eval()
    return module, prepare_for_inference(module.model, precision, device)
