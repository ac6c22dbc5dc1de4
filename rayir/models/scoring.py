"""Pure tensor functions that turn token embeddings into representations and scores.

Kept free of model state so that the index and serving code can score with exactly the same
arithmetic as the model (and tests can compare them against brute-force numpy).
"""

from __future__ import annotations

import torch


def pool(token_embeddings: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Reduce ``(B, L, D)`` token embeddings to ``(B, D)``; ``mask`` marks real tokens."""
    if how == "first":
        return token_embeddings[:, 0]
    weights = mask.unsqueeze(-1).to(token_embeddings.dtype)
    if how == "sum":
        return (token_embeddings * weights).sum(dim=1)
    if how == "mean":
        return (token_embeddings * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    if how == "max":
        filled = token_embeddings.masked_fill(~mask.bool().unsqueeze(-1), torch.finfo(token_embeddings.dtype).min)
        return filled.max(dim=1).values
    raise ValueError(f"unknown pooling {how!r}")


def splade_activation(logits: torch.Tensor, mask: torch.Tensor, how: str = "max") -> torch.Tensor:
    """SPLADE term weights: ``log(1 + relu(logits))`` over ``(B, L, V)``, pooled over masked tokens."""
    if how == "max":
        # log(1 + relu(.)) is monotonic, so pooling first gives the same vector with one pass over
        # the (B, L, V) logits instead of three.
        pooled = logits.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).max(dim=1).values
        return torch.log1p(torch.relu(pooled))
    weights = torch.log1p(torch.relu(logits)) * mask.unsqueeze(-1).to(logits.dtype)
    if how == "sum":
        return weights.sum(dim=1)
    raise ValueError(f"unknown sparse pooling {how!r}")


def _prepare(queries: torch.Tensor, docs: torch.Tensor, how: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine is a dot product of L2-normalised vectors."""
    if how == "cosine":
        return torch.nn.functional.normalize(queries, dim=-1), torch.nn.functional.normalize(docs, dim=-1)
    if how != "dot":
        raise ValueError(f"unknown similarity {how!r}")
    return queries, docs


def vector_similarity(queries: torch.Tensor, docs: torch.Tensor, how: str) -> torch.Tensor:
    """Row-wise similarity of aligned ``(N, D)`` queries and docs -> ``(N,)``."""
    queries, docs = _prepare(queries, docs, how)
    return (queries * docs).sum(dim=-1)


def vector_similarity_matrix(queries: torch.Tensor, docs: torch.Tensor, how: str) -> torch.Tensor:
    """All-pairs similarity ``(Nq, D) x (Nd, D) -> (Nq, Nd)`` (in-batch negatives, brute-force search)."""
    queries, docs = _prepare(queries, docs, how)
    return queries @ docs.T


def maxsim(
    queries: torch.Tensor,
    query_mask: torch.Tensor,
    docs: torch.Tensor,
    doc_mask: torch.Tensor,
    similarity: str = "dot",
    query_aggregation: str = "sum",
) -> torch.Tensor:
    """Late-interaction score of aligned pairs.

    ``queries`` ``(N, Lq, D)``, ``docs`` ``(N, Ld, D)``; masks mark tokens that take part.
    For every query token the maximum similarity over document tokens, then summed or averaged over
    query tokens.
    """
    queries, docs = _prepare(queries, docs, similarity)
    token_scores = queries @ docs.transpose(1, 2)  # (N, Lq, Ld)
    token_scores = token_scores.masked_fill(~doc_mask.bool().unsqueeze(1), float("-inf"))
    best = token_scores.max(dim=-1).values  # (N, Lq)
    # A document with no scoring token contributes 0 rather than -inf.
    best = torch.where(torch.isfinite(best), best, torch.zeros_like(best))
    qmask = query_mask.to(best.dtype)
    total = (best * qmask).sum(dim=-1)
    if query_aggregation == "sum":
        return total
    if query_aggregation == "mean":
        return total / qmask.sum(dim=-1).clamp(min=1)
    raise ValueError(f"unknown query aggregation {query_aggregation!r}")


def maxsim_matrix(
    queries: torch.Tensor,
    query_mask: torch.Tensor,
    docs: torch.Tensor,
    doc_mask: torch.Tensor,
    similarity: str = "dot",
    query_aggregation: str = "sum",
) -> torch.Tensor:
    """All-pairs late-interaction scores ``(Nq, Nd)``."""
    nq, nd = queries.shape[0], docs.shape[0]
    q = queries.repeat_interleave(nd, dim=0)
    qm = query_mask.repeat_interleave(nd, dim=0)
    d = docs.repeat(nq, 1, 1)
    dm = doc_mask.repeat(nq, 1)
    return maxsim(q, qm, d, dm, similarity, query_aggregation).view(nq, nd)
