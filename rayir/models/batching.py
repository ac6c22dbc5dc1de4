"""Length-sorted mini-batches under a token budget: the one batching rule of every scorer.

Transformer cost grows with the padded length of a batch, so texts (or pairs) of similar token
counts go together: sorted longest first, each batch holds as many as fit ``batch_size *
max_length`` tokens at its longest member's length (short texts form larger batches, long ones
stay at ``batch_size``, never more than ``4 * batch_size``). Document encoders and re-rank scorers
both batch this way; sentence-transformers sorts by length for the same reason.
"""

from __future__ import annotations

import numpy as np


def length_sorted_batches(lengths: np.ndarray, batch_size: int, max_length: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """``order`` (positions, longest first) and the batches: consecutive slices of ``order``."""
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    budget = batch_size * max_length
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        size = max(1, min(budget // longest, 4 * batch_size))
        batches.append(order[start : start + size])
        start += size
    return order, batches


def restore_order(order: np.ndarray) -> np.ndarray:
    """Positions that put values computed in ``order`` back where they came from."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return inverse
