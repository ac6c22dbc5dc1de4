"""``rayir evaluate --plot``: a PNG of a comparison that says more at a glance than the table.

One dataset: the means of the first measure with 95% confidence intervals, then for each system
beside the baseline its per-query differences, sorted (how many queries it helps or hurts, and
by how much). Several datasets: the first measure per dataset and system (grouped bars with 95% confidence
intervals) and the average over datasets.
"""

from __future__ import annotations

import math
from pathlib import Path

from .comparison import Benchmark, Comparison
from .errors import ConfigError


def plot_comparison(result: Comparison | Benchmark, path: str | Path) -> Path:
    """Write the figure to ``path`` (PNG) and return it."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'rayir[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = _benchmark_figure(plt, result) if isinstance(result, Benchmark) else _comparison_figure(plt, result)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def _comparison_figure(plt, comparison: Comparison):  # noqa: ANN001, ANN202 - pyplot stays an optional import
    measure = comparison.measures[0]
    others = [s for s in comparison.systems if s != comparison.baseline]
    figure, axes = plt.subplots(1, 1 + len(others), figsize=(4.5 * (1 + len(others)), 4), squeeze=False)
    means, errors = [], []
    for system in comparison.systems:
        mean, half_width = _mean_interval(list(comparison.evaluations[system].per_query[measure].values()))
        means.append(mean)
        errors.append(half_width)
    bars = axes[0][0]
    colours = ["tab:gray" if s == comparison.baseline else "tab:blue" for s in comparison.systems]
    bars.bar(range(len(means)), means, yerr=errors, capsize=4, color=colours)
    bars.set_xticks(range(len(means)), comparison.systems, rotation=20, ha="right")
    bars.set_ylabel(f"mean {measure} (95% CI)")
    bars.set_title(f"{comparison.num_queries} queries")
    baseline = comparison.evaluations[comparison.baseline].per_query[measure]
    for axis, system in zip(axes[0][1:], others):
        values = comparison.evaluations[system].per_query[measure]
        differences = sorted((values[q] - baseline[q] for q in baseline), reverse=True)
        colours = ["tab:green" if d > 0 else "tab:red" if d < 0 else "tab:gray" for d in differences]
        axis.bar(range(len(differences)), differences, width=1.0, color=colours)
        axis.axhline(0, color="black", linewidth=0.8)
        test = comparison.tests[system][measure]
        axis.set_title(
            f"{system} − {comparison.baseline}\n+{test.better} / −{test.worse} queries, "
            f"p={test.p_corrected:.3g} ({comparison.correction})"
        )
        axis.set_xlabel("queries, sorted by difference")
        axis.set_ylabel(f"{measure} difference")
    figure.tight_layout()
    return figure


def _benchmark_figure(plt, benchmark: Benchmark):  # noqa: ANN001, ANN202
    measure = benchmark.measures[0]
    datasets = [*benchmark.comparisons, "average"]
    systems = benchmark.systems
    width = 0.8 / len(systems)
    figure, axis = plt.subplots(figsize=(max(5.0, 1.2 * len(datasets) * len(systems) / 2 + 3), 4))
    for offset, system in enumerate(systems):
        intervals = [
            _mean_interval(list(c.evaluations[system].per_query[measure].values()))
            for c in benchmark.comparisons.values()
        ]
        values = [mean for mean, _ in intervals] + [benchmark.average(system, measure)]
        errors = [half_width for _, half_width in intervals] + [0.0]
        positions = [i + (offset - (len(systems) - 1) / 2) * width for i in range(len(datasets))]
        axis.bar(positions, values, width=width, yerr=errors, capsize=3, label=system)
    axis.set_xticks(range(len(datasets)), datasets)
    axis.set_ylabel(f"mean {measure} (95% CI per dataset)")
    axis.legend()
    figure.tight_layout()
    return figure


def _mean_interval(values: list[float]) -> tuple[float, float]:
    """The mean and the half-width of its 95% Student-t confidence interval."""
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    deviation = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(stats.t.ppf(0.975, n - 1)) * deviation / math.sqrt(n)
