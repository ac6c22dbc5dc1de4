"""Effectiveness metrics through ``ir_measures``.

Queries that are judged in the qrels but missing from the run count as zero for every measure (as
``trec_eval -c`` does), so a run that drops queries cannot look better than it is. Queries in the
run without judgements are ignored, as in ``trec_eval``.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ir_measures

from .data.trec import Qrels, Run, read_qrels, read_run


@dataclass
class Evaluation:
    """``mean[measure]`` over all judged queries, and ``per_query[measure][query_id]``."""

    mean: dict[str, float]
    per_query: dict[str, dict[str, float]]
    num_queries: int
    missing_queries: list[str]


def evaluate(
    run: Run | str | Path,
    qrels: Qrels | str | Path,
    measures: Sequence[str] = ("nDCG@10",),
    split: str | None = None,
) -> Evaluation:
    run_map = read_run(run) if isinstance(run, (str, Path)) else run
    qrels_map = read_qrels(qrels, split) if isinstance(qrels, (str, Path)) else qrels
    if not qrels_map:
        raise ValueError("qrels are empty: nothing to evaluate against")
    parsed = [ir_measures.parse_measure(m) for m in measures]
    names = [str(m) for m in parsed]
    per_query: dict[str, dict[str, float]] = {name: {} for name in names}
    judged_run = {q: dict(docs) for q, docs in run_map.items() if q in qrels_map}
    for metric in ir_measures.iter_calc(parsed, _as_qrels(qrels_map), _as_run(judged_run)):
        per_query[str(metric.measure)][metric.query_id] = float(metric.value)
    missing = sorted(set(qrels_map) - set(judged_run))
    for name in names:
        for query_id in qrels_map:
            per_query[name].setdefault(query_id, 0.0)
    mean = {name: sum(per_query[name].values()) / len(qrels_map) for name in names}
    return Evaluation(mean, per_query, len(qrels_map), missing)


def _as_qrels(qrels: Mapping[str, Mapping[str, int]]) -> list:
    return [ir_measures.Qrel(q, d, int(r)) for q, docs in qrels.items() for d, r in docs.items()]


def _as_run(run: Mapping[str, Mapping[str, float]]) -> list:
    return [ir_measures.ScoredDoc(q, d, float(s)) for q, docs in run.items() for d, s in docs.items()]


class _CallableModule(types.ModuleType):
    """``rayir.evaluate`` is this module once anything imports it (the CLI does: Python then sets the
    package attribute to the module), and ``rayir.evaluate(...)`` must still evaluate."""

    def __call__(self, *args: Any, **kwargs: Any) -> Evaluation:
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
