"""The BM25 analyzer (``lucene-english-porter``, close to Lucene's ``EnglishAnalyzer`` that Anserini uses).

Lower-case; drop a possessive ``'s``; split into ``\\w+`` runs (Unicode); drop Lucene's 33 English
stop words; Porter-stem (PyStemmer's ``porter``). ASCII texts are split by a byte translation
table (the same runs, several times faster than the regex); a whole batch of texts is then
dictionary-encoded in Arrow, so stop words are dropped and stems looked up once per distinct word,
and terms are counted per text in numpy.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split()
)
_POSSESSIVE = re.compile(r"'s\b")
_WORD = re.compile(r"\w+")
# ASCII bytes: letters lower-cased, digits and "_" kept, everything else a separator (= \w on ASCII).
_ASCII_WORDS = bytes(
    c + 32 if 65 <= c <= 90 else c if (48 <= c <= 57 or 97 <= c <= 122 or c == 95) else 32 for c in range(256)
)
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


ANALYSED_SCHEMA = pa.schema(
    [("terms", pa.list_(pa.string())), ("counts", pa.list_(pa.int32())), ("length", pa.int32())]
)


def analyse_texts(texts: Iterable[str], analyze: Analyzer | None = None) -> pa.Table:
    """Each text's distinct analysed terms (sorted) with their counts, and its analysed length."""
    analyze = analyze or Analyzer()
    texts = texts if isinstance(texts, list) else list(texts)
    rows, codes, vocab = analyze.analyse(texts)
    keys, counts = np.unique(rows * max(len(vocab), 1) + codes, return_counts=True)  # (text, term) pairs
    offsets = pa.array(indptr_of(keys // max(len(vocab), 1), len(texts)).astype(np.int32))
    return pa.Table.from_arrays(
        [
            pa.ListArray.from_arrays(offsets, vocab.take(pa.array(keys % max(len(vocab), 1)))),
            pa.ListArray.from_arrays(offsets, pa.array(counts.astype(np.int32))),
            pa.array(np.bincount(rows, minlength=len(texts)).astype(np.int32)),
        ],
        schema=ANALYSED_SCHEMA,
    )


def collection_statistics(analysed: pa.Table) -> tuple[Counter, int, int]:
    """Document frequencies, total analysed length and document count of analysed texts."""
    import pyarrow.compute as pc

    frequencies = pc.value_counts(pc.list_flatten(analysed.column("terms")))
    df = Counter(dict(zip(frequencies.field("values").to_pylist(), frequencies.field("counts").to_pylist())))
    return df, int(pc.sum(analysed.column("length")).as_py() or 0), analysed.num_rows


def indptr_of(rows: np.ndarray, num_rows: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=num_rows))]).astype(np.int64)
