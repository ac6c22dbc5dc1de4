"""``encode_corpus``: a corpus in, Parquet embedding shards and a verified manifest out, on Ray Data.

Output directory::

    manifest.json            written last: the directory is complete (see manifest.py)
    embeddings/part-*.parquet one shard per staged chunk (schemas in formats.py)
    staging/                 chunked document texts; removed after success unless keep_staging

A crash leaves finished shards in place; running the same call again encodes only what is
missing. ``retries`` re-runs the pending chunks within one call after a failure.
"""

from __future__ import annotations

import logging
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..atomic import sha256_file, write_json
from ..data.fingerprint import source_fingerprint
from ..encoders import Representation, load_representation
from ..execution import Executor, Pool, executor
from ..locks import output_lock
from ..logs import report_truncation
from ..options import check_precision
from ..progress import Progress, tally
from .formats import truncated_in
from .manifest import FORMAT_VERSION, MANIFEST, verify_manifest, verify_shard_against_chunk
from .parallel_staging import stage_documents
from .staging import Chunk, settings_difference
from .worker import ChunkEncoder, shard_name

logger = logging.getLogger(__name__)


def _remove_previous_encoding(output_dir: Path) -> None:
    """``overwrite`` removes only a directory that rayir's encoding marks as its own (a manifest, or
    the staging that an encoding starts with); any other non-empty directory is refused, so that
    ``--output ~/data --overwrite true`` cannot delete a user's data."""
    if not output_dir.exists():
        return
    ours = (output_dir / MANIFEST).exists() or (output_dir / "staging").is_dir()
    if not ours and any(output_dir.iterdir()):
        raise FileExistsError(
            f"{output_dir} holds no rayir encoding ({MANIFEST} or staging/): overwrite removes only rayir's "
            "own output; choose an empty or new output directory"
        )
    shutil.rmtree(output_dir)


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
    def truncated_documents(self) -> int:
        """Documents cut at ``doc_max_length`` (0 for encodings made before rayir counted them)."""
        return self.manifest.get("truncated_documents", 0)

    @property
    def docs_per_second(self) -> float:
        return self.documents / self.seconds if self.seconds else float("inf")


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
    model_config: dict[str, Any] | None = None,
    chunk_encoder: type = ChunkEncoder,
) -> EncodeResult:
    """Encode every document of ``corpus`` with the bi-encoder at ``model`` into ``output_dir``.

    ``num_encoders`` actors each load the model once; ``gpus_per_encoder > 0`` places them on GPUs,
    otherwise each uses ``threads_per_encoder`` CPU threads (default: the cluster's CPUs split
    evenly, at most one node's). ``precision="bfloat16"`` runs the encoder in bf16 (see
    :mod:`rayir.models.precision`; vectors are stored as float32). ``model_config`` (e.g.
    ``{"doc_max_length": 256}``; BM25: ``k1``, ``b``) overrides the model config. ``model`` is a
    checkpoint or a lexical model's name (``bm25``). ``in_process=True`` runs the same encoder in
    this process without Ray: for small corpora and notebooks, where starting actors costs more
    than the encoding (same files, same manifest). ``chunk_encoder`` is the worker class (a subclass
    of :class:`ChunkEncoder`; tests inject failures through it).
    """
    config_overrides = dict(model_config or {})
    check_precision(precision)
    if num_encoders < 1 or batch_size < 1 or retries < 0:
        raise ValueError("num_encoders and batch_size must be >= 1, retries >= 0")
    if in_process and num_encoders != 1:
        raise ValueError(f"in_process runs one encoder in this process; num_encoders={num_encoders} does not apply")
    output_dir = Path(output_dir)
    with output_lock(output_dir):
        if overwrite:
            _remove_previous_encoding(output_dir)

        started = time.perf_counter()
        run = executor(in_process)
        representation = load_representation(model, config_overrides, precision, run)
        settings = {
            "model": str(model),
            "model_fingerprint": representation.spec.model_fingerprint,
            "config_overrides": config_overrides,
            "corpus": str(corpus),
            "corpus_fingerprint": source_fingerprint(corpus),
            "docs_per_shard": docs_per_shard,
            "precision": precision,
        }

        if (output_dir / MANIFEST).exists():
            manifest = verify_manifest(output_dir)  # counts, checksums, unique ids
            if manifest["settings"] != settings:
                raise ValueError(
                    f"{output_dir}: holds a finished encoding with other settings "
                    f"({settings_difference(manifest['settings'], settings)}); give the settings it was made "
                    "with to use it, another output directory, or --overwrite true to encode again"
                )
            logger.info("%s is already complete and verified (%d documents)", output_dir, manifest["documents"])
            return EncodeResult(output_dir, manifest, 0, time.perf_counter() - started)

        staging, shards = output_dir / "staging", output_dir / "embeddings"
        shards.mkdir(parents=True, exist_ok=True)
        chunks = stage_documents(corpus, staging, docs_per_shard, settings, run)
        total_docs = sum(c.rows for c in chunks)
        pending = _pending(chunks, shards)
        logger.info("%d documents in %d shards; %d to encode", total_docs, len(chunks), len(pending))

        representation.fit(staging, chunks, output_dir, run)
        if threads_per_encoder is None:
            threads_per_encoder = run.threads_per_worker(num_encoders)
        constructor = dict(
            spec=representation.spec.to_dict(),
            files=str(output_dir / representation.files) if representation.files else None,
            staging_dir=str(staging),
            shard_dir=str(shards),
            runtime={
                "device": "cuda" if gpus_per_encoder else "cpu",
                "threads": threads_per_encoder,
                "batch_size": batch_size,
            },
        )
        encoded = 0
        busy: dict[int, float] = {}
        shown: Any = nullcontext()
        if pending:  # a finished encoding being verified again needs no count
            constructor["progress"] = counts = tally(run.in_process)
            shown = Progress("encode", sum(c.rows for c in pending), "documents", counts)
        with shown:
            for attempt in range(retries + 1):
                if not pending:
                    break
                pool = Pool(
                    size=min(num_encoders, len(pending)),
                    num_gpus=gpus_per_encoder,
                    num_cpus=0 if gpus_per_encoder else threads_per_encoder or 1,
                )
                try:
                    encoded += _run_encoders(run, pending, chunk_encoder, constructor, pool, busy)
                except Exception as err:  # noqa: BLE001 - any encoder failure: resume from the shards on disk
                    pending = _pending(chunks, shards)
                    done = len(chunks) - len(pending)
                    if attempt == retries:
                        raise RuntimeError(
                            f"encoding failed with {done}/{len(chunks)} shards finished ({type(err).__name__}: {err}); "
                            "run the same command again to resume"
                        ) from err
                    logger.warning(
                        "attempt %d failed (%s); retrying %d shards", attempt + 1, type(err).__name__, len(pending)
                    )
                    continue
                pending = _pending(chunks, shards)

        manifest = _finish(output_dir, chunks, staging, settings, representation)
        if not keep_staging:
            shutil.rmtree(staging, ignore_errors=True)
        seconds = time.perf_counter() - started
        logger.info(
            "done: %d documents, %d shards, %d encoded now, %.1fs, %s",
            manifest["documents"],
            len(chunks),
            encoded,
            seconds,
            output_dir,
        )
        return EncodeResult(output_dir, manifest, encoded, seconds, busy)


