"""BM25 as a sparse representation: documents become term-weight vectors, so BM25 search runs on
the same exact inverted index as SPLADE.

Weights (Lucene BM25): a document holds, for each term ``t`` with frequency ``tf``,
``idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`` with
``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))``, ``dl`` the document's analysed length. A query
vector holds each analysed query term's count, so ``query · doc`` is the BM25 score.

A statistics directory holds ``bm25.json`` (parameters and collection statistics) and
``vocab.parquet`` (``term``, ``df``; a term's id is its row). It is written beside the embeddings
and copied into every index built from them.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_json, write_with
from .analyzer import ANALYZER, Analyzer, analyse_texts, indptr_of


class BM25Model:
    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.config = json.loads((directory / "bm25.json").read_text())
        vocab = pq.read_table(directory / "vocab.parquet")
        self.vocab = vocab.column("term").combine_chunks()  # sorted: a term's id is its position
        df = vocab.column("df").to_numpy().astype(np.float64)
        n = self.config["documents"]
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5))
        self.analyze = Analyzer()

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @cached_property
    def term_ids(self) -> dict[str, int]:
        """Term -> id as a dict, for the term-by-term reference :meth:`score` only (encoders map
        whole batches with Arrow)."""
        return {t: i for i, t in enumerate(self.vocab.to_pylist())}

    @staticmethod
    def save(directory: str | Path, df: Counter, total_length: int, documents: int, k1: float, b: float) -> Path:
        directory = Path(directory)
        terms = sorted(df)
        table = pa.table({"term": pa.array(terms, pa.string()), "df": pa.array([df[t] for t in terms], pa.int64())})
        write_with(directory / "vocab.parquet", lambda tmp: pq.write_table(table, tmp))
        write_json(
            directory / "bm25.json",
            {
                "type": "bm25",
                "analyzer": ANALYZER,
                "k1": k1,
                "b": b,
                "documents": documents,
                "avg_doc_length": total_length / max(documents, 1),
                "vocab_size": len(terms),
            },
        )
        return directory

    def _term_rows(self, analysed: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vocabulary ids (ascending within a text), counts and text index of analysed terms;
        terms outside the vocabulary drop."""
        import pyarrow.compute as pc

        terms = analysed.column("terms").combine_chunks()
        ids = pc.fill_null(pc.index_in(pc.list_flatten(terms), value_set=self.vocab), -1).to_numpy().astype(np.int64)
        tf = pc.list_flatten(analysed.column("counts").combine_chunks()).to_numpy().astype(np.float64)
        rows = np.repeat(np.arange(analysed.num_rows), pc.list_value_length(terms).to_numpy(zero_copy_only=False))
        known = ids >= 0
        ids, tf, rows = ids[known], tf[known], rows[known]
        # Analysed terms are sorted within a text, and so is the vocabulary: ids ascend already.
        ascending = (np.diff(ids) > 0) | (np.diff(rows) > 0)
        if not ascending.all():
            order = np.lexsort((ids, rows))
            ids, tf, rows = ids[order], tf[order], rows[order]
        return ids, tf, rows

    def doc_weights(self, analysed: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BM25 weights of analysed documents (see :func:`analyse_texts`) as CSR rows: ``indptr``,
        term ids (ascending within a row) and float32 weights."""
        k1, b, avgdl = self.config["k1"], self.config["b"], self.config["avg_doc_length"]
        ids, tf, rows = self._term_rows(analysed)
        lengths = analysed.column("length").to_numpy().astype(np.float64)
        norm = k1 * (1 - b + b * lengths[rows] / avgdl)
        weights = (self.idf[ids] * tf * (k1 + 1) / (tf + norm)).astype(np.float32)
        return indptr_of(rows, analysed.num_rows), ids.astype(np.int32), weights

    def encode_doc(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Term ids (ascending) and BM25 weights of one document."""
        _, ids, weights = self.doc_weights(analyse_texts([text], self.analyze))
        return ids, weights

    def encode_queries(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Queries as CSR rows: ``indptr``, term ids (ascending) and float32 counts of their
        in-vocabulary terms, so that ``query · doc`` is the BM25 score."""
        analysed = analyse_texts(texts, self.analyze)
        ids, tf, rows = self._term_rows(analysed)
        return indptr_of(rows, len(texts)), ids.astype(np.int32), tf.astype(np.float32)

    def encode_query(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Term ids (ascending) and counts of one query's in-vocabulary terms."""
        _, ids, tf = self.encode_queries([text])
        return ids, tf

    def score(self, query: str, doc: str) -> float:
        """Reference BM25 of one pair, term by term (independent of the vectorised index path)."""
        k1, b, avgdl = self.config["k1"], self.config["b"], self.config["avg_doc_length"]
        doc_terms = self.analyze(doc)
        tf = Counter(doc_terms)
        norm = k1 * (1 - b + b * len(doc_terms) / avgdl)
        query_tf = Counter(t for t in self.analyze(query) if t in self.term_ids)
        return float(
            sum(
                count * self.idf[self.term_ids[t]] * tf[t] * (k1 + 1) / (tf[t] + norm)
                for t, count in query_tf.items()
                if t in tf
            )
        )


def bm25_fingerprint(k1: float, b: float) -> str:
    return f"bm25:{ANALYZER}:k1={k1}:b={b}"
