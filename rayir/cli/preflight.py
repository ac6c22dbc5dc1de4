"""Checks a stage makes before it loads a model, starts Ray or reads a collection: a missing path,
an unknown ir_datasets id or measure, a BEIR directory without its split, a model that is not
there — each ends in one line within seconds instead of after minutes of work."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError


def check_model(model: str, lexical: bool = True) -> None:
    """A lexical model name (where ``lexical``), a ``pkg:`` module that provides a checkpoint, or a
    checkpoint directory."""
    from ..lexical import LEXICAL_MODELS

    if str(model) in LEXICAL_MODELS:
        if not lexical:
            raise ConfigError(f"model={model} is a lexical model; this stage takes a neural checkpoint")
        return
    from ..checkpoints import resolve_model_dir

    resolve_model_dir(model)


def check_source(name: str, source: str | None, split: str | None = None, needs_split: bool = False) -> None:
    """``source`` exists as a path or is an ir_datasets id that ir_datasets knows; a BEIR directory
    read for queries or qrels (``needs_split``) has ``split``, and that split exists."""
    if source is None:
        return
    from ..data.irds import load_irds
    from ..data.sources import is_irds_id

    if is_irds_id(source):
        load_irds(str(source))  # an unknown id or a missing path: one error, nothing downloaded
        return
    path = Path(source)
    if not path.is_dir():
        return
    splits = sorted(p.name.split(".")[0] for p in (path / "qrels").glob("*.tsv*"))
    if needs_split and split is None:
        raise ConfigError(
            f"{name}={source} is a BEIR directory: give --split to choose its queries and judgements "
            f"(it has: {', '.join(splits) or 'no qrels/*.tsv'})"
        )
    if split is not None and needs_split and split not in splits:
        raise ConfigError(f"{name}={source} has no split {split!r} (no qrels/{split}.tsv; it has: {', '.join(splits)})")


def check_measures(measures: Sequence[str]) -> None:
    """Every name parses as an ``ir_measures`` measure (``nDCG@10``, ``RR@10``, ``Judged@10``...)."""
    import ir_measures

    for measure in measures:
        try:
            ir_measures.parse_measure(measure)
        except Exception as err:  # ir_measures raises NameError, ValueError or TypeError by the case
            raise ConfigError(
                f"unknown measure {measure!r} ({type(err).__name__}: {err}); ir_measures names are case-sensitive, "
                "e.g. nDCG@10, RR@10, R@100, AP, P@5, Judged@10"
            ) from None