def _run_encoders(
    run: Executor,
    pending: list[Chunk],
    chunk_encoder: type,
    constructor: dict[str, Any],
    pool: Pool,
    busy: dict[int, float],
) -> int:
    """One pass of the encoder pool over the pending chunks. On Ray, Ray Data restarts encoder
    actors that die (lost node, OOM) and re-submits their chunk; an exception raised by the encoder
    fails the pass and ``encode_corpus`` retries what is still missing."""
    items = run.from_items([{"index": c.index, "chunk": c.path} for c in pending])
    results = run.map_batches(items, chunk_encoder, constructor, pool, batch_size=1)
    return _collect_shards(run.iter_rows(results), pending, busy)


def _collect_shards(rows, pending, busy: dict[int, float]) -> int:
    """Check each finished shard's row count against its chunk, log progress, count shards."""
    started, docs, shards_done = time.perf_counter(), 0, 0
    rows_by_index = {c.index: c.rows for c in pending}
    for row in rows:
        shards_done += 1
        docs += int(row["rows"])
        busy[int(row["worker"])] = busy.get(int(row["worker"]), 0.0) + float(row["seconds"])
        if row["rows"] != rows_by_index[int(row["index"])]:
            raise RuntimeError(
                f"shard {row['index']}: wrote {row['rows']} rows for {rows_by_index[int(row['index'])]} documents"
            )
        rate = docs / max(time.perf_counter() - started, 1e-9)
        logger.debug(  # the progress line counts documents as they finish; this is per shard
            "shard %d done (%d/%d this run, %d docs, %.1f docs/s)",
            int(row["index"]),
            shards_done,
            len(pending),
            docs,
            rate,
        )
    return shards_done


def _finish(
    output_dir: Path, chunks: list[Chunk], staging: Path, settings: dict[str, Any], representation: Representation
) -> dict[str, Any]:
    shard_entries, truncated = [], 0
    for chunk in chunks:
        path = output_dir / "embeddings" / shard_name(chunk.index)
        rows = verify_shard_against_chunk(path, staging / chunk.path)
        truncated += truncated_in(str(path))
        shard_entries.append({"file": f"embeddings/{path.name}", "rows": rows, "sha256": sha256_file(path)})
    documents = sum(s["rows"] for s in shard_entries)
    limit = representation.model_config.get("doc_max_length")
    report_truncation(logger, truncated, documents, "documents", f"doc_max_length={limit} tokens")
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": "embeddings",
        "mode": representation.mode,
        "dim": representation.dim,
        "documents": documents,
        "truncated_documents": truncated,
        "shards": shard_entries,
        "settings": settings,
        "model_config": representation.model_config,
    }
    if representation.files is not None:
        manifest["model_dir"] = representation.files
    write_json(output_dir / MANIFEST, manifest)  # every shard was checked against its chunk above
    return manifest
