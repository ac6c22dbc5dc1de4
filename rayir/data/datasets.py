"""PyTorch datasets over documents, queries, training tuples and runs.

``DocDataset`` and ``QueryDataset`` stream (iterable). ``TupleDataset`` and ``RunDataset`` hold
one :class:`RankSample` per query but only the texts of documents they actually reference: a
:class:`DocStore` is filled by one streaming pass over the corpus that keeps the needed ids.
``StreamedTupleDataset`` streams training tuples (an ``ir_datasets`` id's document pairs, e.g.
``msmarco-passage/train/triples-small``) without holding them: memory does not grow with their number.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from torch.utils.data import Dataset, IterableDataset

from ..errors import UnknownIdError
from .errors import DataFormatError
from .readers import read_docs, read_queries
from .samples import DocSample, QuerySample, RankSample
from .sources import numbered_lines
from .trec import Qrels, Run, ranked, read_qrels, read_run


class DocDataset(IterableDataset):
    """Streams :class:`DocSample` from any document source."""

    def __init__(self, source: str | Path, check_duplicates: bool = True) -> None:
        self.source, self.check_duplicates = source, check_duplicates

    def __iter__(self) -> Iterator[DocSample]:
        return read_docs(self.source, check_duplicates=self.check_duplicates)


class QueryDataset(IterableDataset):
    """Streams :class:`QuerySample` from any query source (BEIR directories take a ``split``)."""

    def __init__(self, source: str | Path, split: str | None = None) -> None:
        self.source, self.split = source, split

    def __iter__(self) -> Iterator[QuerySample]:
        return read_queries(self.source, split=self.split)


class DocStore(Mapping[str, str]):
    """Texts of a chosen set of documents, looked up by id."""

    def __init__(self, texts: dict[str, str]) -> None:
        self._texts = texts

    @classmethod
    def from_source(cls, source: str | Path, ids: Iterable[str] | None = None) -> DocStore:
        """Read ``source`` once, keeping only ``ids`` (all when ``None``); missing ids are an error."""
        wanted = None if ids is None else set(ids)
        texts = {d.doc_id: d.text for d in read_docs(source) if wanted is None or d.doc_id in wanted}
        if wanted is not None and len(texts) != len(wanted):
            missing = sorted(wanted - texts.keys())
            raise UnknownIdError(
                f"{source}: {len(missing)} referenced document id(s) not in the corpus, e.g. {missing[:5]}"
            )
        return cls(texts)

    def __getitem__(self, doc_id: str) -> str:
        return self._texts[doc_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)


def _query_texts(source: str | Path | Mapping[str, str], split: str | None, ids: set[str]) -> dict[str, str]:
    if isinstance(source, Mapping):
        texts = {q: source[q] for q in ids if q in source}
    else:
        texts = {q.query_id: q.text for q in read_queries(source, split=split) if q.query_id in ids}
    missing = sorted(ids - texts.keys())
    if missing:
        raise UnknownIdError(f"{len(missing)} query id(s) without text, e.g. {missing[:5]}")
    return texts


SamplingStrategy = Literal["top", "random", "single_relevant"]
TargetKind = Literal["relevance", "rank", "score"]


class RunDataset(Dataset):
    """Re-ranking / training samples from a run: each query with candidates drawn from its ranking.

    - ``depth``: only the top ``depth`` documents of each ranking are candidates.
    - ``sample_size`` and ``sampling_strategy``: ``top`` keeps the best ``sample_size``; ``random``
      draws ``sample_size`` (seeded) among the candidates; ``single_relevant`` takes one relevant
      document (by qrels) plus ``sample_size - 1`` non-relevant candidates from the top, skipping
      queries with no relevant candidate.
    - ``targets``: ``relevance`` (qrels, 0 when unjudged), ``rank`` (1 = best) or ``score``.
    """

    def __init__(
        self,
        run: str | Path | Run,
        queries: str | Path | Mapping[str, str],
        corpus: str | Path | Mapping[str, str],
        depth: int = 100,
        sample_size: int | None = None,
        sampling_strategy: SamplingStrategy = "top",
        targets: TargetKind | None = None,
        qrels: str | Path | Qrels | None = None,
        split: str | None = None,
        seed: int = 0,
    ) -> None:
        if sampling_strategy not in ("top", "random", "single_relevant"):
            raise ValueError(f"unknown sampling_strategy {sampling_strategy!r}")
        if targets not in (None, "relevance", "rank", "score"):
            raise ValueError(f"unknown targets {targets!r}")
        qrels_map = read_qrels(qrels, split) if isinstance(qrels, (str, Path)) else (qrels or {})
        if (sampling_strategy == "single_relevant" or targets == "relevance") and not qrels_map:
            raise ValueError(f"sampling_strategy={sampling_strategy!r} / targets={targets!r} need qrels")
        run_map = read_run(run) if isinstance(run, (str, Path)) else run
        rng = random.Random(seed)
        self.skipped: list[str] = []
        chosen: dict[str, list[tuple[str, float, int]]] = {}
        for query_id in sorted(run_map):
            candidates = [(d, s, r) for r, (d, s) in enumerate(ranked(run_map[query_id], depth), start=1)]
            picked = self._sample(candidates, qrels_map.get(query_id, {}), sample_size, sampling_strategy, rng)
            if picked is None:
                self.skipped.append(query_id)
            else:
                chosen[query_id] = picked
        query_texts = _query_texts(queries, split, set(chosen))
        needed = {d for picks in chosen.values() for d, _, _ in picks}
        docs = corpus if isinstance(corpus, Mapping) else DocStore.from_source(corpus, needed)
        self.samples = [
            RankSample(
                query_id=q,
                query=query_texts[q],
                doc_ids=[d for d, _, _ in picks],
                docs=[docs[d] for d, _, _ in picks],
                targets=self._targets(picks, qrels_map.get(q, {}), targets),
                qrels=qrels_map.get(q, {}),
            )
            for q, picks in chosen.items()
        ]

    @staticmethod
    def _sample(candidates, judged, size, strategy, rng):
        if strategy == "top":
            return candidates[:size] if size else candidates
        if strategy == "random":
            return sorted(rng.sample(candidates, min(size or len(candidates), len(candidates))), key=lambda c: c[2])
        relevant = [c for c in candidates if judged.get(c[0], 0) > 0]
        if not relevant:
            return None
        negatives = [c for c in candidates if judged.get(c[0], 0) <= 0]
        return [rng.choice(relevant)] + negatives[: (size or len(candidates)) - 1]

    @staticmethod
    def _targets(picks, judged, kind):
        if kind is None:
            return None
        if kind == "relevance":
            return [float(judged.get(d, 0)) for d, _, _ in picks]
        if kind == "rank":
            return [float(r) for _, _, r in picks]
        return [s for _, s, _ in picks]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> RankSample:
        return self.samples[index]


def tuple_rows(source: str | Path) -> Iterator[tuple[int, list[str]]]:
    """``(line or pair number, [query, positive, negative…])`` of a tab-separated tuples file or of
    an ``ir_datasets`` id's document pairs (``irds:<id>``), read lazily."""
    if isinstance(source, str) and source.startswith("irds:"):
        from .irds import irds_docpairs

        for index, pair in enumerate(irds_docpairs(source), start=1):
            yield index, list(pair)
        return
    path = Path(source)
    for line_no, line in numbered_lines(path):
        line = line.rstrip("\r\n")
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) < 3 or any(not f.strip() for f in fields):
            raise DataFormatError(path, line_no, "expected query<TAB>positive<TAB>negative[<TAB>negative…]")
        yield line_no, fields


