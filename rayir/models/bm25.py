"""BM25 as a sparse "model": documents become term-weight vectors, so BM25 search runs on the same
exact inverted index as SPLADE.

Analyzer (``lucene-english-porter``, close to Lucene's ``EnglishAnalyzer`` that Anserini uses):
lower-case; drop a possessive ``'s``; split into ``\\w+`` runs; drop Lucene's 33 English stop
words; Porter-stem (PyStemmer's ``porter``).

Weights (Lucene BM25): a document holds, for each term ``t`` with frequency ``tf``,
``idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`` with
``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))``, ``dl`` the document's analysed length. A query
vector holds each analysed query term's count, so ``query · doc`` is the BM25 score.

A model directory holds ``bm25.json`` (parameters and collection statistics) and
``vocab.parquet`` (``term``, ``df``; a term's id is its row).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_json, write_with

STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split()
)
_POSSESSIVE = re.compile(r"'s\b")
_WORD = re.compile(r"\w+")
ANALYZER = "lucene-english-porter"


class Analyzer:
    def __init__(self) -> None:
        import Stemmer

        self._stemmer = Stemmer.Stemmer("porter")

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(_POSSESSIVE.sub("", text.lower())) if w not in STOPWORDS]
        return self._stemmer.stemWords(words)


def count_terms(texts: Iterable[str]) -> tuple[Counter, int, int]:
    """Document frequencies, total analysed length and document count of some texts."""
    analyze = Analyzer()
    df: Counter = Counter()
    length = docs = 0
    for text in texts:
        terms = analyze(text)
        df.update(set(terms))
        length += len(terms)
        docs += 1
    return df, length, docs


class BM25Model:
    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.config = json.loads((directory / "bm25.json").read_text())
        vocab = pq.read_table(directory / "vocab.parquet")
        terms = vocab.column("term").to_pylist()
        self.term_ids = {t: i for i, t in enumerate(terms)}
        df = vocab.column("df").to_numpy().astype(np.float64)
        n = self.config["documents"]
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5))
        self.analyze = Analyzer()

    @property
    def vocab_size(self) -> int:
        return len(self.term_ids)

    @staticmethod
    def save(directory: str | Path, df: Counter, total_length: int, documents: int, k1: float, b: float) -> Path:
        directory = Path(directory)
        terms = sorted(df)
        table = pa.table({"term": pa.array(terms, pa.string()), "df": pa.array([df[t] for t in terms], pa.int64())})
        write_with(directory / "vocab.parquet", lambda tmp: pq.write_table(table, tmp))
        write_json(directory / "bm25.json", {
            "type": "bm25", "analyzer": ANALYZER, "k1": k1, "b": b, "documents": documents,
            "avg_doc_length": total_length / max(documents, 1), "vocab_size": len(terms),
        })
        return directory

    def _counts(self, text: str) -> tuple[np.ndarray, np.ndarray, int]:
        analysed = self.analyze(text)
        counts = Counter(t for t in analysed if t in self.term_ids)
        ids = np.asarray([self.term_ids[t] for t in counts], dtype=np.int32)
        tf = np.asarray(list(counts.values()), dtype=np.float64)
        order = np.argsort(ids)
        return ids[order], tf[order], len(analysed)

    def encode_doc(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Term ids (ascending) and BM25 weights of one document."""
        k1, b, avgdl = self.config["k1"], self.config["b"], self.config["avg_doc_length"]
        ids, tf, length = self._counts(text)
        norm = k1 * (1 - b + b * length / avgdl)
        return ids, (self.idf[ids] * tf * (k1 + 1) / (tf + norm)).astype(np.float32)

    def encode_query(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Term ids (ascending) and counts of a query's in-vocabulary terms."""
        ids, tf, _ = self._counts(text)
        return ids, tf.astype(np.float32)

    def score(self, query: str, doc: str) -> float:
        """Reference BM25 of one pair (the index computes the same sum)."""
        q_ids, q_tf = self.encode_query(query)
        d_ids, d_w = self.encode_doc(doc)
        weights = dict(zip(d_ids.tolist(), d_w.tolist()))
        return float(sum(tf * weights.get(t, 0.0) for t, tf in zip(q_ids.tolist(), q_tf.tolist())))


def bm25_fingerprint(k1: float, b: float) -> str:
    return f"bm25:{ANALYZER}:k1={k1}:b={b}"

