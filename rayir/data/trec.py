"""TREC qrels and run files (and BEIR qrels TSVs), read and written.

Qrels are ``{query_id: {doc_id: relevance}}``; runs are ``{query_id: {doc_id: score}}``: the
shapes ``ir_measures`` and ``pytrec_eval`` take. A run file is written in TREC format,
``qid Q0 docid rank score tag``, ranked by score (ties broken by doc id) so that output is
deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..atomic import atomic_path
from .errors import DataFormatError, checked_id
from .irds import irds_qrels
from .sources import is_irds_id, numbered_lines

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


def read_qrels(source: str | Path, split: str | None = None) -> Qrels:
    """Qrels from a TREC qrels file, a BEIR ``qrels/*.tsv`` (header optional), a BEIR directory plus
    ``split``, or an ``ir_datasets`` id."""
    if is_irds_id(source):
        return irds_qrels(str(source))
    path = Path(source)
    if path.is_dir():
        if split is None:
            raise ValueError(f"{path}: a BEIR directory needs a split (e.g. 'test') to read qrels")
        path = path / "qrels" / f"{split}.tsv"
    qrels: Qrels = {}
    for line_no, line in numbered_lines(path):
        # BEIR qrels are tab-separated (an id may not hold a space, but must not be cut at one).
        fields = [f.strip() for f in line.split("\t")] if "\t" in line else line.split()
        if not any(fields):
            continue
        if line_no == 1 and fields[0].lower() in ("query-id", "qid", "query_id"):
            continue  # BEIR header
        if len(fields) == 4:
            query_id, _, doc_id, rel = fields
        elif len(fields) == 3:
            query_id, doc_id, rel = fields
        else:
            raise DataFormatError(
                path, line_no, f"expected 'qid 0 docid rel' or 'qid docid rel', found {len(fields)} fields"
            )
        try:
            value = float(rel)
        except ValueError:
            raise DataFormatError(path, line_no, f"relevance {rel!r} is not a number") from None
        if not value.is_integer():
            raise DataFormatError(path, line_no, f"relevance {rel!r} is not a whole number")
        relevance = int(value)
        query_id, doc_id = checked_id(path, line_no, query_id, "query id"), checked_id(path, line_no, doc_id)
        judged = qrels.setdefault(query_id, {})
        if doc_id in judged and judged[doc_id] != relevance:
            raise DataFormatError(path, line_no, f"conflicting judgements for ({query_id}, {doc_id})")
        judged[doc_id] = relevance
    return qrels


def read_run(path: str | Path) -> Run:
    """A TREC run file (``qid Q0 docid rank score tag``), or an ``irds:<id>``'s scored documents; a
    repeated (query, doc) pair is an error."""
    if isinstance(path, str) and path.startswith("irds:"):
        from .irds import irds_scoreddocs

        return irds_scoreddocs(path)
    path = Path(path)
    run: Run = {}
    for line_no, line in numbered_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise DataFormatError(path, line_no, f"expected 'qid Q0 docid rank score tag', found {len(fields)} fields")
        query_id, _, doc_id, _, score, _ = fields
        try:
            value = float(score)
        except ValueError:
            raise DataFormatError(path, line_no, f"score {score!r} is not a number") from None
        if not math.isfinite(value):
            raise DataFormatError(path, line_no, f"score {score!r} is not finite (it cannot be ranked)")
        ranked = run.setdefault(query_id, {})
        if doc_id in ranked:
            raise DataFormatError(path, line_no, f"document {doc_id!r} ranked twice for query {query_id!r}")
        ranked[doc_id] = value
    return run


def ranked(scores: Mapping[str, float], depth: int | None = None) -> list[tuple[str, float]]:
    """Documents by descending score, ties by doc id; the first ``depth``."""
    order = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return order[:depth] if depth is not None else order


def format_run_lines(
    run: Mapping[str, Mapping[str, float]], tag: str = "rayir", depth: int | None = None
) -> Iterable[str]:
    for query_id in sorted(run):
        for rank, (doc_id, score) in enumerate(ranked(run[query_id], depth), start=1):
            yield f"{query_id} Q0 {doc_id} {rank} {score:.8g} {tag}\n"


def check_tag(tag: str) -> None:
    if any(c.isspace() for c in tag) or not tag:
        raise ValueError(f"run tag {tag!r} must be one word")


def write_run(
    run: Mapping[str, Mapping[str, float]], path: str | Path, tag: str = "rayir", depth: int | None = None
) -> Path:
    """Write atomically (temporary file, then rename): a run file either exists whole or not at all."""
    check_tag(tag)
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        handle.writelines(format_run_lines(run, tag, depth))
    return path
