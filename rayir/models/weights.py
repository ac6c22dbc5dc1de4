"""Reading a checkpoint's files: its weights, whatever file they were saved in, and its JSON settings."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Weights of a directory or file, from safetensors or a plain (weights-only) torch file."""
    if path.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (path / name).exists():
                return load_state(path / name)
        raise FileNotFoundError(f"{path}: no model.safetensors or pytorch_model.bin")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def read_json(path: Path) -> dict:
    """A checkpoint's JSON file; a broken one is an error naming the file."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON ({err})") from err