class TupleDataset(Dataset):
    """Training tuples ``query, positive, negative…`` from a tab-separated file.

    With ``queries`` and ``corpus`` the fields are ids (``qid<TAB>pos_id<TAB>neg_id…``, the MS MARCO
    triples-by-id layout); without them the fields are the texts themselves. Targets are 1 for the
    positive and 0 for each negative.
    """

    def __init__(
        self,
        path: str | Path,
        queries: str | Path | Mapping[str, str] | None = None,
        corpus: str | Path | Mapping[str, str] | None = None,
        split: str | None = None,
    ) -> None:
        if (queries is None) != (corpus is None):
            raise ValueError("give both queries and corpus (id tuples) or neither (text tuples)")
        rows = [fields for _, fields in tuple_rows(path)]
        by_id = queries is not None
        if by_id:
            query_texts = _query_texts(queries, split, {r[0] for r in rows})
            needed = {d for r in rows for d in r[1:]}
            docs = corpus if isinstance(corpus, Mapping) else DocStore.from_source(corpus, needed)
        self.samples = []
        for index, row in enumerate(rows):
            query, doc_fields = row[0], row[1:]
            self.samples.append(
                RankSample(
                    query_id=query if by_id else str(index),
                    query=query_texts[query] if by_id else query,
                    doc_ids=list(doc_fields) if by_id else [f"{index}-{i}" for i in range(len(doc_fields))],
                    docs=[docs[d] for d in doc_fields] if by_id else list(doc_fields),
                    targets=[1.0] + [0.0] * (len(doc_fields) - 1),
                )
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> RankSample:
        return self.samples[index]


class StreamedTupleDataset(IterableDataset):
    """Training tuples streamed from an ``ir_datasets`` id's document pairs (``irds:<id>``) or a
    ``query_id<TAB>positive_id<TAB>negative_id…`` file, in their order, never held in memory.

    Each training worker (``torch.distributed`` rank, and DataLoader worker) takes every
    ``world``-th tuple, and only whole rounds: every worker yields the same number of samples, so no
    worker waits for a peer that ran out. Query texts come from ``queries`` (read once); document
    texts from ``ir_datasets``' own document store where the corpus has one (random access, nothing
    held), else from a :class:`DocStore` of the documents the tuples name (one pass over the tuples'
    ids first). ``skip`` samples of this worker are passed over (a job resumed mid-epoch).
    """

    def __init__(
        self,
        pairs: str | Path,
        queries: str | Path | Mapping[str, str],
        corpus: str | Path | Mapping[str, str],
        split: str | None = None,
    ) -> None:
        self.pairs, self.queries, self.corpus, self.split = pairs, queries, corpus, split
        self.skip = 0
        if next(tuple_rows(self.pairs), None) is None:
            raise ValueError(f"{pairs}: no training tuples")

    def _lookups(self) -> tuple[Mapping[str, str], Callable[[str], str | None]]:
        queries = self.queries
        if not isinstance(queries, Mapping):
            queries = {q.query_id: q.text for q in read_queries(queries, split=self.split)}
        corpus = self.corpus
        if isinstance(corpus, Mapping):
            return queries, corpus.get
        if isinstance(corpus, str) and corpus.startswith("irds:"):
            from .irds import irds_doc_lookup

            lookup = irds_doc_lookup(corpus)
            if lookup is not None:
                return queries, lookup
        needed = {doc_id for _, row in tuple_rows(self.pairs) for doc_id in row[1:]}
        return queries, DocStore.from_source(corpus, needed).get

    def __iter__(self) -> Iterator[RankSample]:
        import torch.distributed as dist
        from torch.utils.data import get_worker_info

        rank, world = (
            (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
        )
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        share, shares = rank * workers + worker, world * workers
        queries, doc_text = self._lookups()
        round_rows: list[tuple[int, list[str]]] = []
        passed = 0
        for numbered in tuple_rows(self.pairs):
            round_rows.append(numbered)
            if len(round_rows) < shares:
                continue
            where, row = round_rows[share]
            round_rows = []
            if passed < self.skip:
                passed += 1
                continue
            yield self._sample(where, row, queries, doc_text)

    def _sample(
        self, where: int, row: list[str], queries: Mapping[str, str], doc_text: Callable[[str], str | None]
    ) -> RankSample:
        query_id, doc_ids = row[0], row[1:]
        if query_id not in queries:
            raise UnknownIdError(f"{self.pairs} (tuple {where}): query id {query_id!r} has no text in {self.queries}")
        texts = [doc_text(d) for d in doc_ids]
        if None in texts:
            missing = doc_ids[texts.index(None)]
            raise UnknownIdError(f"{self.pairs} (tuple {where}): document id {missing!r} is not in {self.corpus}")
        return RankSample(query_id, queries[query_id], list(doc_ids), texts, [1.0] + [0.0] * (len(doc_ids) - 1))


class QrelsDataset(Dataset):
    """One training sample per judged-relevant (query, document) pair, with hard negatives from a run.

    Negatives are ``num_negatives`` documents drawn (seeded) from the top ``depth`` of the query's
    ranking in ``run`` that are not judged relevant; with ``num_negatives=0`` no run is needed
    (positives only, for in-batch negatives). Positives need not appear in the run, unlike
    ``RunDataset(sampling_strategy="single_relevant")``. Queries whose ranking holds fewer than
    ``num_negatives`` usable negatives are skipped and listed in ``skipped``.

    With ``fresh_negatives`` each epoch after the first draws new negatives from the same pools
    (seeded by ``seed`` and the epoch, so every worker and a resumed run draw alike): ``set_epoch``
    is called by the training loop. Without it every epoch repeats the first epoch's negatives.
    """

    def __init__(
        self,
        qrels: str | Path | Qrels,
        queries: str | Path | Mapping[str, str],
        corpus: str | Path | Mapping[str, str],
        run: str | Path | Run | None = None,
        num_negatives: int = 7,
        depth: int = 100,
        split: str | None = None,
        seed: int = 0,
        fresh_negatives: bool = False,
    ) -> None:
        if num_negatives < 0 or depth < 1:
            raise ValueError("num_negatives must be >= 0 and depth >= 1")
        if num_negatives and run is None:
            raise ValueError(f"num_negatives={num_negatives} needs a run to draw hard negatives from")
        if fresh_negatives and not num_negatives:
            raise ValueError("fresh_negatives needs num_negatives > 0 (there are no negatives to redraw)")
        qrels_map = read_qrels(qrels, split) if isinstance(qrels, (str, Path)) else qrels
        run_map = (read_run(run) if isinstance(run, (str, Path)) else run) or {}
        self.skipped: list[str] = []
        self._pairs: list[tuple[str, str, list[str]]] = []  # (query, positive, negative pool)
        for query_id in sorted(qrels_map):
            positives = sorted(d for d, rel in qrels_map[query_id].items() if rel > 0)
            if not positives:
                continue
            pool = [d for d, _ in ranked(run_map.get(query_id, {}), depth) if qrels_map[query_id].get(d, 0) <= 0]
            if len(pool) < num_negatives:
                self.skipped.append(query_id)
                continue
            self._pairs.extend((query_id, positive, pool) for positive in positives)
        if not self._pairs:
            raise ValueError("no training samples: no judged-relevant pairs with enough negatives")
        self.num_negatives, self.seed, self.fresh_negatives = num_negatives, seed, fresh_negatives
        self._qrels = qrels_map
        self._query_texts = _query_texts(queries, split, {q for q, _, _ in self._pairs})
        draw = self._draw(0)
        needed = {p for _, p, _ in self._pairs} | {d for negatives in draw for d in negatives}
        if fresh_negatives:
            needed.update(d for _, _, pool in self._pairs for d in pool)
        self._docs = corpus if isinstance(corpus, Mapping) else DocStore.from_source(corpus, needed)
        self.samples = self._samples(draw)

    def _draw(self, epoch: int) -> list[list[str]]:
        """Each pair's negatives for ``epoch``: seeded by ``seed`` alone for epoch 0, else by both."""
        rng = random.Random(self.seed if epoch == 0 else f"{self.seed}/epoch-{epoch}")
        return [rng.sample(pool, self.num_negatives) for _, _, pool in self._pairs]

    def _samples(self, draw: list[list[str]]) -> list[RankSample]:
        return [
            RankSample(
                query_id=q,
                query=self._query_texts[q],
                doc_ids=[p, *negatives],
                docs=[self._docs[d] for d in (p, *negatives)],
                targets=[1.0] + [0.0] * self.num_negatives,
                qrels=self._qrels[q],
            )
            for (q, p, _), negatives in zip(self._pairs, draw)
        ]

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's negatives (with ``fresh_negatives``; epoch 0 keeps the first draw)."""
        if self.fresh_negatives:
            self.samples = self._samples(self._draw(epoch))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> RankSample:
        return self.samples[index]
