"""Distributed corpus encoding on Ray Data into Parquet embedding shards.

``encode_corpus`` lives in :mod:`rayir.encode.pipeline`; the shard format in
:mod:`rayir.encode.formats`; manifests in :mod:`rayir.encode.manifest`.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "encode_corpus": "pipeline",
    "EncodeResult": "pipeline",
    "ChunkEncoder": "worker",
    "read_manifest": "manifest",
    "verify_manifest": "manifest",
    "SCHEMAS": "formats",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
