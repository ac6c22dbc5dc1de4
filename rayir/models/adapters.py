"""LoRA adapters (``peft``) on a rayir model's backbone: train few weights, save only those, merge.

A model with an adapter trains the backbone's low-rank ``lora_A``/``lora_B`` matrices plus every
weight outside the backbone (projection, scoring head) in full. Saved, it is a small directory:

- ``config.json`` and the tokenizer, as any rayir checkpoint;
- ``adapter/``: ``peft``'s own adapter files (``adapter_config.json``, ``adapter_model.safetensors``);
- ``heads.safetensors``: the weights outside the backbone;
- ``adapter/rayir.json``: the base checkpoint and the config overrides it was loaded with.

Loading such a directory loads the base again, puts the adapter on it (unmerged: the LoRA matrices
run beside the frozen weights) and the heads back; :func:`rayir.models.export.merge_adapter`
writes a plain rayir checkpoint with the adapter folded into the backbone (faster to run). The base
is named, not copied: it must stay where it was (or be a Hub id) for the adapter to load.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import ConfigError
from ..options import LoraSettings
from .weights import read_json

ADAPTER_DIR = "adapter"
HEADS_FILE = "heads.safetensors"
BASE_FILE = "rayir.json"
# Cross-encoder modes whose scoring head lives inside the backbone (LoRA would freeze it).
HEAD_IN_BACKBONE = ("sequence_classification", "mono_t5", "rank_t5")


def has_adapter(model: torch.nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(getattr(model, "encoder", None), PeftModel)


def is_adapter_checkpoint(path: Path) -> bool:
    return (path / ADAPTER_DIR / "adapter_config.json").exists()


def add_lora(model: torch.nn.Module, settings: LoraSettings, base: str, base_overrides: dict[str, Any]) -> None:
    """Put a fresh LoRA adapter on ``model.encoder`` (in place); ``base`` and ``base_overrides``
    are how the model was loaded, recorded so that the saved adapter can find its base again."""
    from peft import LoraConfig, get_peft_model

    mode = getattr(model.config, "mode", None)
    if mode in HEAD_IN_BACKBONE:
        raise ConfigError(f"adapter: mode={mode!r} keeps its scoring head inside the backbone; train it without one")
    lora = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules) or None,
    )
    model.encoder = get_peft_model(model.encoder, lora)
    model.adapter_base = {"model": str(base), "overrides": dict(base_overrides)}


def save(model: torch.nn.Module, tokenizer: Any, directory: str | Path) -> Path:
    """Adapter-only checkpoint of a model with an adapter (see the module docstring)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    model.encoder.save_pretrained(directory / ADAPTER_DIR)
    heads = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    save_file(heads, str(directory / HEADS_FILE))
    (directory / ADAPTER_DIR / BASE_FILE).write_text(json.dumps(model.adapter_base, indent=1) + "\n")
    return directory


def load(path: Path, kind: str, overrides: dict[str, Any], load_base: Callable) -> tuple[torch.nn.Module, Any]:
    """A model from an adapter checkpoint: its base and tokenizer (read by ``load_base``, the loader
    of its family), the adapter (unmerged) and its heads."""
    from peft import PeftModel

    from ..checkpoints import resolve_model_dir
    from .bi_encoder import BiEncoderModel
    from .config import BiEncoderConfig, CrossEncoderConfig
    from .cross_encoder import CrossEncoderModel

    base = read_json(path / ADAPTER_DIR / BASE_FILE)
    try:
        base_model, tokenizer = load_base(resolve_model_dir(base["model"]), **base["overrides"])
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: the adapter's base model {base['model']!r} does not load ({err})") from err
    config_cls, model_cls = (
        (BiEncoderConfig, BiEncoderModel) if kind == "bi" else (CrossEncoderConfig, CrossEncoderModel)
    )
    config = config_cls.from_pretrained(str(path), **overrides)
    model = model_cls(config, encoder=base_model.encoder)
    # The adapter goes on after the model is built: building initialises weights it does not know loaded.
    model.encoder = PeftModel.from_pretrained(model.encoder, str(path / ADAPTER_DIR))
    missing, unexpected = model.load_state_dict(load_file(str(path / HEADS_FILE)), strict=False)
    missing = [k for k in missing if not k.startswith("encoder.")]
    if missing or unexpected:
        raise ConfigError(f"{path / HEADS_FILE}: does not fit the model (missing {missing}, unexpected {unexpected})")
    model.adapter_base = base
    model.eval()
    return model, tokenizer  # the base's tokenizer: training an adapter leaves it as it was
