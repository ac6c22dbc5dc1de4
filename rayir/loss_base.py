"""What every training loss is, without torch: the CLI's ``fit`` signature names :class:`Loss`
as the type of ``losses``, and ``rayir --help`` must not import torch to print it. The losses
themselves are in :mod:`rayir.losses`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class LossInputs:
    scores: torch.Tensor
    targets: torch.Tensor
    in_batch_scores: torch.Tensor | None = None
    in_batch_targets: torch.Tensor | None = None
    query_vectors: torch.Tensor | None = None
    doc_vectors: torch.Tensor | None = None
    sparse: bool = False
    # multi-vector: each pair's query x document token similarities (N, Lq, Ld), -inf where a
    # document token does not take part, and which query tokens take part (N, Lq)
    token_similarity: torch.Tensor | None = None
    query_token_mask: torch.Tensor | None = None


class Loss:
    """Base class; ``weight`` scales the loss in the module's sum."""

    needs_in_batch = False
    needs_sparse = False
    needs_vectors = False  # the query and document vectors of a single-vector bi-encoder
    needs_token_similarity = False  # token-level similarities of a multi-vector bi-encoder

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    @property
    def name(self) -> str:
        """The name the loss is logged under (``train_<name>``)."""
        return type(self).__name__

    def weight_at(self, step: int) -> float:
        """The loss's weight at an optimiser step (constant unless scheduled, see ``Scheduled``)."""
        return self.weight

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"
