"""Lexical retrieval: BM25 as sparse vectors on the exact inverted index (not a neural model).

``LEXICAL_MODELS`` maps the model names a config may give (``model: bm25``) to their
representation; :mod:`rayir.encoders` looks names up here before treating them as checkpoints.
This package imports neither torch nor transformers.
"""

from __future__ import annotations

from .representation import NAME, BM25Representation

DEFAULT_MODEL = NAME
LEXICAL_MODELS = {NAME: BM25Representation}

__all__ = ["DEFAULT_MODEL", "LEXICAL_MODELS", "BM25Representation"]
