"""BM25 behind the representation seam: statistics fitted from the staged corpus, documents as
BM25 weight vectors, queries as term counts."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
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


def analyse_chunk(chunk: str) -> None:
    """Analyse one staged chunk (kept beside it, reused when resuming, read again by the encoder)
    and keep its collection statistics beside it too."""
    path = analysed_path(Path(chunk))
    if path.exists():
        analysed = pq.read_table(path)
    else:
        analysed = analyse_texts(pq.read_table(chunk, columns=["text"]).column("text").to_pylist())
        write_with(path, lambda tmp: pq.write_table(analysed, tmp))
    df, length, documents = collection_statistics(analysed)
    table = pa.table({"term": pa.array(list(df), pa.string()), "df": pa.array(list(df.values()), pa.int64())})
    table = table.replace_schema_metadata({"length": str(length), "documents": str(documents)})
    write_with(_statistics_path(path), lambda tmp: pq.write_table(table, tmp))


def _statistics_path(analysed: Path) -> Path:
    return analysed.with_name(analysed.name.replace(".bm25.parquet", ".bm25-df.parquet"))


def fit_statistics(chunks: list[str], directory: str, k1: float, b: float) -> tuple[int, int, int]:
    """Merge every chunk's statistics and save them as the BM25 statistics, in one task: the driver
    never holds a vocabulary per chunk. Returns (terms, documents, total length)."""
    parts = [pq.read_table(_statistics_path(analysed_path(Path(c)))) for c in chunks]
    merged = pa.concat_tables(parts).group_by("term").aggregate([("df", "sum")])
    df = Counter(dict(zip(merged.column("term").to_pylist(), merged.column("df_sum").to_pylist())))
    length = sum(int(t.schema.metadata[b"length"]) for t in parts)
    documents = sum(int(t.schema.metadata[b"documents"]) for t in parts)
    BM25Model.save(directory, df, length, documents, k1, b)
    return len(df), documents, length


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
        """Collection statistics of all chunks (one task each, merged by one more task), saved as the
        BM25 statistics."""
        paths = [str(staging / c.path) for c in chunks]
        run.map_tasks(analyse_chunk, [(path,) for path in paths])
        k1, b = self.model_config["k1"], self.model_config["b"]
        [(terms, documents, length)] = run.map_tasks(fit_statistics, [(paths, str(output_dir / self.files), k1, b)])
        self.dim = terms
        average = length / max(documents, 1)
        logger.info("bm25 statistics: %d documents, %d terms, avg length %.1f", documents, terms, average)

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

    def encode_staged(self, chunk: Path, progress: Callable[[int], None] | None = None) -> pa.Table:
        from ..encode.formats import SCHEMAS

        doc_ids = pq.read_table(chunk, columns=["doc_id"]).column("doc_id")
        analysed = pq.read_table(analysed_path(chunk))
        if analysed.num_rows != len(doc_ids):
            raise RuntimeError(f"{chunk}: {analysed.num_rows} analysed rows for {len(doc_ids)} documents")
        indptr, terms, weights = self.model.doc_weights(analysed)
        offsets = pa.array(indptr.astype(np.int32))
        if progress is not None:
            progress(len(doc_ids))
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
