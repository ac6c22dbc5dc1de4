"""Carve a validation split out of a BEIR training split, so that fine-tuning settings are chosen
on queries the model never trains on and the test split is read once, for the final figure.

Writes a new BEIR directory (the source is only read): ``corpus.jsonl`` and ``queries.jsonl`` as
links to the source's, ``qrels/<split>.tsv`` (the source's other splits, linked), ``qrels/fit.tsv`` (the
training split less the held-out queries) and ``qrels/val.tsv`` (``--size`` queries drawn with
``--seed``). Every judgement of the training split lands in exactly one of the two.

    python benchmarks/carve_validation.py data/scifact outputs/scifact-carved --split train --size 100
"""

from __future__ import annotations

import argparse
import logging
import random
from collections import defaultdict
from pathlib import Path

logger = logging.getLogger("carve_validation")


def carve(source: Path, output: Path, split: str, size: int, seed: int) -> tuple[int, int]:
    """Write the carved directory; returns (fit queries, validation queries)."""
    lines = (source / "qrels" / f"{split}.tsv").read_text().splitlines()
    header = lines[0] if lines and lines[0].split("\t")[0] == "query-id" else None
    by_query: dict[str, list[str]] = defaultdict(list)
    for line in lines[1 if header else 0 :]:
        if line.strip():
            by_query[line.split("\t")[0]].append(line)
    if size >= len(by_query):
        raise ValueError(f"{source}/qrels/{split}.tsv has {len(by_query)} queries: cannot hold out {size}")
    held_out = set(random.Random(seed).sample(sorted(by_query), size))

    (output / "qrels").mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        _link(source / name, output / name)
    for other in (source / "qrels").glob("*.tsv"):
        if other.stem != split:
            _link(other, output / "qrels" / other.name)
    for name, keep in (("fit", lambda q: q not in held_out), ("val", lambda q: q in held_out)):
        rows = [line for query, group in by_query.items() if keep(query) for line in group]
        (output / "qrels" / f"{name}.tsv").write_text("\n".join(([header] if header else []) + rows) + "\n")
    return len(by_query) - size, size


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target.resolve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="BEIR directory")
    parser.add_argument("output", type=Path, help="directory to write (links + qrels)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--size", type=int, default=100, help="held-out queries")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fit, val = carve(args.source, args.output, args.split, args.size, args.seed)
    logger.info("%s: qrels/fit.tsv %d queries, qrels/val.tsv %d queries", args.output, fit, val)


if __name__ == "__main__":
    main()
