"""rayir inside PyTerrier pipelines (``pip install 'rayir[pyterrier]'``).

:class:`Retriever` searches a rayir index and :class:`ReRanker` re-scores candidates with a cross- or
bi-encoder; both are ``pt.Transformer`` s taking and returning PyTerrier's frames (``qid, query`` →
``qid, query, docno, score, rank``), so they compose with ``>>``, ``%``, ``+`` and run under
``pt.Experiment``. The distributed work stays behind ``transform()``: the retriever's shard actors
and the re-ranker's Ray Data scorers are rayir's own (``in_process=True`` keeps both in this
process for small collections).

    bm25 = Retriever("outputs/bm25/index", k=100)
    monobert = ReRanker("cross-encoder/ms-marco-MiniLM-L6-v2", corpus="data/scifact")
    pt.Experiment([bm25, bm25 % 20 >> monobert], topics, qrels, ["nDCG@10"])
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

try:
    import pyterrier as pt
except ImportError as err:  # an optional extra: say how to get it
    raise ImportError("rayir.pyterrier needs PyTerrier: pip install 'rayir[pyterrier]'") from err
import pandas as pd

from .data.frames import run_from_frame, run_to_frame
from .data.samples import QuerySample
from .errors import ConfigError
from .options import ScoringOptions, ServingOptions
from .serve.coordinator import Searcher

__all__ = ["ReRanker", "Retriever"]


class Retriever(pt.Transformer):
    """Top-``k`` documents of each query from a rayir index, exact over all its shards."""

    def __init__(
        self,
        index_dir: str | Path,
        k: int = 100,
        batch_size: int = 64,
        serving: ServingOptions | None = None,
        in_process: bool = False,
        **options: Any,
    ) -> None:
        if k < 1 or batch_size < 1:
            raise ConfigError(f"k={k} and batch_size={batch_size} must be >= 1")
        self.index_dir, self.k, self.batch_size = str(index_dir), k, batch_size
        self.searcher = Searcher(index_dir, serving, in_process=in_process, **options)

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        pt.validate.query_frame(topics, ["query"])
        queries = [QuerySample(q, t) for q, t in zip(topics["qid"].astype(str), topics["query"].astype(str))]
        searched = self.searcher.search_result(queries, self.k, self.batch_size) if queries else None
        found = searched.to_frame() if searched is not None else _empty_results()
        # Keep the query columns (query and any other) beside each hit, as PyTerrier retrievers do.
        columns = topics.assign(qid=topics["qid"].astype(str)).drop(columns=["docno", "score", "rank"], errors="ignore")
        return found.merge(columns, on="qid", how="left")[[*columns.columns, "docno", "score", "rank"]]

    def close(self) -> None:
        """Stop the shard workers (a retriever is otherwise closed with its Ray session)."""
        self.searcher.close()

    def __repr__(self) -> str:
        return f"rayir.Retriever({self.index_dir!r}, k={self.k})"


class ReRanker(pt.Transformer):
    """Re-score each query's candidates with a model; texts from the frame's ``text`` column or
    looked up in ``corpus`` (any rayir document source)."""

    def __init__(
        self,
        model: str,
        corpus: str | Path | None = None,
        kind: str = "auto",
        model_config: dict[str, Any] | None = None,
        scoring: ScoringOptions | None = None,
        work_dir: str | Path | None = None,
        in_process: bool = False,
        **options: Any,
    ) -> None:
        """``work_dir`` keeps the staged ``corpus`` between calls (else it is staged on each call)."""
        self.model, self.corpus, self.kind = model, corpus, kind
        self.model_config, self.work_dir, self.in_process = model_config, work_dir, in_process
        self.scoring = scoring or ScoringOptions()
        self.options = options

    def transform(self, results: pd.DataFrame) -> pd.DataFrame:
        from .serve.rerank import rerank

        pt.validate.result_frame(results, ["query"])
        if results.empty:
            return results.assign(score=pd.Series(dtype="float64"), rank=pd.Series(dtype="int64"))
        if self.corpus is None and "text" not in results.columns:
            raise ConfigError("ReRanker needs a 'text' column in its input or a corpus to look the documents up in")
        frame = results.assign(qid=results["qid"].astype(str), docno=results["docno"].astype(str))
        candidates = frame.assign(score=-frame["rank"]) if "score" not in frame.columns else frame
        with tempfile.TemporaryDirectory(prefix="rayir-pt-") as work:
            queries = Path(work) / "queries.jsonl"
            unique = frame.drop_duplicates("qid")
            _write_jsonl(queries, zip(unique["qid"], unique["query"].astype(str)))
            corpus = self.corpus
            if corpus is None:
                corpus = Path(work) / "docs.jsonl"
                texts = frame.drop_duplicates("docno")
                _write_jsonl(corpus, zip(texts["docno"], texts["text"].astype(str)))
            depth = int(frame.groupby("qid").size().max())
            scored = rerank(
                self.model,
                run_from_frame(candidates),
                queries,
                corpus,
                depth=depth,
                kind=self.kind,
                model_config=self.model_config,
                scoring=self.scoring,
                work_dir=self.work_dir if self.corpus is not None else None,  # a temporary corpus is never kept
                in_process=self.in_process,
                **self.options,
            )
        new = run_to_frame(scored)
        kept = frame.drop(columns=["score", "rank"], errors="ignore")
        return new.merge(kept, on=["qid", "docno"], how="left")[[*kept.columns, "score", "rank"]]

    def __repr__(self) -> str:
        return f"rayir.ReRanker({self.model!r})"


def _write_jsonl(path: Path, records: Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record_id, text in records:
            handle.write(json.dumps({"_id": str(record_id), "text": text}) + "\n")


def _empty_results() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "qid": pd.Series(dtype=object),
            "docno": pd.Series(dtype=object),
            "score": pd.Series(dtype="float64"),
            "rank": pd.Series(dtype="int64"),
        }
    )
