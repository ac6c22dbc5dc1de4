"""The encoder that runs inside each Ray Data actor: one model per actor, one chunk per call."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ..atomic import sha256_file, write_with
from ..models.bi_encoder import Embeddings
from ..models.precision import prepare_for_inference
from ..modules import BiEncoderModule
from .formats import embeddings_to_table


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


class ChunkEncoder:
    """Encodes staged chunks into embedding shards.

    ``__call__`` takes a Ray Data batch of chunk rows (``index``, ``chunk``) and returns one row
    per chunk with the shard's row count and checksum. Within a chunk, texts are encoded in
    length-sorted mini-batches (little padding), then written back in corpus order. Each shard is
    written atomically under a name fixed by its chunk index, so a retried chunk replaces rather
    than duplicates.
    """

    def __init__(
        self,
        model: str,
        overrides: dict[str, Any],
        staging_dir: str,
        shard_dir: str,
        batch_size: int,
        device: str,
        precision: str,
        threads: int | None,
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.module = BiEncoderModule(model, batch_size=batch_size, **overrides).to(device)
        self.module.eval()
        self.precision_context = prepare_for_inference(self.module.model, precision, device)
        self.mode = self.module.config.mode
        self.staging_dir, self.shard_dir = Path(staging_dir), Path(shard_dir)
        self.batch_size = batch_size

    @torch.inference_mode()
    def encode_batch(self, texts: list[str]) -> Embeddings:
        """Embeddings of one mini-batch of document texts."""
        with self.precision_context():
            embeddings = self.module.model.encode(self.module.tokenizer.docs(texts), is_query=False)
        return embeddings.float()

    def _batches(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Length-sorted batches under a token budget of ``batch_size * doc_max_length``.

        Sorting by token count keeps padding small; the budget lets short documents form larger
        batches (better matmul efficiency) while long ones stay at ``batch_size``.
        """
        tokenizer = self.module.tokenizer.tokenizer
        max_length = self.module.config.doc_max_length
        lengths = np.asarray([len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]])
        order = np.argsort(-lengths, kind="stable")
        budget = self.batch_size * max_length
        batches, start = [], 0
        while start < len(order):
            longest = max(int(lengths[order[start]]), 1)
            size = max(1, min(budget // longest, 4 * self.batch_size))
            batches.append(order[start : start + size])
            start += size
        return order, batches

    def encode_chunk(self, doc_ids: list[str], texts: list[str]) -> pa.Table:
        order, batches = self._batches(texts)
        parts = []
        for picked in batches:
            embeddings = self.encode_batch([texts[i] for i in picked])
            parts.append(embeddings_to_table(self.mode, [doc_ids[i] for i in picked], embeddings))
        table = pa.concat_tables(parts)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return table.take(pa.array(inverse))

    def encode_staged(self, chunk: str) -> pa.Table:
        """The embedding shard of one staged chunk."""
        source = pq.read_table(self.staging_dir / chunk)
        return self.encode_chunk(source.column("doc_id").to_pylist(), source.column("text").to_pylist())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows, checksums, seconds = [], [], []
        for index, chunk in zip(batch["index"], batch["chunk"]):
            started = time.perf_counter()
            table = self.encode_staged(str(chunk))
            path = self.shard_dir / shard_name(int(index))
            write_with(path, lambda tmp: pq.write_table(table, tmp))
            rows.append(table.num_rows)
            checksums.append(sha256_file(path))
            seconds.append(time.perf_counter() - started)
        return {
            "worker": np.full(len(rows), os.getpid()),
            "index": np.asarray(batch["index"]),
            "rows": np.asarray(rows, dtype=np.int64),
            "sha256": np.asarray(checksums),
            "seconds": np.asarray(seconds),
        }


def analysed_path(staging_dir: Path, chunk: str) -> Path:
    return staging_dir / chunk.replace(".parquet", ".bm25.parquet")


def analyse_chunk(staging_dir: str, chunk: str):
    """Analyse one staged chunk for BM25 (kept beside it; reused when resuming) and return its
    collection statistics."""
    from ..models.bm25 import analyse_texts, collection_statistics

    path = analysed_path(Path(staging_dir), chunk)
    if path.exists():
        analysed = pq.read_table(path)
    else:
        analysed = analyse_texts(pq.read_table(Path(staging_dir) / chunk, columns=["text"]).column("text").to_pylist())
        write_with(path, lambda tmp: pq.write_table(analysed, tmp))
    return collection_statistics(analysed)


class BM25ChunkEncoder(ChunkEncoder):
    """Writes BM25 document weights (see :mod:`rayir.models.bm25`) as sparse shards, from the
    analysis the statistics pass kept beside each chunk."""

    def __init__(self, bm25_dir: str, staging_dir: str, shard_dir: str, batch_size: int, device: str,
                 precision: str, threads: int | None) -> None:
        from ..models.bm25 import BM25Model

        self.model = BM25Model(bm25_dir)
        self.mode = "sparse"
        self.staging_dir, self.shard_dir = Path(staging_dir), Path(shard_dir)

    def encode_staged(self, chunk: str) -> pa.Table:
        from .formats import SCHEMAS

        doc_ids = pq.read_table(self.staging_dir / chunk, columns=["doc_id"]).column("doc_id")
        analysed = pq.read_table(analysed_path(self.staging_dir, chunk))
        if analysed.num_rows != len(doc_ids):
            raise RuntimeError(f"{chunk}: {analysed.num_rows} analysed rows for {len(doc_ids)} documents")
        indptr, terms, weights = self.model.doc_weights(analysed)
        offsets = pa.array(indptr.astype(np.int32))
        return pa.Table.from_arrays(
            [doc_ids.combine_chunks(), pa.ListArray.from_arrays(offsets, pa.array(terms, pa.int32())),
             pa.ListArray.from_arrays(offsets, pa.array(weights, pa.float32()))],
            schema=SCHEMAS["sparse"],
        )
