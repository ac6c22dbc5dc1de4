"""Helpers for the Hugging Face backbone nested inside a rayir model."""

from __future__ import annotations

import torch


def ensure_attention_implementation(encoder: torch.nn.Module) -> None:
    """Give the backbone a concrete attention implementation.

    Building the wrapping rayir config resets ``_attn_implementation`` on the nested backbone config
    to ``None``, and some backbones then skip the padding mask. Prefer SDPA where the backbone
    supports it, else eager attention (both honour the mask).
    """
    config = getattr(encoder, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) is not None:
        return
    config._attn_implementation = "sdpa" if getattr(encoder, "_supports_sdpa", False) else "eager"
