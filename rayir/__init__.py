"""rayir: neural information retrieval as a distributed batch system on Ray.

Top-level names load lazily, so light stages (index building, sparse search) do not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "BiEncoderConfig": "rayir.models.config",
    "CrossEncoderConfig": "rayir.models.config",
    "BiEncoderModule": "rayir.modules",
    "CrossEncoderModule": "rayir.modules",
    "ScoringOutput": "rayir.modules",
    "encode_corpus": "rayir.encode.pipeline",
    "build_index": "rayir.index.build",
    "evaluate": "rayir.evaluate",
    "Searcher": "rayir.serve.coordinator",
    "search": "rayir.serve.api",
    "rerank": "rayir.serve.api",
    "fit": "rayir.train.ray_trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rayir' has no attribute {name!r}")
