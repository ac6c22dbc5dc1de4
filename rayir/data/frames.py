"""Runs and qrels as pandas DataFrames in PyTerrier's column names, and back.

A run frame has ``qid, docno, score, rank`` (rank from 0, as PyTerrier counts); a qrels frame
``qid, docno, label``. The dict forms (:mod:`rayir.data.trec`) stay the core representation;
these are for people who hold their results in pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import DataFormatError
from .trec import Qrels, Run, ranked

if TYPE_CHECKING:
    import pandas as pd


def run_to_frame(run: Run) -> pd.DataFrame:
    """One row per (query, document), ranked by score (ties by doc id) within each query."""
    import pandas as pd

    rows = [
        (query_id, doc_id, score, rank)
        for query_id, scores in run.items()
        for rank, (doc_id, score) in enumerate(ranked(scores))
    ]
    return pd.DataFrame(rows, columns=["qid", "docno", "score", "rank"]).astype({"score": "float64", "rank": "int64"})


def run_from_frame(frame: pd.DataFrame) -> Run:
    """``{qid: {docno: score}}`` from a frame with ``qid, docno, score``; a repeated pair is an error."""
    missing = {"qid", "docno", "score"} - set(frame.columns)
    if missing:
        raise DataFormatError("run frame", None, f"needs columns qid, docno and score; missing {sorted(missing)}")
    run: Run = {}
    for query_id, doc_id, score in zip(frame["qid"].astype(str), frame["docno"].astype(str), frame["score"]):
        scores = run.setdefault(query_id, {})
        if doc_id in scores:
            raise DataFormatError("run frame", None, f"document {doc_id!r} ranked twice for query {query_id!r}")
        scores[doc_id] = float(score)
    return run


def qrels_to_frame(qrels: Qrels) -> pd.DataFrame:
    import pandas as pd

    rows = [(q, d, rel) for q, judged in qrels.items() for d, rel in judged.items()]
    return pd.DataFrame(rows, columns=["qid", "docno", "label"]).astype({"label": "int64"})
