"""Comparing systems: runs × measures with paired significance tests against a baseline, several
datasets at once (a BEIR-style table with the average), and MTEB-style result files.

Every run is evaluated on the same judged queries (a judged query missing from a run counts 0,
see :mod:`rayir.evaluate`), so per-query values pair up across systems. The test is a two-sided
paired t-test per measure, corrected over the systems compared with the baseline (Holm–Bonferroni
by default), as ``pt.Experiment`` reports it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .data.trec import Qrels, Run, read_qrels
from .errors import ConfigError
from .evaluate import Evaluation, evaluate
from .tables import format_table

Correction = Literal["holm", "bonferroni", "none"]
RunSource = Run | str | Path
QrelsSource = Qrels | str | Path


@dataclass(frozen=True)
class PairedTest:
    """One system against the baseline on one measure: queries better and worse, the t-test's p-value
    before and after the correction, and whether the corrected p-value is below ``alpha``."""

    better: int
    worse: int
    p_value: float
    p_corrected: float
    significant: bool


@dataclass
class Comparison:
    """Systems evaluated on one set of judgements; ``tests[system][measure]`` for each non-baseline system."""

    systems: list[str]
    baseline: str
    measures: list[str]
    evaluations: dict[str, Evaluation]
    tests: dict[str, dict[str, PairedTest]]
    alpha: float
    correction: Correction

    @property
    def num_queries(self) -> int:
        return self.evaluations[self.baseline].num_queries

    def mean(self, system: str, measure: str) -> float:
        return self.evaluations[system].mean[measure]

    def records(self) -> list[dict[str, Any]]:
        """One flat row per system (the CSV output): means, missing queries, and per measure the wins,
        losses and p-values against the baseline (empty for the baseline itself)."""
        rows = []
        for system in self.systems:
            row: dict[str, Any] = {"system": system, "baseline": system == self.baseline}
            row["missing_queries"] = len(self.evaluations[system].missing_queries)
            for measure in self.measures:
                row[measure] = self.mean(system, measure)
                test = self.tests.get(system, {}).get(measure)
                row[f"{measure} better"] = test.better if test else None
                row[f"{measure} worse"] = test.worse if test else None
                row[f"{measure} p"] = test.p_value if test else None
                row[f"{measure} p {self.correction}"] = test.p_corrected if test else None
                row[f"{measure} significant"] = test.significant if test else None
            rows.append(row)
        return rows

    def table(self) -> str:
        """Systems × measures; a measure's cell is marked ``*`` where it differs significantly from the
        baseline's, and ``+/-`` counts the queries it wins and loses against the baseline."""
        header = ["system", "missing"]
        for measure in self.measures:
            header += [measure, "+/-", f"p ({self.correction})"] if len(self.systems) > 1 else [measure]
        rows = []
        for system in self.systems:
            label = f"{system} (baseline)" if len(self.systems) > 1 and system == self.baseline else system
            row: list[object] = [label, len(self.evaluations[system].missing_queries)]
            for measure in self.measures:
                test = self.tests.get(system, {}).get(measure)
                mark = "*" if test and test.significant else ""
                row.append(f"{self.mean(system, measure):.4f}{mark}")
                if len(self.systems) > 1:
                    row += [f"{test.better}/{test.worse}" if test else "", f"{test.p_corrected:.4f}" if test else ""]
            rows.append(row)
        note = f"{self.num_queries} judged queries"
        if len(self.systems) > 1:
            note += f"; * significant against {self.baseline} at alpha {self.alpha} (paired t-test, {self.correction})"
        return format_table(header, rows) + "\n" + note

    def to_json(self) -> dict[str, Any]:
        return {
            "queries": self.num_queries,
            "baseline": self.baseline,
            "alpha": self.alpha,
            "correction": self.correction,
            "systems": {
                system: {
                    "mean": evaluation.mean,
                    "missing_queries": evaluation.missing_queries,
                    "per_query": evaluation.per_query,
                    "tests": {m: vars(t) for m, t in self.tests.get(system, {}).items()},
                }
                for system, evaluation in self.evaluations.items()
            },
        }


def compare(
    runs: Mapping[str, RunSource],
    qrels: QrelsSource,
    measures: Sequence[str] = ("nDCG@10",),
    split: str | None = None,
    baseline: str | None = None,
    alpha: float = 0.05,
    correction: Correction = "holm",
) -> Comparison:
    """Evaluate each named run on ``qrels`` and test every system against ``baseline`` (default: the first)."""
    if not runs:
        raise ConfigError("no runs to compare")
    systems = list(runs)
    baseline = systems[0] if baseline is None else baseline
    if baseline not in runs:
        raise ConfigError(f"baseline {baseline!r} is not one of the runs: {', '.join(systems)}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha={alpha} must lie between 0 and 1")
    judgements = read_qrels(qrels, split) if isinstance(qrels, (str, Path)) else qrels
    evaluations = {name: evaluate(run, judgements, measures) for name, run in runs.items()}
    names = list(evaluations[baseline].mean)
    others = [s for s in systems if s != baseline]
    tests: dict[str, dict[str, PairedTest]] = {s: {} for s in others}
    for measure in names:
        reference = evaluations[baseline].per_query[measure]
        raw = [_paired(evaluations[s].per_query[measure], reference) for s in others]
        corrected = adjust([p for _, _, p in raw], correction)
        for system, (better, worse, p), q in zip(others, raw, corrected):
            tests[system][measure] = PairedTest(better, worse, p, q, q < alpha)
    return Comparison(systems, baseline, names, evaluations, tests, alpha, correction)


