"""Training losses: pairwise, listwise, in-batch and sparsity regularisation.

Every loss reads what it needs from :class:`LossInputs` and carries its own ``weight``; a module
trains on the weighted sum of its losses. ``scores`` / ``targets`` are ``(B, n)``: each query's own
candidates (positive first for tuple data); ``in_batch_scores`` are ``(B, N)`` against every document
of the global batch (all workers), with ``in_batch_targets`` the column of each query's positive.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from .loss_base import Loss, LossInputs


def _positive_column(targets: torch.Tensor) -> torch.Tensor:
    return targets.argmax(dim=1)


class RankNet(Loss):
    """Pairwise logistic loss over every candidate pair whose targets differ (Burges et al., 2005)."""

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        score_diff = inputs.scores.unsqueeze(2) - inputs.scores.unsqueeze(1)  # s_i - s_j
        better = (inputs.targets.unsqueeze(2) > inputs.targets.unsqueeze(1)).to(score_diff.dtype)
        losses = F.softplus(-score_diff) * better  # -log sigmoid(s_i - s_j) where i should beat j
        return losses.sum() / better.sum().clamp(min=1)


class MarginMSE(Loss):
    """MSE between score margins (positive minus each negative) and target margins.

    ``margin=None`` takes the target margins from ``targets`` (distillation: teacher scores);
    a number uses that constant margin for every pair (Hofstätter et al., 2020).
    """

    def __init__(self, margin: float | None = None, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.margin = margin

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        positive = _positive_column(inputs.targets)
        rows = torch.arange(len(positive), device=positive.device)
        score_margin = inputs.scores[rows, positive].unsqueeze(1) - inputs.scores
        if self.margin is None:
            target_margin = inputs.targets[rows, positive].unsqueeze(1) - inputs.targets
        else:
            target_margin = torch.full_like(score_margin, self.margin)
        negatives = torch.ones_like(score_margin, dtype=torch.bool)
        negatives[rows, positive] = False
        return F.mse_loss(score_margin[negatives], target_margin[negatives].to(score_margin.dtype))


class KLDivergence(Loss):
    """KL(teacher || student) between softmax distributions over each query's candidates."""

    def __init__(self, temperature: float = 1.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.temperature = temperature

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        student = F.log_softmax(inputs.scores / self.temperature, dim=1)
        teacher = F.log_softmax(inputs.targets.to(student.dtype) / self.temperature, dim=1)
        return F.kl_div(student, teacher, log_target=True, reduction="batchmean")


class InfoNCE(Loss):
    """Cross-entropy of the positive among the query's own candidates (hard negatives only)."""

    def __init__(self, temperature: float = 1.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.temperature = temperature

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        return F.cross_entropy(inputs.scores / self.temperature, _positive_column(inputs.targets))


class InBatchCrossEntropy(Loss):
    """Cross-entropy of the positive among *all* documents of the global batch (every worker's).

    Bi-encoders only. Each query sees its own hard negatives plus every other query's documents.
    """

    needs_in_batch = True

    def __init__(self, temperature: float = 1.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.temperature = temperature

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        if inputs.in_batch_scores is None:
            raise ValueError("InBatchCrossEntropy needs a bi-encoder (in-batch scores)")
        return F.cross_entropy(inputs.in_batch_scores / self.temperature, inputs.in_batch_targets)


class ApproxNDCG(Loss):
    """1 - a differentiable nDCG: ranks approximated by sigmoids of score differences (Qin et al., 2010)."""

    def __init__(self, temperature: float = 1.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.temperature = temperature

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        scores, gains = inputs.scores, (2.0 ** inputs.targets.clamp(min=0).to(inputs.scores.dtype)) - 1.0
        dcg = (gains / torch.log2(1.0 + approx_ranks(scores, self.temperature))).sum(dim=1)
        ideal_gains = gains.sort(dim=1, descending=True).values
        discounts = torch.log2(torch.arange(2, scores.shape[1] + 2, device=scores.device, dtype=scores.dtype))
        ideal = (ideal_gains / discounts).sum(dim=1)
        judged = ideal > 0
        if not judged.any():
            return scores.sum() * 0.0
        return (1.0 - dcg[judged] / ideal[judged]).mean()


def approx_ranks(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """Differentiable ranks ``1 + sum_{j != i} sigmoid((s_j - s_i) / T)`` of each query's candidates."""
    diff = (scores.unsqueeze(1) - scores.unsqueeze(2)) / temperature  # [b, i, j] = s_j - s_i
    return 0.5 + torch.sigmoid(diff).sum(dim=2)  # the diagonal adds sigmoid(0) = 0.5


class ApproxMRR(Loss):
    """1 - a differentiable reciprocal rank: the best ``1 / approx_rank`` among the relevant candidates
    (targets clipped to at most 1), as in Lightning IR's ApproxMRR."""

    def __init__(self, temperature: float = 1.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.temperature = temperature

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        ranks = approx_ranks(inputs.scores, self.temperature)
        relevance = inputs.targets.to(ranks.dtype).clamp(max=1)
        return (1.0 - (relevance / ranks).max(dim=1).values).mean()


class ApproxRankMSE(Loss):
    """Mean squared error between differentiable ranks and the ranks the targets give (ties by
    position), optionally weighted by ``1/log2(1 + rank)`` or ``1/rank`` of the true rank (Rank-DistiLLM)."""

    def __init__(
        self, temperature: float = 1.0, discount: Literal["log2", "reciprocal"] | None = None, weight: float = 1.0
    ) -> None:
        super().__init__(weight)
        self.temperature, self.discount = temperature, discount

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        ranks = approx_ranks(inputs.scores, self.temperature)
        true_ranks = (inputs.targets.argsort(dim=1, descending=True, stable=True).argsort(dim=1) + 1).to(ranks.dtype)
        errors = (ranks - true_ranks) ** 2
        if self.discount == "log2":
            errors = errors / torch.log2(true_ranks + 1)
        elif self.discount == "reciprocal":
            errors = errors / true_ranks
        return errors.mean()


class PearsonCorrelation(Loss):
    """1 - the Pearson correlation between each query's scores and targets (scale-free listwise
    distillation)."""

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        scores = inputs.scores - inputs.scores.mean(dim=1, keepdim=True)
        targets = inputs.targets.to(scores.dtype)
        targets = targets - targets.mean(dim=1, keepdim=True)
        return (1.0 - F.cosine_similarity(scores, targets, dim=1)).mean()


class ScoreBasedInBatchCrossEntropy(Loss):
    """In-batch cross-entropy that trusts the targets: the best candidate is the positive, every other
    query's documents are negatives, and a query's own candidates are negatives only when their target
    is at least ``min_target_diff`` below the best (the others are left out, as Lightning IR's
    ScoreBasedInBatchCrossEntropy does). Bi-encoders only."""

    needs_in_batch = True

    def __init__(self, min_target_diff: float = 1.0, temperature: float = 1.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.min_target_diff, self.temperature = min_target_diff, temperature

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        if inputs.in_batch_scores is None:
            raise ValueError("ScoreBasedInBatchCrossEntropy needs a bi-encoder (in-batch scores)")
        scores, targets = inputs.in_batch_scores / self.temperature, inputs.targets
        size, per_query = targets.shape
        best = targets.argmax(dim=1)
        first_own = inputs.in_batch_targets - best  # own candidates sit in consecutive columns
        own_columns = first_own.unsqueeze(1) + torch.arange(per_query, device=scores.device)
        too_close = targets > targets.max(dim=1, keepdim=True).values - self.min_target_diff
        too_close[torch.arange(size, device=scores.device), best] = False  # the positive stays
        masked = scores.scatter(1, own_columns, scores.gather(1, own_columns).masked_fill(too_close, float("-inf")))
        return F.cross_entropy(masked, inputs.in_batch_targets)


class L2Regularization(Loss):
    """Mean L2 norm of the query and document vectors (dense or sparse single-vector bi-encoders)."""

    needs_vectors = True

    def __init__(self, query_weight: float = 1.0, doc_weight: float = 1.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.query_weight, self.doc_weight = query_weight, doc_weight

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        if inputs.query_vectors is None or inputs.query_vectors.dim() != 2:
            raise ValueError("L2Regularization regularises single-vector (dense or sparse) bi-encoders only")
        query = inputs.query_vectors.norm(dim=1).mean()
        return self.query_weight * query + self.doc_weight * inputs.doc_vectors.norm(dim=1).mean()


class FLOPSRegularization(Loss):
    """Sum over the vocabulary of the squared mean absolute weight (Paria et al., 2020): sparse models."""

    needs_sparse = True

    def __init__(self, query_weight: float = 1.0, doc_weight: float = 1.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.query_weight, self.doc_weight = query_weight, doc_weight

    @staticmethod
    def _flops(vectors: torch.Tensor) -> torch.Tensor:
        return (vectors.abs().mean(dim=0) ** 2).sum()

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        _require_sparse(self, inputs)
        return self.query_weight * self._flops(inputs.query_vectors) + self.doc_weight * self._flops(inputs.doc_vectors)


class L1Regularization(Loss):
    """Mean L1 norm of the sparse vectors (query and document terms weighted separately)."""

    needs_sparse = True

    def __init__(self, query_weight: float = 1.0, doc_weight: float = 1.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.query_weight, self.doc_weight = query_weight, doc_weight

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        _require_sparse(self, inputs)
        query = inputs.query_vectors.abs().sum(dim=1).mean()
        doc = inputs.doc_vectors.abs().sum(dim=1).mean()
        return self.query_weight * query + self.doc_weight * doc


class ContrastiveLocalLoss(Loss):
    """MVR's local contrast: for every query token of every pair, a cross-entropy over the
    document's token (viewer) similarities towards the most similar one, so one view wins each
    query instead of all views agreeing. Multi-vector bi-encoders (MVR's viewer tokens)."""

    needs_token_similarity = True

    def __init__(self, temperature: float = 1.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.temperature = temperature

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        if inputs.token_similarity is None or inputs.query_token_mask is None:
            raise ValueError("ContrastiveLocalLoss needs a multi-vector bi-encoder (token similarities)")
        rows = inputs.query_token_mask.bool()
        logits = inputs.token_similarity[rows] / self.temperature  # (tokens, Ld)
        return F.cross_entropy(logits, logits.argmax(dim=-1))


class Scheduled(Loss):
    """Another loss whose weight follows a schedule over optimiser steps: zero for ``delay_steps``,
    then rising over ``warmup_steps`` to the inner loss's ``weight`` — linearly, quadratically (the
    SPLADE recipe for the FLOPS weight) or at once (``constant``: a delayed start) — then held.

    In a config: ``{class_path: rayir.losses.Scheduled, init_args: {loss: {class_path:
    rayir.losses.FLOPSRegularization, init_args: {weight: 0.001}}, warmup_steps: 1000, shape: quadratic}}``.
    """

    def __init__(
        self,
        loss: Loss,
        warmup_steps: int = 0,
        delay_steps: int = 0,
        shape: Literal["linear", "quadratic", "constant"] = "linear",
    ) -> None:
        if warmup_steps < 0 or delay_steps < 0:
            raise ValueError(f"warmup_steps={warmup_steps} and delay_steps={delay_steps} must be >= 0")
        if isinstance(loss, Scheduled):
            raise ValueError("a Scheduled loss schedules a plain loss, not another Scheduled one")
        super().__init__(loss.weight)
        self.loss, self.warmup_steps, self.delay_steps, self.shape = loss, warmup_steps, delay_steps, shape
        self.needs_in_batch, self.needs_sparse = loss.needs_in_batch, loss.needs_sparse
        self.needs_vectors, self.needs_token_similarity = loss.needs_vectors, loss.needs_token_similarity

    @property
    def name(self) -> str:
        return self.loss.name

    def weight_at(self, step: int) -> float:
        if step < self.delay_steps:
            return 0.0
        if self.shape == "constant" or self.warmup_steps == 0:
            return self.loss.weight
        progress = min(1.0, (step - self.delay_steps) / self.warmup_steps)
        return self.loss.weight * (progress**2 if self.shape == "quadratic" else progress)

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        return self.loss(inputs)


def _require_sparse(loss: Loss, inputs: LossInputs) -> None:
    if not inputs.sparse or inputs.query_vectors is None:
        raise ValueError(f"{type(loss).__name__} regularises sparse (SPLADE) bi-encoders only")


def total_loss(losses: list[Loss], inputs: LossInputs, step: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted sum at optimiser ``step`` (scheduled weights), and each term (unweighted) for logging."""
    if not losses:
        raise ValueError("no losses configured")
    terms = {loss.name: loss(inputs) for loss in losses}
    total = sum(loss.weight_at(step) * terms[loss.name] for loss in losses)
    return total, terms
