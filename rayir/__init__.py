"""rayir: neural information retrieval as a distributed batch system on Ray.

Top-level names load lazily, so light stages (index building, sparse search) do not import torch.
"""

from __future__ import annotations

from .lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "BiEncoderConfig": "models.config",
    "CrossEncoderConfig": "models.config",
    "BiEncoderModule": "modules",
    "CrossEncoderModule": "modules",
    "ScoringOutput": "modules",
    "encode_corpus": "encode.pipeline",
    "build_index": "index.build",
    "evaluate": "evaluate",
    "Searcher": "serve.coordinator",
    "search": "serve.api",
    "rerank": "serve.api",
    "fit": "train.ray_trainer",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