def _paired(values: Mapping[str, float], reference: Mapping[str, float]) -> tuple[int, int, float]:
    """Wins, losses and the two-sided paired t-test p-value over the judged queries (identical
    per-query values: p = 1)."""
    from scipy import stats

    queries = sorted(reference)
    a = [values[q] for q in queries]
    b = [reference[q] for q in queries]
    better = sum(x > y for x, y in zip(a, b))
    worse = sum(x < y for x, y in zip(a, b))
    if better + worse == 0:
        return 0, 0, 1.0
    p = float(stats.ttest_rel(a, b).pvalue)
    return better, worse, 1.0 if math.isnan(p) else p


def adjust(p_values: Sequence[float], correction: Correction) -> list[float]:
    """Family-wise corrected p-values: Holm's step-down (each sorted p times the number of hypotheses
    not yet rejected, kept monotone), Bonferroni's (times all), or none."""
    m = len(p_values)
    if correction == "none":
        return list(p_values)
    if correction == "bonferroni":
        return [min(1.0, m * p) for p in p_values]
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


@dataclass
class Benchmark:
    """The same systems compared on several datasets (``comparisons[dataset]``)."""

    comparisons: dict[str, Comparison]

    @property
    def systems(self) -> list[str]:
        return next(iter(self.comparisons.values())).systems

    @property
    def measures(self) -> list[str]:
        return next(iter(self.comparisons.values())).measures

    def average(self, system: str, measure: str) -> float:
        """The unweighted mean over datasets (each dataset counts once, as BEIR reports it)."""
        return sum(c.mean(system, measure) for c in self.comparisons.values()) / len(self.comparisons)

    def table(self, measure: str) -> str:
        """Datasets × systems for one measure, with the average; ``*`` marks a significant difference
        from the baseline on that dataset."""
        rows: list[list[object]] = []
        for dataset, comparison in self.comparisons.items():
            row: list[object] = [dataset]
            for system in self.systems:
                test = comparison.tests.get(system, {}).get(measure)
                row.append(f"{comparison.mean(system, measure):.4f}{'*' if test and test.significant else ''}")
            rows.append(row)
        rows.append(["average", *(f"{self.average(s, measure):.4f}" for s in self.systems)])
        baseline = next(iter(self.comparisons.values())).baseline
        return f"{measure}\n" + format_table(["dataset", *self.systems], rows) + f"\n* significant against {baseline}"

    def records(self) -> list[dict[str, Any]]:
        return [{"dataset": d, **row} for d, c in self.comparisons.items() for row in c.records()]

    def to_json(self) -> dict[str, Any]:
        return {
            "datasets": {d: c.to_json() for d, c in self.comparisons.items()},
            "average": {s: {m: self.average(s, m) for m in self.measures} for s in self.systems},
        }


def compare_datasets(
    runs: Mapping[str, Mapping[str, RunSource]],
    qrels: Mapping[str, QrelsSource],
    measures: Sequence[str] = ("nDCG@10",),
    split: str | None = None,
    baseline: str | None = None,
    alpha: float = 0.05,
    correction: Correction = "holm",
) -> Benchmark:
    """``runs[system][dataset]`` against ``qrels[dataset]``: one :class:`Comparison` per dataset."""
    comparisons = {}
    for dataset, judgements in qrels.items():
        missing = [s for s, by_dataset in runs.items() if dataset not in by_dataset]
        if missing:
            raise ConfigError(f"no run for dataset {dataset!r} from {', '.join(missing)}")
        per_system = {system: by_dataset[dataset] for system, by_dataset in runs.items()}
        comparisons[dataset] = compare(per_system, judgements, measures, split, baseline, alpha, correction)
    return Benchmark(comparisons)


def mteb_result(evaluation: Evaluation, dataset: str, split: str = "test") -> dict[str, Any]:
    """An MTEB-style result object for one system on one dataset (``scores[split][0]`` holds the
    measures by MTEB's names, e.g. ``ndcg_at_10``; ``main_score`` is nDCG@10 where measured)."""
    scores = {_mteb_name(m): v for m, v in evaluation.mean.items()}
    main = scores.get("ndcg_at_10", next(iter(scores.values())))
    return {
        "task_name": dataset,
        "dataset_revision": None,
        "mteb_version": None,
        "evaluation_time": None,
        "scores": {split: [{"hf_subset": "default", "languages": [], "main_score": main, **scores}]},
    }


_MTEB_NAMES = {"ndcg": "ndcg", "r": "recall", "p": "precision", "rr": "mrr", "ap": "map"}


def _mteb_name(measure: str) -> str:
    """``nDCG@10`` -> ``ndcg_at_10``, ``R@100`` -> ``recall_at_100``, ``RR@10`` -> ``mrr_at_10``."""
    name, _, cutoff = measure.partition("@")
    base = _MTEB_NAMES.get(name.lower(), re.sub(r"\W+", "_", name).strip("_").lower())
    return f"{base}_at_{cutoff}" if cutoff else base
