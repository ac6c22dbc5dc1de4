"""Pure tensor functions that turn token embeddings into representations and scores.

Kept free of model state so that the index and serving code can score with exactly the same
arithmetic as the model (and tests can compare them against brute-force numpy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .bi_encoder import Embeddings


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
        return torch.log1p(torch.relu(MaskedTokenMax.apply(logits, mask.bool())))
    weights = torch.log1p(torch.relu(logits)) * mask.unsqueeze(-1).to(logits.dtype)
    if how == "sum":
        return weights.sum(dim=1)
    raise ValueError(f"unknown sparse pooling {how!r}")


class MaskedTokenMax(torch.autograd.Function):
    """Max of ``(B, L, V)`` logits over each row's masked tokens; ``-inf`` where a row has none.

    Why not ``masked_fill(...).max(dim=1)``: at SPLADE's sizes (V = 30,522) that copies the whole
    logits tensor and tracks indices along a strided axis, and took as long as the vocabulary
    projection itself (3.2 s of 6.1 s for 64 documents of 256 tokens here). Reducing each row's
    contiguous ``(L, V)`` block takes 0.2 s. The gradient follows ``torch.amax``: shared evenly by
    tied tokens (ties do happen: among 256 float32 logits over 30,522 terms, about one per batch).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        full, empty = mask.all(dim=1).tolist(), (~mask.any(dim=1)).tolist()
        rows = []
        for row, row_mask, is_full, is_empty in zip(logits, mask, full, empty):
            if is_empty:
                rows.append(row.new_full(row.shape[1:], float("-inf")))
            else:
                rows.append((row if is_full else row[row_mask]).amax(dim=0))
        pooled = torch.stack(rows)
        ctx.save_for_backward(logits, mask, pooled)
        return pooled

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        logits, mask, pooled = ctx.saved_tensors
        winners = (logits == pooled.unsqueeze(1)).logical_and_(mask.unsqueeze(-1))
        # Tokens reaching each (row, term) max; counted in uint8 blocks of 255 tokens, which is
        # vectorised (a bool or int32 count along the token axis was 20-60x slower here).
        bytes_ = winners.view(torch.uint8)
        counts = sum(
            bytes_[:, start : start + 255].sum(dim=1, dtype=torch.uint8).to(grad.dtype)
            for start in range(0, bytes_.shape[1], 255)
        )
        grad = grad / counts.clamp_(min=1)
        return torch.where(winners, grad.unsqueeze(1), grad.new_zeros(())), None


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


def token_similarity(
    queries: torch.Tensor, docs: torch.Tensor, doc_mask: torch.Tensor, similarity: str = "dot"
) -> torch.Tensor:
    """Aligned pairs' token similarities ``(N, Lq, Ld)``; ``-inf`` where a document token is masked."""
    queries, docs = _prepare(queries, docs, similarity)
    return (queries @ docs.transpose(1, 2)).masked_fill(~doc_mask.bool().unsqueeze(1), float("-inf"))


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


def token_weights_to_vocabulary(
    weights: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor, vocab: int
) -> torch.Tensor:
    """UniCOIL vectors: each token's ``relu``-ed weight ``(B, L)`` at its vocabulary id ``(B, V)``;
    a token that occurs more than once keeps its largest weight; tokens outside ``mask`` weigh 0."""
    weights = torch.relu(weights) * mask.to(weights.dtype)
    vectors = torch.zeros(weights.shape[0], vocab, dtype=weights.dtype, device=weights.device)
    return vectors.scatter_reduce(1, input_ids, weights, reduce="amax", include_self=True)


def xtr_scores(
    query: torch.Tensor, query_mask: torch.Tensor, docs: torch.Tensor, doc_mask: torch.Tensor, similarity: str, k: int
) -> torch.Tensor:
    """XTR training scores of one query ``(Lq, D)`` against its documents ``(N, Ld, D)``.

    In-batch token retrieval: of all (query token, document token) similarities over the ``N``
    documents, only the query's ``k`` largest are kept (the others count 0); each query token takes
    its best kept match per document, summed and divided by the number of query tokens whose best
    kept match is positive (at least 1)."""
    query, docs = _prepare(query, docs, similarity)
    sims = torch.einsum("qd,nld->nql", query, docs)  # (N, Lq, Ld)
    valid = query_mask.bool()[None, :, None] & doc_mask.bool()[:, None, :]
    sims = sims.masked_fill(~valid, float("-inf"))
    k = min(k, sims.numel())
    threshold = torch.topk(sims.flatten(), k).values[-1]
    kept = sims.masked_fill((sims < threshold) | ~valid, 0.0)  # masked tokens count 0 even when k exceeds them
    best = kept.max(dim=-1).values  # (N, Lq)
    found = (best > 0).sum(dim=-1).clamp(min=1).to(best.dtype)
    return best.sum(dim=-1) / found


def xtr_grouped(
    queries: torch.Tensor,
    query_mask: torch.Tensor,
    docs: torch.Tensor,
    doc_mask: torch.Tensor,
    num_docs: list[int],
    similarity: str,
    k: int,
) -> torch.Tensor:
    """XTR scores of each query against its own ``num_docs[i]`` consecutive documents (flat)."""
    parts, start = [], 0
    for i, count in enumerate(num_docs):
        stop = start + count
        parts.append(xtr_scores(queries[i], query_mask[i], docs[start:stop], doc_mask[start:stop], similarity, k))
        start = stop
    return torch.cat(parts)


def xtr_matrix(
    queries: torch.Tensor, query_mask: torch.Tensor, docs: torch.Tensor, doc_mask: torch.Tensor, similarity: str, k: int
) -> torch.Tensor:
    """XTR scores ``(Nq, Nd)``: each query retrieves its top-``k`` tokens from all in-batch documents."""
    return torch.stack([xtr_scores(q, m, docs, doc_mask, similarity, k) for q, m in zip(queries, query_mask)])


def coil(queries: Embeddings, docs: Embeddings) -> torch.Tensor:
    """COIL scores of aligned pairs: first-token dot product plus, per query token, its best dot
    product with a document token of the same vocabulary id, floored at 0 (``(N,)``)."""
    first = (queries.first * docs.first).sum(dim=-1)
    sims = queries.vectors @ docs.vectors.transpose(1, 2)  # (N, Lq, Ld)
    same = (queries.token_ids.unsqueeze(2) == docs.token_ids.unsqueeze(1)) & docs.mask.bool().unsqueeze(1)
    best = torch.where(same, sims, torch.zeros_like(sims)).amax(dim=-1).clamp(min=0)  # (N, Lq)
    return first + (best * queries.mask.to(best.dtype)).sum(dim=-1)
