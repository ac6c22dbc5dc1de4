"""Distributed corpus encoding on Ray Data into Parquet embedding shards.

``encode_corpus`` lives in :mod:`rayir.encode.pipeline`; the shard format in
:mod:`rayir.encode.formats`; manifests in :mod:`rayir.encode.manifest`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "encode_corpus": "pipeline", "EncodeResult": "pipeline", "ChunkEncoder": "worker",
    "read_manifest": "manifest", "verify_manifest": "manifest", "SCHEMAS": "formats",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
