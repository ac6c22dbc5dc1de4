"""``encode_corpus``: a corpus in, Parquet embedding shards and a verified manifest out, on Ray Data.

Output directory::

    manifest.json            written last: the directory is complete (see manifest.py)
    embeddings/part-*.parquet one shard per staged chunk (schemas in formats.py)
    staging/                 chunked document texts; removed after success unless keep_staging

A crash leaves finished shards in place; running the same call again encodes only what is
missing. ``retries`` re-runs the pending chunks within one call after a failure.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..atomic import sha256_file, write_json
from ..models.loaders import load_bi_encoder
from ..models.precision import PRECISIONS
from ..ray_runtime import ensure_ray
from .manifest import FORMAT_VERSION, MANIFEST, model_fingerprint, verify_manifest, verify_shard_against_chunk
from .staging import Chunk, stage_corpus
from ..models.bm25 import BM25Model, bm25_fingerprint
from .worker import BM25ChunkEncoder, ChunkEncoder, analyse_chunk, shard_name



@dataclass
class EncoderSpec:
    """What the actors run and what the manifest records about the model."""

    encoder_cls: type
    constructor: dict[str, Any]
    mode: str
    dim: int | None
    fingerprint: str
    model_config: dict[str, Any]
    needs_corpus_statistics: bool = False
    model_dir: Path | None = None


def _neural_spec(model: str, overrides: dict[str, Any]) -> EncoderSpec:
    probe, _ = load_bi_encoder(model, **overrides)
    return EncoderSpec(
        encoder_cls=ChunkEncoder,
        constructor={"model": model, "overrides": overrides},
        mode=probe.config.mode,
        dim=probe.embedding_dim,
        fingerprint=model_fingerprint(probe),
        model_config=json.loads(probe.config.to_json_string(use_diff=False)),
    )


def _bm25_spec(overrides: dict[str, Any]) -> EncoderSpec:
    unknown = sorted(set(overrides) - {"k1", "b"})
    if unknown:
        raise ValueError(f"bm25 takes k1 and b only; unknown: {unknown}")
    k1, b = float(overrides.get("k1", 0.9)), float(overrides.get("b", 0.4))
    return EncoderSpec(
        encoder_cls=BM25ChunkEncoder, constructor={}, mode="sparse", dim=None, fingerprint=bm25_fingerprint(k1, b),
        model_config={"model_type": "bm25", "mode": "sparse", "similarity": "dot", "k1": k1, "b": b},
        needs_corpus_statistics=True,
    )


def _fit_bm25(spec: EncoderSpec, chunks: list[Chunk], staging: Path, model_dir: Path, in_process: bool) -> EncoderSpec:
    """Collection statistics from all chunks (one Ray task each, or in this process), saved as the
    BM25 model. Each chunk's analysis is kept beside it, so the encoders do not analyse again."""
    from collections import Counter

    if in_process:
        parts = [analyse_chunk(str(staging), c.path) for c in chunks]
    else:
        import ray

        parts = ray.get([ray.remote(analyse_chunk).remote(str(staging), c.path) for c in chunks])
    df: Counter = Counter()
    length = documents = 0
    for part_df, part_length, part_docs in parts:
        df.update(part_df)
        length += part_length
        documents += part_docs
    BM25Model.save(model_dir, df, length, documents, spec.model_config["k1"], spec.model_config["b"])
    _log(f"bm25 statistics: {documents} documents, {len(df)} terms, avg length {length / max(documents, 1):.1f}")
    return EncoderSpec(**{**spec.__dict__, "constructor": {"bm25_dir": str(model_dir)}, "dim": len(df),
                          "needs_corpus_statistics": False, "model_dir": model_dir})


@dataclass
class EncodeResult:
    output_dir: Path
    manifest: dict[str, Any]
    encoded_shards: int
    seconds: float
    busy_seconds: dict[int, float] | None = None  # per encoder process: time spent on chunks

    @property
    def encoder_docs_per_second(self) -> float:
        """Throughput of the encoders once running (excludes start-up, staging and verification)."""
        if not self.busy_seconds:
            return float("nan")
        encoded = sum(s["rows"] for s in self.manifest["shards"])
        return encoded / max(self.busy_seconds.values())

    @property
    def documents(self) -> int:
        return self.manifest["documents"]

    @property
    def docs_per_second(self) -> float:
        return self.documents / self.seconds if self.seconds else float("inf")


