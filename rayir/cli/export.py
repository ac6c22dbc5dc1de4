"""``rayir export``: a fine-tuned dense bi-encoder as a sentence-transformers directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .preflight import check_model
from .stages import _check_outputs, _report


def export(checkpoint: str, output: str, overwrite: bool = False) -> dict[str, Any]:
    """Write a dense bi-encoder (``rayir fit``'s checkpoint, or any layout rayir loads) as a
    sentence-transformers model: ``SentenceTransformer(output)`` gives rayir's document vectors.

    Args:
        checkpoint: Bi-encoder checkpoint directory, ``pkg:<module>`` or Hub id.
        output: Directory to write (upload it with ``hf upload <org>/<name> <output>``).
        overwrite: Replace what ``output`` holds.
    """
    _check_outputs(output=output)
    out = Path(output)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"output={output} is not empty; give another directory or --overwrite true")
    check_model(checkpoint, lexical=False)
    from ..models.export import export_sentence_transformers

    export_sentence_transformers(checkpoint, out)
    return _report({"stage": "export", "checkpoint": checkpoint, "output": output, "format": "sentence-transformers"})
