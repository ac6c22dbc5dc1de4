"""BM25 behind the representation seam: statistics fitted from the staged corpus, documents as
BM25 weight vectors, queries as term counts."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_with
from ..index.queries import QueryBatch
from ..representation import EncoderSpec, Runtime
from .analyzer import analyse_texts, collection_statistics
from .bm25 import BM25Model, bm25_fingerprint

if TYPE_CHECKING:
    from ..execution import Executor

logger = logging.getLogger(__name__)

NAME = "bm25"
STATISTICS_DIR = "bm25"  # beside the embeddings, and copied into each index


def analysed_path(chunk: Path) -> Path:
    return chunk.with_name(chunk.name.replace(".parquet", ".bm25.parquet"))


def analyse_chunk(chunk: str) -> tuple[Counter, int, int]:
    """Analyse one staged chunk (kept beside it, reused when resuming, read again by the encoder)
    and return its collection statistics."""
    path = analysed_path(Path(chunk))
    if path.exists():
        analysed = pq.read_table(path)
    else:
        analysed = analyse_texts(pq.read_table(chunk, columns=["text"]).column("text").to_pylist())
        write_with(path, lambda tmp: pq.write_table(analysed, tmp))
    return collection_statistics(analysed)


class BM25Representation:
    """``model_config`` takes ``k1`` and ``b`` (Anserini's defaults 0.9 and 0.4)."""

    files = STATISTICS_DIR
    mode = "sparse"

    def __init__(self, model: str, overrides: dict[str, Any], precision: str, run: Executor) -> None:
        unknown = sorted(set(overrides) - {"k1", "b"})
        if unknown:
            raise ValueError(f"{NAME} takes k1 and b only; unknown: {unknown}")
        k1, b = float(overrides.get("k1", 0.9)), float(overrides.get("b", 0.4))
        self.dim: int | None = None  # the vocabulary size, known after fit
        self.model_config = {"model_type": NAME, "mode": "sparse", "similarity": "dot", "k1": k1, "b": b}
        self.spec = EncoderSpec(model, overrides, precision, bm25_fingerprint(k1, b))

    def fit(self, staging: Path, chunks: list, output_dir: Path, run: Executor) -> None:
        """Collection statistics of all chunks (one task each), saved as the BM25 statistics."""
        parts = run.map_tasks(analyse_chunk, [(str(staging / c.path),) for c in chunks])
        df: Counter = Counter()
        length = documents = 0
        for part_df, part_length, part_docs in parts:
            df.update(part_df)
            length += part_length
            documents += part_docs
        BM25Model.save(output_dir / self.files, df, length, documents, self.model_config["k1"], self.model_config["b"])
        self.dim = len(df)
        logger.info(
            "bm25 statistics: %d documents, %d terms, avg length %.1f", documents, len(df), length / max(documents, 1)
        )

    @staticmethod
    def document_encoder(spec: EncoderSpec, files: Path | None, staging: Path, runtime: Runtime) -> BM25DocumentEncoder:
        return BM25DocumentEncoder(BM25Model(files))

    @staticmethod
    def query_encoder(spec: EncoderSpec, files: Path | None, mode: str, runtime: Runtime) -> BM25QueryEncoder:
        return BM25QueryEncoder(BM25Model(files))


class BM25DocumentEncoder:
    """BM25 document weights as sparse shards, from the analysis ``fit`` kept beside each chunk."""

    def __init__(self, model: BM25Model) -> None:
        self.model = model

    def encode_staged(self, chunk: Path) -> pa.Table:
        from ..encode.formats import SCHEMAS

        doc_ids = pq.read_table(chunk, columns=["doc_id"]).column("doc_id")
        analysed = pq.read_table(analysed_path(chunk))
        if analysed.num_rows != len(doc_ids):
            raise RuntimeError(f"{chunk}: {analysed.num_rows} analysed rows for {len(doc_ids)} documents")
        indptr, terms, weights = self.model.doc_weights(analysed)
        offsets = pa.array(indptr.astype(np.int32))
        return pa.Table.from_arrays(
            [
                doc_ids.combine_chunks(),
                pa.ListArray.from_arrays(offsets, pa.array(terms, pa.int32())),
                pa.ListArray.from_arrays(offsets, pa.array(weights, pa.float32())),
            ],
            schema=SCHEMAS["sparse"],
        )


class BM25QueryEncoder:
    def __init__(self, model: BM25Model) -> None:
        self.model = model

    def __call__(self, texts: list[str]) -> QueryBatch:
        indptr, terms, weights = self.model.encode_queries(texts)
        return QueryBatch(indptr=indptr, terms=terms, weights=weights)
