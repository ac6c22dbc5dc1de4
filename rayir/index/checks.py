"""Structural checks of a loaded index shard's arrays, before any search kernel runs.

Checksums (:mod:`rayir.integrity`) catch a file changed after the build; these catch a file that was
crafted or built wrong: an out-of-range document number or a non-monotone ``indptr`` is an error
naming the file, not a wrong result or a crash inside the compiled kernel (which indexes without
bounds checks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IntegrityError


def check_array(path: Path, array: np.ndarray, dtype: Any, ndim: int, length: int | None = None) -> np.ndarray:
    """``array`` (read from ``path``) has the dtype, rank and length the backend writes."""
    if array.dtype != np.dtype(dtype) or array.ndim != ndim:
        raise IntegrityError(
            f"{path}: {array.dtype} array of rank {array.ndim}, expected {np.dtype(dtype)} of rank {ndim}"
        )
    if length is not None and len(array) != length:
        raise IntegrityError(f"{path}: {len(array)} rows, expected {length}")
    return array


def check_range(path: Path, array: np.ndarray, low: int, high: int, what: str) -> None:
    """Every value of ``array`` in ``[low, high)`` (document numbers, term ids)."""
    if len(array) and (int(array.min()) < low or int(array.max()) >= high):
        raise IntegrityError(f"{path}: {what} outside [{low}, {high})")


def check_offsets(path: Path, offsets: np.ndarray, end: int) -> None:
    """CSR-style offsets: start at 0, never decrease, end at ``end`` (the entries they index)."""
    if not len(offsets) or offsets[0] != 0 or offsets[-1] != end or (np.diff(offsets) < 0).any():
        raise IntegrityError(f"{path}: offsets must start at 0, never decrease and end at {end}")


def check_finite(path: Path, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        raise IntegrityError(f"{path}: holds values that are not finite (NaN or infinity)")


def check_faiss(path: Path, index: Any, vectors: int | None, dim: int | None) -> None:
    """A Faiss index holds as many vectors, of the dimension, as the shard's ``meta.json`` says."""
    if index.ntotal != vectors or index.d != dim:
        raise IntegrityError(
            f"{path}: {index.ntotal} vectors of dimension {index.d}, meta.json says {vectors} of {dim}"
        )
