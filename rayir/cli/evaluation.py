"""``rayir evaluate``: one run, several runs against a baseline, or several runs on several datasets.

Runs and qrels are given as ``PATH`` or ``NAME=PATH`` (the name labels the table; a run's default
name is its file name without suffixes). With several datasets each run path holds ``{dataset}``,
filled in with every dataset's name: ``--run bm25=out/{dataset}/bm25.run --qrels scifact=irds:beir/scifact/test
nfcorpus=irds:beir/nfcorpus/test``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Literal

from ..data.sources import is_irds_id
from ..errors import ConfigError
from .preflight import check_measures, check_source
from .stages import _check_files, _check_outputs, _report

DATASET = "{dataset}"
_LABEL = re.compile(r"([\w.+-]+)=(.+)")
_RUN_SUFFIXES = (".gz", ".run", ".trec", ".txt", ".tsv", ".res")


def evaluate(
    run: dict[str, str] | list[str] | str,
    qrels: dict[str, str] | list[str] | str,
    measures: list[str] = ["nDCG@10", "R@100"],  # noqa: B006
    split: str | None = None,
    baseline: str | None = None,
    alpha: float = 0.05,
    correction: Literal["holm", "bonferroni", "none"] = "holm",
    output: str | None = None,
    plot: str | None = None,
    mteb_output: str | None = None,
) -> dict[str, Any]:
    """Score TREC runs with ``ir_measures`` (judged queries missing from a run count 0); with several
    runs, a table with paired t-tests against the baseline; with several qrels, a BEIR-style table.

    Args:
        run: Run files (or ``irds:<id>`` scored documents), each ``PATH`` or ``NAME=PATH``; with several
            datasets the path holds ``{dataset}``.
        qrels: Judgements (a qrels file, BEIR directory with ``split``, or ``irds:<id>``), each ``[NAME=]...``.
        measures: ``ir_measures`` names.
        split: BEIR split of the qrels.
        baseline: The run the others are tested against (default: the first).
        alpha: Significance level of the corrected p-values.
        correction: Multiple-comparison correction over the runs compared with the baseline.
        output: JSON (means, per-query values, tests) or, ending in ``.csv``, the table as CSV.
        plot: PNG of the comparison (needs matplotlib).
        mteb_output: Directory for MTEB-style result files, ``<system>/<dataset>.json``.
    """
    from ..comparison import compare, compare_datasets

    _check_outputs(output=output, plot=plot, mteb_output=mteb_output)
    _check_files(output=output, plot=plot)
    datasets = _named(qrels, _dataset_name, "qrels")
    systems = _named(run, _system_name, "runs")
    if split is not None and not any(Path(q).is_dir() for q in datasets.values()):
        raise ConfigError(f"split={split!r} applies to a BEIR directory; {', '.join(datasets.values())} is not one")
    if baseline is not None and len(systems) < 2:
        raise ConfigError("baseline needs two or more runs to compare")
    several = len(datasets) > 1
    if several and (flat := [p for p in systems.values() if DATASET not in p]):
        raise ConfigError(
            f"with several datasets each run path must hold {DATASET} (e.g. out/{DATASET}/bm25.run); "
            f"{', '.join(flat)} does not"
        )
    runs = {s: {d: path.replace(DATASET, d) for d in datasets} for s, path in systems.items()}
    _check_runs_exist(runs)
    for name, source in datasets.items():
        check_source(f"qrels {name}", source, split, needs_split=True)
    check_measures(measures)
    settings = dict(measures=measures, split=split, baseline=baseline, alpha=alpha, correction=correction)
    if several:
        result = compare_datasets(runs, datasets, **settings)
        comparisons = result.comparisons
        print("\n\n".join(result.table(m) for m in result.measures), flush=True)
    else:
        (dataset,) = datasets
        result = compare({s: by_dataset[dataset] for s, by_dataset in runs.items()}, datasets[dataset], **settings)
        comparisons = {dataset: result}
        print(result.table(), flush=True)
    if output is not None:
        _write_output(output, result, comparisons)
    if plot is not None:
        from ..comparison_plot import plot_comparison

        plot_comparison(result, plot)
    if mteb_output is not None:
        _write_mteb(Path(mteb_output), comparisons, split or "test")
    return _report(_summary(result, comparisons, systems), table=False)  # its own table is printed above


def _named(value: dict[str, str] | list[str] | str, default_name: Any, what: str) -> dict[str, str]:
    """``{name: source}`` from ``PATH`` / ``NAME=PATH`` entries (a YAML mapping is taken as it is)."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    named: dict[str, str] = {}
    for entry in [value] if isinstance(value, str) else value:
        label = _LABEL.fullmatch(entry)
        name, source = (label.group(1), label.group(2)) if label and not Path(entry).exists() else (None, entry)
        name = name or default_name(source)
        if name in named:
            raise ConfigError(f"two {what} are named {name!r} ({named[name]}, {source}): name them as NAME=PATH")
        named[name] = source
    if not named:
        raise ConfigError(f"no {what} given")
    return named


