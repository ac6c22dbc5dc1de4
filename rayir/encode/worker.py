"""The callable each encoder worker runs: one document encoder per worker, one chunk per call."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import sha256_file, write_with
from ..encoders import EncoderSpec, Runtime, load_document_encoder
from ..progress import Tally


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


class ChunkEncoder:
    """Encodes staged chunks into embedding shards with the document encoder of a spec.

    ``__call__`` takes a batch of chunk rows (``index``, ``chunk``) and returns one row per chunk
    with the shard's row count and checksum. Each shard is written atomically under a name fixed by
    its chunk index, so a retried chunk replaces rather than duplicates.
    """

    def __init__(
        self,
        spec: dict[str, Any],
        files: str | None,
        staging_dir: str,
        shard_dir: str,
        runtime: dict[str, Any],
        progress: Tally | None = None,
    ) -> None:
        self.staging_dir, self.shard_dir = Path(staging_dir), Path(shard_dir)
        self.encoder = load_document_encoder(
            EncoderSpec(**spec), Path(files) if files else None, self.staging_dir, Runtime(**runtime)
        )
        self.progress = progress

    def encode(self, chunk: str) -> pa.Table:
        """The embedding shard of one staged chunk (documents counted into ``progress`` as they are done)."""
        return self.encoder.encode_staged(self.staging_dir / chunk, self.progress.add if self.progress else None)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows, checksums, seconds = [], [], []
        for index, chunk in zip(batch["index"], batch["chunk"]):
            started = time.perf_counter()
            table = self.encode(str(chunk))
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
