"""Inference precision: how an encoder or scorer runs when asked for ``bfloat16``.

On a GPU, bf16 means autocast. On a CPU, autocast re-casts every weight and activation around
each matrix product, which costs about 15% of MiniLM's encoding time; instead the model's
weights are cast to bf16 once and every ``nn.Linear`` becomes a :class:`PrepackedLinear` whose
weight oneDNN has laid out for its bf16 kernels (with BERT's exact GELU fused into the
intermediate projection). On SciFact with all-MiniLM-L6-v2 this keeps embeddings at cosine
≥ 0.9999 to float32 (see ``tests/test_precision.py``); outputs are cast back to float32 by the
callers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from typing import Literal

import torch
from torch import nn

from ..options import check_precision


def onednn_available() -> bool:
    """oneDNN's prepacked bf16 kernels exist in this torch build and this CPU can run them
    (AVX-512 BW/VL/DQ or AVX-NE-CONVERT; an AVX2-only CPU cannot, and falls back to autocast)."""
    mkldnn = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(mkldnn, "_linear_pointwise")
        and hasattr(mkldnn, "_is_mkldnn_bf16_supported")
        and bool(mkldnn._is_mkldnn_bf16_supported())
    )


class PrepackedLinear(nn.Module):
    """A bf16 linear layer (optionally followed by exact GELU) on oneDNN's prepacked weight."""

    def __init__(self, linear: nn.Linear, activation: Literal["none", "gelu"] = "none") -> None:
        super().__init__()
        weight = linear.weight.detach().to(torch.bfloat16)
        self.out_features = linear.out_features
        self.register_buffer("packed_weight", torch.ops.mkldnn._reorder_linear_weight(weight, None))
        bias = linear.bias.detach().to(torch.bfloat16) if linear.bias is not None else None
        self.register_buffer("bias", bias)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leading = x.shape[:-1]
        flat = x.to(torch.bfloat16).reshape(-1, x.shape[-1])
        # The last argument is GELU's approximation ("none" = exact erf), empty for no activation.
        out = torch.ops.mkldnn._linear_pointwise(
            flat, self.packed_weight, self.bias, self.activation, [], "none" if self.activation == "gelu" else ""
        )
        return out.reshape(*leading, self.out_features)


class Float32Linear(nn.Module):
    """A small output layer (a score head) kept in float32: a bf16 score keeps 3 significant
    digits, which would tie re-ranked candidates. Its weights live outside ``parameters()`` so
    casting the model to bf16 leaves them alone."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight = linear.weight.detach().float().clone()
        self.bias = linear.bias.detach().float().clone() if linear.bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x.float(), self.weight, self.bias)


SCORE_HEAD_MAX_OUTPUTS = 8


def _is_exact_gelu(module: nn.Module) -> bool:
    if isinstance(module, nn.GELU):
        return module.approximate == "none"
    return type(module).__name__ == "GELUActivation" and getattr(module, "act", None) is nn.functional.gelu


def _prepack(module: nn.Module) -> None:
    for name, child in module.named_children():
        dense, act = getattr(child, "dense", None), getattr(child, "intermediate_act_fn", None)
        if isinstance(dense, nn.Linear) and act is not None and _is_exact_gelu(act):
            # BERT-style intermediate block: dense -> GELU, fused into one oneDNN call.
            child.dense, child.intermediate_act_fn = PrepackedLinear(dense, "gelu"), nn.Identity()
            continue
        if isinstance(child, nn.Linear) and child.out_features <= SCORE_HEAD_MAX_OUTPUTS:
            setattr(module, name, Float32Linear(child))
        elif isinstance(child, nn.Linear):
            setattr(module, name, PrepackedLinear(child))
        else:
            _prepack(child)


def prepare_for_inference(
    model: nn.Module, precision: str, device: str | torch.device
) -> Callable[[], AbstractContextManager]:
    """Make ``model`` (in place, inference only) run at ``precision`` on ``device``. Returns a
    factory for the context every forward pass must run under (autocast on GPUs, else nothing)."""
    check_precision(precision)
    device_type = torch.device(device).type
    if precision == "float32":
        return contextlib.nullcontext
    if device_type != "cpu" or not onednn_available():
        return partial(torch.autocast, device_type=device_type, dtype=torch.bfloat16)
    _prepack(model)  # before the cast, so score heads keep their float32 weights
    model.to(torch.bfloat16)
    return contextlib.nullcontext