def _system_name(path: str) -> str:
    """``out/{dataset}/bm25.run.gz`` -> ``bm25``; ``runs/dense-{dataset}.run`` -> ``dense``;
    ``irds:msmarco-passage/dev/small`` -> ``msmarco-passage/dev/small``."""
    if path.startswith("irds:"):
        return path.removeprefix("irds:")
    name = Path(path).name
    while name.endswith(_RUN_SUFFIXES):
        name = name[: name.rfind(".")]
    return name.replace(DATASET, "").strip("-_.") or path


def _dataset_name(source: str) -> str:
    """``irds:beir/scifact/test`` -> ``beir/scifact/test``; ``data/scifact`` and ``data/scifact/qrels/test.tsv``
    -> ``scifact``."""
    if is_irds_id(source):
        return source.removeprefix("irds:")
    path = Path(source)
    if path.parent.name == "qrels":
        return path.parent.parent.name or path.stem
    return path.name if path.is_dir() else path.stem


def _check_runs_exist(runs: dict[str, dict[str, str]]) -> None:
    """Every run file exists before any is read (the last one missing is found in a second)."""
    paths = {path for by_dataset in runs.values() for path in by_dataset.values()}
    for path in sorted(paths):
        if path.startswith("irds:"):
            check_source("run", path)  # an ir_datasets id's scored documents
        else:
            _check_files(run=path)
    missing = sorted(p for p in paths if not p.startswith("irds:") and not Path(p).is_file())
    if missing:
        raise FileNotFoundError(f"run file not found: {', '.join(missing)}")


def _write_output(output: str, result: Any, comparisons: dict[str, Any]) -> None:
    from ..atomic import write_json, write_with

    if output.endswith(".csv"):
        records = [{"dataset": d, **row} for d, c in comparisons.items() for row in c.records()]

        def write(path: Path) -> None:
            with path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(records[0]))
                writer.writeheader()
                writer.writerows(records)

        write_with(output, write)
        return
    if len(comparisons) == 1 and len(result.systems) == 1:  # one run: the layout `rayir evaluate` always wrote
        evaluation = next(iter(result.evaluations.values()))
        write_json(
            output,
            {"mean": evaluation.mean, "per_query": evaluation.per_query, "missing_queries": evaluation.missing_queries},
        )
        return
    write_json(output, result.to_json())


def _write_mteb(directory: Path, comparisons: dict[str, Any], split: str) -> None:
    from ..atomic import write_json
    from ..comparison import mteb_result

    for dataset, comparison in comparisons.items():
        for system, evaluation in comparison.evaluations.items():
            file_name = re.sub(r"[^\w.+-]+", "_", dataset) + ".json"
            write_json(directory / system / file_name, mteb_result(evaluation, dataset, split))


def _summary(result: Any, comparisons: dict[str, Any], systems: dict[str, str]) -> dict[str, Any]:
    if len(comparisons) == 1 and len(systems) == 1:
        comparison = next(iter(comparisons.values()))
        evaluation = next(iter(comparison.evaluations.values()))
        return {
            "stage": "evaluate",
            "run": next(iter(systems.values())),
            "queries": evaluation.num_queries,
            "missing_queries": len(evaluation.missing_queries),
            **{name: round(value, 6) for name, value in evaluation.mean.items()},
        }
    summary: dict[str, Any] = {"stage": "evaluate", "baseline": next(iter(comparisons.values())).baseline}
    for dataset, comparison in comparisons.items():
        summary.setdefault("datasets", {})[dataset] = {
            "queries": comparison.num_queries,
            **{
                system: {
                    **{m: round(comparison.mean(system, m), 6) for m in comparison.measures},
                    "significant": [m for m, t in comparison.tests.get(system, {}).items() if t.significant],
                }
                for system in comparison.systems
            },
        }
    return summary
