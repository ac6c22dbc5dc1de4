"""Stage entry points shared by ``jobs/*.py`` and the Python API.

Each function is one stage with typed arguments, so jsonargparse turns it into a command line
that also reads YAML (``--config x.yaml``) and rejects unknown keys.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from .encode import encode_corpus
from .index import build_index


def index(
    corpus: str,
    output: str,
    model: str = "bm25",
    factory: str = "Flat",
    num_shards: int = 1,
    docs_per_shard: int = 4096,
    batch_size: int = 32,
    num_encoders: int = 1,
    threads_per_encoder: int | None = None,
    gpus_per_encoder: float = 0,
    precision: Literal["float32", "bfloat16"] = "float32",
    retries: int = 1,
    overwrite: bool = False,
    model_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Encode a corpus on Ray Data and build a sharded index.

    Args:
        corpus: Documents: a BEIR directory, JSONL/TSV/TREC/Parquet file, or ``irds:<id>``.
        output: Directory for ``embeddings/`` (encoding) and ``index/`` (index shards).
        model: A bi-encoder checkpoint directory, or ``bm25``.
        factory: Faiss factory string for dense / multi-vector indexes (``Flat``, ``IVF256,Flat``,
            ``HNSW32``, ``IVF256,PQ16``); sparse models always use the exact inverted index.
        num_shards: Index shards (one Ray task each to build, one actor each to serve).
        docs_per_shard: Documents per embedding shard (the unit of work and of resumption).
        batch_size: Texts per forward pass.
        num_encoders: Encoder actors (each loads the model once).
        threads_per_encoder: CPU threads per encoder (default: CPUs split evenly).
        gpus_per_encoder: GPUs per encoder actor (0 = CPU).
        precision: ``bfloat16`` runs the encoder under bf16 autocast.
        retries: Re-runs of unfinished shards after a failure within this job.
        overwrite: Replace an existing encoding/index in ``output``.
        model_config: Model config overrides, e.g. ``{doc_max_length: 256}`` (BM25: ``k1``, ``b``).
    """
    out = Path(output)
    encoded = encode_corpus(
        model, corpus, out / "embeddings", docs_per_shard=docs_per_shard, batch_size=batch_size,
        num_encoders=num_encoders, threads_per_encoder=threads_per_encoder, gpus_per_encoder=gpus_per_encoder,
        precision=precision, retries=retries, overwrite=overwrite, **(model_config or {}),
    )
    manifest = build_index(out / "embeddings", out / "index", num_shards=num_shards,
                           factory="inverted" if encoded.manifest["mode"] == "sparse" else factory,
                           overwrite=True)
    summary = {
        "stage": "index", "documents": encoded.documents, "mode": encoded.manifest["mode"],
        "index": str(out / "index"), "shards": num_shards, "factory": manifest["factory"],
        "encode_seconds": round(encoded.seconds, 2), "docs_per_second": round(encoded.docs_per_second, 1),
        "build_seconds": manifest["build_seconds"],
    }
    print(json.dumps(summary), flush=True)
    return summary


def run_stage(function) -> None:
    """``python jobs/x.py --flags`` / ``--config x.yaml`` for one stage function."""
    from jsonargparse import auto_cli

    try:
        auto_cli(function, as_positional=False)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
