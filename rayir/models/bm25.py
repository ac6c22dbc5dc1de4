"""BM25 as a sparse "model": documents become term-weight vectors, so BM25 search runs on the same
exact inverted index as SPLADE.

Analyzer (``lucene-english-porter``, close to Lucene's ``EnglishAnalyzer`` that Anserini uses):
lower-case; drop a possessive ``'s``; split into ``\\w+`` runs (Unicode); drop Lucene's 33 English
stop words; Porter-stem (PyStemmer's ``porter``). ASCII texts are split by a byte translation
table (the same runs, several times faster than the regex); a whole batch of texts is then
dictionary-encoded in Arrow, so stop words are dropped and stems looked up once per distinct word,
and terms are counted per text in numpy.

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
from functools import cached_property
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
# ASCII bytes: letters lower-cased, digits and "_" kept, everything else a separator (= \w on ASCII).
_ASCII_WORDS = bytes(c + 32 if 65 <= c <= 90 else c if (48 <= c <= 57 or 97 <= c <= 122 or c == 95) else 32
                     for c in range(256))
ANALYZER = "lucene-english-porter"


class Analyzer:
    """The analyzer above. Stems are memoised per word (a corpus has far fewer distinct words than
    tokens); the memo is dropped when it passes ``max_cached`` words."""

    def __init__(self, max_cached: int = 1_000_000) -> None:
        import Stemmer

        self._stemmer = Stemmer.Stemmer("porter")
        self._max_cached = max_cached
        self._stems: dict[str, str] = {}

    def __call__(self, text: str) -> list[str]:
        _, codes, vocab = self.analyse([text])
        return vocab.take(pa.array(codes)).to_pylist()

    @staticmethod
    def words(text: str) -> list[str]:
        """Lower-cased ``\\w+`` runs of a text, possessive ``'s`` dropped."""
        if text.isascii():
            if "'s" in text or "'S" in text:
                text = _POSSESSIVE.sub("", text.lower())
            return text.encode().translate(_ASCII_WORDS).decode().split()
        return _WORD.findall(_POSSESSIVE.sub("", text.lower()))

    def analyse(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, pa.Array]:
        """All analysed terms of ``texts`` in order: the index of the text each came from, and each
        term as a code into a sorted array of the distinct terms (also returned)."""
        import pyarrow.compute as pc

        words, lengths = [], []
        for text in texts:
            text_words = self.words(text)
            words.extend(text_words)
            lengths.append(len(text_words))
        encoded = pc.dictionary_encode(pa.array(words, pa.string()))  # distinct words + an index per word
        distinct_words = encoded.dictionary.to_pylist()
        if len(self._stems) > self._max_cached:
            self._stems.clear()
        new = [w for w in distinct_words if w not in self._stems]
        self._stems.update(zip(new, self._stemmer.stemWords(new)))
        stems = [self._stems[w] for w in distinct_words]
        stop = np.asarray([w in STOPWORDS for w in distinct_words], bool)
        vocab = pc.unique(pa.array([s for s, is_stop in zip(stems, stop) if not is_stop], pa.string()))
        vocab = vocab.take(pc.sort_indices(vocab))
        word_codes = np.array(pc.fill_null(pc.index_in(pa.array(stems, pa.string()), value_set=vocab), -1), np.int64)
        word_codes[stop] = -1  # stop words drop
        codes = word_codes[encoded.indices.to_numpy()]
        rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        keep = codes >= 0
        return rows[keep], codes[keep], vocab


ANALYSED_SCHEMA = pa.schema([("terms", pa.list_(pa.string())), ("counts", pa.list_(pa.int32())), ("length", pa.int32())])


def analyse_texts(texts: Iterable[str], analyze: Analyzer | None = None) -> pa.Table:
    """Each text's distinct analysed terms (sorted) with their counts, and its analysed length."""
    analyze = analyze or Analyzer()
    texts = texts if isinstance(texts, list) else list(texts)
    rows, codes, vocab = analyze.analyse(texts)
    keys, counts = np.unique(rows * max(len(vocab), 1) + codes, return_counts=True)  # (text, term) pairs
    offsets = pa.array(_indptr(keys // max(len(vocab), 1), len(texts)).astype(np.int32))
    return pa.Table.from_arrays([
        pa.ListArray.from_arrays(offsets, vocab.take(pa.array(keys % max(len(vocab), 1)))),
        pa.ListArray.from_arrays(offsets, pa.array(counts.astype(np.int32))),
        pa.array(np.bincount(rows, minlength=len(texts)).astype(np.int32)),
    ], schema=ANALYSED_SCHEMA)


def collection_statistics(analysed: pa.Table) -> tuple[Counter, int, int]:
    """Document frequencies, total analysed length and document count of analysed texts."""
    import pyarrow.compute as pc

    frequencies = pc.value_counts(pc.list_flatten(analysed.column("terms")))
    df = Counter(dict(zip(frequencies.field("values").to_pylist(), frequencies.field("counts").to_pylist())))
    return df, int(pc.sum(analysed.column("length")).as_py() or 0), analysed.num_rows


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
        write_json(directory / "bm25.json", {
            "type": "bm25", "analyzer": ANALYZER, "k1": k1, "b": b, "documents": documents,
            "avg_doc_length": total_length / max(documents, 1), "vocab_size": len(terms),
        })
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
        return _indptr(rows, analysed.num_rows), ids.astype(np.int32), weights

    def encode_doc(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Term ids (ascending) and BM25 weights of one document."""
        _, ids, weights = self.doc_weights(analyse_texts([text], self.analyze))
        return ids, weights

    def encode_queries(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Queries as CSR rows: ``indptr``, term ids (ascending) and float32 counts of their
        in-vocabulary terms, so that ``query · doc`` is the BM25 score."""
        analysed = analyse_texts(texts, self.analyze)
        ids, tf, rows = self._term_rows(analysed)
        return _indptr(rows, len(texts)), ids.astype(np.int32), tf.astype(np.float32)

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
        return float(sum(count * self.idf[self.term_ids[t]] * tf[t] * (k1 + 1) / (tf[t] + norm)
                         for t, count in query_tf.items() if t in tf))


def _indptr(rows: np.ndarray, num_rows: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=num_rows))]).astype(np.int64)


def bm25_fingerprint(k1: float, b: float) -> str:
    return f"bm25:{ANALYZER}:k1={k1}:b={b}"

