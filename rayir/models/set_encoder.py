"""Set-Encoder attention: a pair's tokens also attend to the other candidates of its query.

Each self-attention layer of the backbone is wrapped in place. Besides its own sequence, the
(query, document) pair attends to the first-token states of the *other* pairs of the same query at
that layer, projected by the same key and value layers, so information flows between candidates
inside the backbone while every pair keeps its own sequence. The wrapper reuses the wrapped
layer's ``query``/``key``/``value`` modules under the same names, so the backbone's weights keep
their keys and a Set-Encoder saves and loads like the plain backbone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SUPPORTED_BACKBONES = ("bert", "electra")


@dataclass
class ListContext:
    """What the wrapped layers read during one forward pass: the padding mask ``(B, L)`` and the
    number of consecutive pairs that belong to each query."""

    attention_mask: torch.Tensor | None = None
    num_docs: list[int] | None = None


class ListSelfAttention(torch.nn.Module):
    """Self-attention over a pair's own tokens plus its list-mates' first-token states."""

    def __init__(self, inner: torch.nn.Module, context: ListContext) -> None:
        super().__init__()
        self.query, self.key, self.value, self.dropout = inner.query, inner.key, inner.value, inner.dropout
        self.heads = inner.num_attention_heads
        self.head_size = inner.attention_head_size
        self.context = context  # shared by every wrapped layer (a plain object, not a submodule)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: object
    ) -> tuple[torch.Tensor, None]:
        context = self.context
        if context.attention_mask is None or context.num_docs is None:
            raise RuntimeError("a Set-Encoder layer was called outside CrossEncoderModel.forward")
        batch, length, _ = hidden_states.shape
        others, others_mask = _list_mates(batch, context.num_docs, hidden_states.device)
        first = hidden_states[:, 0]
        keys = torch.cat([self.key(hidden_states), self.key(first)[others]], dim=1)
        values = torch.cat([self.value(hidden_states), self.value(first)[others]], dim=1)
        mask = torch.cat([context.attention_mask.bool(), others_mask], dim=1)[:, None, None, :]

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, self.heads, self.head_size).transpose(1, 2)

        out = torch.nn.functional.scaled_dot_product_attention(
            heads(self.query(hidden_states)),
            heads(keys),
            heads(values),
            attn_mask=mask,
            dropout_p=self.dropout.p if self.training else 0.0,
        )
        return out.transpose(1, 2).reshape(batch, length, self.heads * self.head_size), None


def _list_mates(batch: int, num_docs: list[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For every pair, the row indices of its list's pairs ``(B, n_max)`` and which of those it
    attends to (the others in its list, not itself nor padding)."""
    if sum(num_docs) != batch:
        raise ValueError(f"num_docs sums to {sum(num_docs)} but there are {batch} pairs")
    sizes = torch.tensor(num_docs, device=device)
    starts = torch.cumsum(sizes, 0) - sizes
    row_start = torch.repeat_interleave(starts, sizes)
    row_size = torch.repeat_interleave(sizes, sizes)
    slot = torch.arange(max(num_docs), device=device)[None, :]
    own = torch.arange(batch, device=device) - row_start
    mask = (slot < row_size[:, None]) & (slot != own[:, None])
    index = torch.where(slot < row_size[:, None], row_start[:, None] + slot, row_start[:, None])
    return index, mask


def install(encoder: torch.nn.Module, context: ListContext) -> None:
    """Wrap every self-attention layer of a BERT or ELECTRA ``encoder`` (in place)."""
    model_type = getattr(encoder.config, "model_type", None)
    if model_type not in SUPPORTED_BACKBONES:
        raise ValueError(f"mode='set_encoder' supports {', '.join(SUPPORTED_BACKBONES)} backbones, not {model_type!r}")
    wrapped = 0
    for layer in encoder.encoder.layer:
        inner = layer.attention.self
        if not isinstance(inner, ListSelfAttention):
            layer.attention.self = ListSelfAttention(inner, context)
            wrapped += 1
    if not wrapped:
        raise ValueError("no self-attention layer found to wrap")
