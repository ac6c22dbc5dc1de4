"""Training losses: pairwise, listwise, in-batch and sparsity regularisation.

Every loss reads what it needs from :class:`LossInputs` and carries its own ``weight``; a module
trains on the weighted sum of its losses. ``scores`` / ``targets`` are ``(B, n)``: each query's own
candidates (positive first for tuple data); ``in_batch_scores`` are ``(B, N)`` against every document
of the global batch (all workers), with ``in_batch_targets`` the column of each query's positive.
"""

from __future__ import annotations

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
        diff = (scores.unsqueeze(1) - scores.unsqueeze(2)) / self.temperature  # [b, i, j] = s_j - s_i
        approx_rank = 0.5 + torch.sigmoid(diff).sum(dim=2)  # 1 + sum_{j != i} sigmoid((s_j - s_i) / T)
        dcg = (gains / torch.log2(1.0 + approx_rank)).sum(dim=1)
        ideal_gains = gains.sort(dim=1, descending=True).values
        discounts = torch.log2(torch.arange(2, scores.shape[1] + 2, device=scores.device, dtype=scores.dtype))
        ideal = (ideal_gains / discounts).sum(dim=1)
        judged = ideal > 0
        if not judged.any():
            return scores.sum() * 0.0
        return (1.0 - dcg[judged] / ideal[judged]).mean()


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


def _require_sparse(loss: Loss, inputs: LossInputs) -> None:
    if not inputs.sparse or inputs.query_vectors is None:
        raise ValueError(f"{type(loss).__name__} regularises sparse (SPLADE) bi-encoders only")


def total_loss(losses: list[Loss], inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted sum, and each term (unweighted) for logging."""
    if not losses:
        raise ValueError("no losses configured")
    terms = {type(loss).__name__: loss(inputs) for loss in losses}
    total = sum(loss.weight * terms[type(loss).__name__] for loss in losses)
    return total, terms
