"""Representations behind one seam: neural bi-encoders and the lexical models (BM25).

``load_representation(model, overrides, precision, run)`` describes a model (a neural one by a
task on ``run``, so the driver never loads it);
``load_document_encoder`` / ``load_query_encoder`` rebuild the family's encoders from a
manifest's spec on any worker. The family is chosen by looking the model name up among the
lexical models; anything else is a neural checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..lexical import LEXICAL_MODELS
from ..representation import DocumentEncoder, EncoderSpec, QueryEncoder, Representation, Runtime

if TYPE_CHECKING:
    from ..execution import Executor


def family(model: str) -> Any:
    """The class implementing :class:`Representation` for ``model``."""
    lexical = LEXICAL_MODELS.get(str(model))
    if lexical is not None:
        return lexical
    from .neural import NeuralBiEncoder

    return NeuralBiEncoder


def load_representation(
    model: str | Path, overrides: dict[str, Any] | None = None, precision: str = "float32", run: Executor | None = None
) -> Representation:
    """``model`` described for a manifest; ``run`` (default: in this process) runs any probe task."""
    from ..execution import LocalExecutor

    return family(str(model))(str(model), dict(overrides or {}), precision, run or LocalExecutor())


def load_document_encoder(spec: EncoderSpec, files: Path | None, staging: Path, runtime: Runtime) -> DocumentEncoder:
    return family(spec.model).document_encoder(spec, files, staging, runtime)


def load_query_encoder(spec: EncoderSpec, files: Path | None, mode: str, runtime: Runtime) -> QueryEncoder:
    return family(spec.model).query_encoder(spec, files, mode, runtime)


__all__ = [
    "DocumentEncoder",
    "EncoderSpec",
    "QueryEncoder",
    "Representation",
    "Runtime",
    "family",
    "load_document_encoder",
    "load_query_encoder",
    "load_representation",
]
