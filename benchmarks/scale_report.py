"""The report of ``scale.py``: its table (text or Markdown), growth exponents and plot, from the
saved result rows (one dict per system, kind and collection size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def growth(rows: list[dict]) -> list[tuple]:
    """Slope of log(cost) against log(documents) per system and cost (least squares over sizes)."""
    out = []
    for key in sorted({(r["kind"], r["system"], r["shards"]) for r in rows}):
        same = sorted((r for r in rows if (r["kind"], r["system"], r["shards"]) == key), key=lambda r: r["documents"])
        if len(same) < 2:
            continue
        x = np.log([r["documents"] for r in same])
        slope = lambda values: float(np.polyfit(x, np.log(values), 1)[0])  # noqa: E731
        out.append(
            (
                *key,
                slope([r["build_s"] for r in same]),
                slope([1 / r["qps"] for r in same]),
                slope([r["search_mib"] for r in same]),
            )
        )
    return out


def label(row: dict) -> str:
    return f"rayir {row['shards']} shard(s)" if row["system"] == "rayir" else row["system"]


# One look per system in every panel: rayir in blues (darker = more shards), exact peers solid,
# approximate peers (HNSW, Seismic) dashed.
STYLES = {
    "rayir 1 shard(s)": ("#9ecae1", "-"),
    "rayir 2 shard(s)": ("#4292c6", "-"),
    "rayir 4 shard(s)": ("#08519c", "-"),
    "bm25s": ("#d62728", "-"),
    "faiss-flat": ("#d62728", "-"),
    "torch-csr": ("#d62728", "-"),
    "faiss-hnsw": ("#ff7f0e", "--"),
    "seismic": ("#ff7f0e", "--"),
}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({r["kind"] for r in rows})
    figure, axes = plt.subplots(2, len(kinds), figsize=(5 * len(kinds), 8), squeeze=False)
    for column, kind in enumerate(kinds):
        mine = [r for r in rows if r["kind"] == kind]
        for name in sorted({label(r) for r in mine}):
            line = sorted((r for r in mine if label(r) == name), key=lambda r: r["documents"])
            sizes = [r["documents"] for r in line]
            color, dashes = STYLES.get(name, ("black", ":"))
            style = {"marker": "o", "label": name, "color": color, "linestyle": dashes}
            axes[0][column].plot(sizes, [r["qps"] for r in line], **style)
            axes[1][column].plot(sizes, [r["search_mib"] for r in line], **style)
        for row, title in ((0, "queries/s (one thread per process)"), (1, "peak RSS per search process, MiB")):
            axes[row][column].set_xscale("log")
            axes[row][column].set_yscale("log")
            axes[row][column].set_title(f"{kind}: {title}", fontsize=10)
            axes[row][column].set_xlabel("documents")
            axes[row][column].grid(True, which="major", alpha=0.3)
            axes[row][column].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def format_table(header: list[str], body: list[list[str]], markdown: bool) -> str:
    """Aligned text columns, or a Markdown table (for the README)."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])
    widths = [max(len(cells[i]) for cells in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        for cells in [header, *body]
    )


def cell(value: float | None, digits: int = 0) -> str:
    """A number, or "-" where nothing was measured (NaN: a build task too short for the sampler)."""
    return "-" if value is None or value != value else f"{value:,.{digits}f}"


def print_tables(rows: list[dict], peers: dict[str, list[str]], markdown: bool = False) -> None:
    """The results table ("vs peer": against each kind's first peer) and the growth exponents."""
    header = ["kind", "docs", "system", "build s", "build MiB", "q/s", "vs peer", "p50 ms", "p99 ms"]
    header += ["search MiB", "driver MiB", "recall@10", "src@10"]
    body = []
    for row in sorted(rows, key=lambda r: (r["kind"], r["documents"], r["system"] != "rayir", r["shards"])):
        same = [p for p in rows if (p["kind"], p["documents"]) == (row["kind"], row["documents"])]
        peer = next((p for p in same if p["system"] == peers[row["kind"]][0]), None)
        body.append(
            [
                row["kind"],
                f"{row['documents']:,}",
                label(row),
                cell(row["build_s"], 1),
                cell(row["build_mib"]),
                cell(row["qps"], 1),
                f"{row['qps'] / peer['qps']:.2f}x" if peer else "",
                cell(row["p50_ms"], 1),
                cell(row["p99_ms"], 1),
                cell(row["search_mib"]),
                cell(row.get("driver_mib")),
                f"{row['recall']:.3f}",
                cell(row.get("source_at_10"), 2),
            ]
        )
    print(format_table(header, body, markdown))
    print("\nGrowth exponents (cost ~ documents^x, least squares over the sizes run)\n")
    growth_rows = [
        [kind, label({"system": system, "shards": shards}), f"{build:.2f}", f"{per_query:.2f}", f"{memory:.2f}"]
        for kind, system, shards, build, per_query, memory in growth(rows)
    ]
    print(format_table(["kind", "system", "build s", "s/query", "search MiB"], growth_rows, markdown))
