"""Encode queries the way an index's documents were encoded (same model, config and precision)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..encoders import EncoderSpec, QueryEncoder, Runtime, load_query_encoder


def index_query_encoder(
    index_dir: str | Path, index_manifest: dict[str, Any], device: str = "cpu", batch_size: int = 32
) -> QueryEncoder:
    """The query encoder an index's manifest records. Files it needs (BM25's statistics) are read
    from the index directory itself, never from the embeddings it was built from."""
    recorded = index_manifest["query_encoder"]
    spec = EncoderSpec(
        recorded["model"], recorded["config_overrides"], recorded["precision"], recorded["model_fingerprint"]
    )
    files = Path(index_dir) / recorded["files"] if recorded["files"] else None
    return load_query_encoder(spec, files, index_manifest["type"], Runtime(device=device, batch_size=batch_size))