def _log(message: str) -> None:
    print(f"[rayir.encode] {message}", file=sys.stderr, flush=True)


def _pending(chunks: list[Chunk], shards: Path) -> list[Chunk]:
    """Chunks whose shard is absent or does not match the chunk (a shard from an older attempt)."""
    pending = []
    for chunk in chunks:
        shard = shards / shard_name(chunk.index)
        if not shard.exists() or pq.ParquetFile(shard).metadata.num_rows != chunk.rows:
            pending.append(chunk)
    for leftover in shards.glob(".part-*.tmp"):  # temp files of a killed writer
        leftover.unlink(missing_ok=True)
    return pending


def encode_corpus(
    model: str | Path,
    corpus: str | Path,
    output_dir: str | Path,
    *,
    docs_per_shard: int = 4096,
    batch_size: int = 32,
    num_encoders: int = 1,
    threads_per_encoder: int | None = None,
    gpus_per_encoder: float = 0,
    precision: str = "float32",
    retries: int = 1,
    overwrite: bool = False,
    keep_staging: bool = False,
    in_process: bool = False,
    encoder_cls: type = ChunkEncoder,
    **config_overrides: Any,
) -> EncodeResult:
    """Encode every document of ``corpus`` with the bi-encoder at ``model`` into ``output_dir``.

    ``num_encoders`` actors each load the model once; ``gpus_per_encoder > 0`` places them on GPUs,
    otherwise each uses ``threads_per_encoder`` CPU threads (default: the cluster's CPUs split
    evenly). ``precision="bfloat16"`` runs the encoder in bf16 (see :mod:`rayir.models.precision`;
    vectors are stored as float32). ``config_overrides`` (e.g. ``doc_max_length=256``) adjust the model config.
    ``in_process=True`` runs the same encoder in this process without Ray: for small corpora and
    notebooks, where starting actors costs more than the encoding (same files, same manifest).
    """
    import ray

    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {PRECISIONS}")
    if num_encoders < 1 or batch_size < 1 or retries < 0:
        raise ValueError("num_encoders and batch_size must be >= 1, retries >= 0")
    if in_process and num_encoders != 1:
        raise ValueError(f"in_process runs one encoder in this process; num_encoders={num_encoders} does not apply")
    output_dir = Path(output_dir)
    if overwrite and output_dir.exists():
        shutil.rmtree(output_dir)

    started = time.perf_counter()
    if str(model) == "bm25":
        spec = _bm25_spec(config_overrides)
    else:
        spec = _neural_spec(str(model), config_overrides)
    settings = {
        "model": str(model),
        "model_fingerprint": spec.fingerprint,
        "config_overrides": config_overrides,
        "corpus": str(corpus),
        "docs_per_shard": docs_per_shard,
        "precision": precision,
    }

    if (output_dir / MANIFEST).exists():
        manifest = verify_manifest(output_dir)  # counts, checksums, unique ids
        if manifest["settings"] != settings:
            raise ValueError(f"{output_dir}: holds a finished encoding with other settings; use overwrite=True")
        _log(f"{output_dir} is already complete and verified ({manifest['documents']} documents)")
        return EncodeResult(output_dir, manifest, 0, time.perf_counter() - started)

    staging, shards = output_dir / "staging", output_dir / "embeddings"
    shards.mkdir(parents=True, exist_ok=True)
    chunks = stage_corpus(corpus, staging, docs_per_shard, settings)
    total_docs = sum(c.rows for c in chunks)
    pending = _pending(chunks, shards)
    _log(f"{total_docs} documents in {len(chunks)} shards; {len(pending)} to encode")

    if not in_process:
        ensure_ray()
    if spec.needs_corpus_statistics:
        spec = _fit_bm25(spec, chunks, staging, output_dir / "bm25", in_process)
    if threads_per_encoder is None and not in_process:
        threads_per_encoder = max(1, int(ray.cluster_resources().get("CPU", 1)) // num_encoders)
    encoded = 0
    busy: dict[int, float] = {}
    for attempt in range(retries + 1):
        if not pending:
            break
        try:
            constructor = dict(
                spec.constructor, staging_dir=str(staging), shard_dir=str(shards), batch_size=batch_size,
                device="cuda" if gpus_per_encoder else "cpu", precision=precision, threads=threads_per_encoder,
            )
            encoder = spec.encoder_cls if encoder_cls is ChunkEncoder else encoder_cls
            if in_process:
                encoded += _run_in_process(pending, encoder, constructor, busy)
            else:
                encoded += _run_encoders(pending, encoder, constructor, num_encoders, gpus_per_encoder, busy)
        except Exception as err:  # noqa: BLE001 - any encoder failure: resume from the shards on disk
            pending = _pending(chunks, shards)
            done = len(chunks) - len(pending)
            if attempt == retries:
                raise RuntimeError(
                    f"encoding failed with {done}/{len(chunks)} shards finished ({type(err).__name__}: {err}); "
                    "run the same command again to resume"
                ) from err
            _log(f"attempt {attempt + 1} failed ({type(err).__name__}); retrying {len(pending)} shards")
            continue
        pending = _pending(chunks, shards)

    manifest = _finish(output_dir, chunks, staging, settings, spec)
    if not keep_staging:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.perf_counter() - started
    _log(f"done: {manifest['documents']} documents, {len(chunks)} shards, {encoded} encoded now, "
         f"{seconds:.1f}s, {output_dir}")
    return EncodeResult(output_dir, manifest, encoded, seconds, busy)


def _run_encoders(pending, encoder_cls, constructor, num_encoders, gpus, busy: dict[int, float]) -> int:
    """One Ray Data pass over the pending chunks. Ray Data restarts encoder actors that die (lost
    node, OOM) and re-submits their chunk; an exception raised by the encoder fails the pass and
    ``encode_corpus`` retries what is still missing."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    dataset = ray.data.from_items([{"index": c.index, "chunk": c.path} for c in pending], override_num_blocks=len(pending))
    results = dataset.map_batches(
        encoder_cls,
        fn_constructor_kwargs=constructor,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=min(num_encoders, len(pending))),
        num_cpus=0 if gpus else constructor["threads"],
        num_gpus=gpus or None,
    )
    return _collect_shards(results.iter_rows(), pending, busy)


def _run_in_process(pending, encoder_cls, constructor, busy: dict[int, float]) -> int:
    """The same encoder over the pending chunks, one at a time, in this process."""
    encoder = encoder_cls(**constructor)

    def rows():
        for chunk in pending:
            out = encoder({"index": np.asarray([chunk.index]), "chunk": np.asarray([chunk.path])})
            yield {name: values[0] for name, values in out.items()}

    return _collect_shards(rows(), pending, busy)


def _collect_shards(rows, pending, busy: dict[int, float]) -> int:
    """Check each finished shard's row count against its chunk, log progress, count shards."""
    started, docs, shards_done = time.perf_counter(), 0, 0
    rows_by_index = {c.index: c.rows for c in pending}
    for row in rows:
        shards_done += 1
        docs += int(row["rows"])
        busy[int(row["worker"])] = busy.get(int(row["worker"]), 0.0) + float(row["seconds"])
        if row["rows"] != rows_by_index[int(row["index"])]:
            raise RuntimeError(f"shard {row['index']}: wrote {row['rows']} rows for {rows_by_index[int(row['index'])]} documents")
        rate = docs / max(time.perf_counter() - started, 1e-9)
        _log(f"shard {int(row['index'])} done ({shards_done}/{len(pending)} this run, {docs} docs, {rate:.1f} docs/s)")
    return shards_done


def _finish(output_dir: Path, chunks: list[Chunk], staging: Path, settings, spec: "EncoderSpec") -> dict[str, Any]:
    shard_entries = []
    for chunk in chunks:
        path = output_dir / "embeddings" / shard_name(chunk.index)
        rows = verify_shard_against_chunk(path, staging / chunk.path)
        shard_entries.append({"file": f"embeddings/{path.name}", "rows": rows, "sha256": sha256_file(path)})
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": "embeddings",
        "mode": spec.mode,
        "dim": spec.dim,
        "documents": sum(s["rows"] for s in shard_entries),
        "shards": shard_entries,
        "settings": settings,
        "model_config": spec.model_config,
    }
    if spec.model_dir is not None:
        manifest["model_dir"] = str(spec.model_dir.relative_to(output_dir))
    write_json(output_dir / MANIFEST, manifest)  # every shard was checked against its chunk above
    return manifest
