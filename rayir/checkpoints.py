"""Where a checkpoint lives and what it is, without loading it (no torch, no transformers).

A model is named by a directory path, ``pkg:<module>`` (a pip-installed package exposing
``get_model_path()``), or a Hugging Face Hub id (``sentence-transformers/all-MiniLM-L6-v2``,
optionally ``@<revision>``) found in the local Hugging Face cache or downloaded into it when the
Hub is reachable and ``HF_HUB_OFFLINE`` is not set; so configs name the same model on a laptop
and on every cluster node (each node resolves a Hub id in its own cache). Its
*fingerprint* is a SHA-256 over every file of the directory (relative names and contents): the
same files give the same encodings wherever they sit, and an overwritten checkpoint is noticed
before any vector is compared with vectors it did not make.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from pathlib import Path

from .atomic import sha256_file
from .errors import ConfigError

PACKAGE_PREFIX = "pkg:"


def _package_model_dir(module_name: str) -> Path:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise FileNotFoundError(
            f"{PACKAGE_PREFIX}{module_name}: Python package {module_name!r} is not installed"
        ) from None
    if not hasattr(module, "get_model_path"):
        raise ValueError(f"{PACKAGE_PREFIX}{module_name}: the package has no get_model_path()")
    return Path(module.get_model_path())


def resolve_model_dir(name_or_path: str | Path) -> Path:
    """The checkpoint directory of a path, ``pkg:<module>`` or Hub id; a clear error if it is none."""
    text = str(name_or_path)
    if text.startswith(PACKAGE_PREFIX):
        path = _package_model_dir(text[len(PACKAGE_PREFIX) :])
    elif not Path(text).exists() and HUB_ID.fullmatch(text):
        path = _hub_snapshot(text)
    else:
        path = Path(text)
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        raise FileNotFoundError(
            f"{name_or_path}: not a model directory (no config.json or modules.json); give a checkpoint "
            "directory, pkg:<module>, or a Hugging Face Hub id (org/name)"
        )
    return path


# ``org/name`` or ``name``, optionally ``@revision``: what the Hub accepts as a model id.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?(@[\w./-]+)?")
# Weights for other frameworks and runtimes: never loaded here, often larger than the model itself.
_NOT_NEEDED = ["*.onnx", "onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "*.tflite", "coreml/*"]


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as the Hub reads it, taken when asked (a test or a job may set it late)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hub_snapshot(hub_id: str) -> Path:
    """The cached snapshot of a Hub model (downloaded first when online); one clear error otherwise."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    repo_id, _, revision = hub_id.partition("@")
    offline = hub_offline()
    try:
        return Path(
            snapshot_download(
                repo_id,
                revision=revision or None,
                cache_dir=os.environ.get("HF_HUB_CACHE") or None,
                local_files_only=offline,
                ignore_patterns=_NOT_NEEDED,
            )
        )
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise FileNotFoundError(f"{hub_id}: no such directory, and no such model on the Hugging Face Hub") from None
    except LocalEntryNotFoundError:
        if offline:
            raise FileNotFoundError(
                f"{hub_id}: no such directory, and not in the local Hugging Face cache while HF_HUB_OFFLINE is "
                f"set; download it where the Hub is reachable (`hf download {repo_id}`) into this cache, or "
                "give a checkpoint directory"
            ) from None
        raise FileNotFoundError(
            f"{hub_id}: no such directory, and the Hugging Face Hub could not be reached to download it"
        ) from None


def checkpoint_fingerprint(name_or_path: str | Path) -> str:
    """SHA-256 over the relative name and content of every file in the checkpoint directory.

    Hidden files and directories (``.cache``, ``.git``, editor locks) are left out: they do not
    change what the model computes.
    """
    root = resolve_model_dir(name_or_path)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def cross_encoder_head_is_fresh(config: dict, mode: str | None = None) -> bool:
    """Whether a cross-encoder built from a checkpoint with this ``config.json`` gets a randomly
    initialised scoring head (its scores mean nothing until it is fine-tuned): anything but a rayir
    cross-encoder, a sequence-classification checkpoint read as one, or a T5-style ranker whose
    scores come from the language-model head it already has."""
    if config.get("model_type") == "rayir-cross-encoder" or lightning_ir_kind(config) == "cross":
        return False
    if config.get("model_type") == "rayir-bi-encoder" or lightning_ir_kind(config) == "bi":
        return True
    if config.get("is_encoder_decoder") or config.get("model_type") == "t5":
        return mode not in (None, "mono_t5", "rank_t5")
    classifier = any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or [])
    return not (classifier and mode in (None, "sequence_classification"))


FRESH_HEAD_WARNING = (
    "%s: this cross-encoder's scoring head is freshly initialised (the checkpoint has none for mode %s): its "
    "scores are meaningless until it is fine-tuned (rayir fit --kind cross); re-ranking with it ranks at random"
)


LIGHTNING_IR_BI_ENCODERS = ("lir-dpr", "col", "splade", "mvr", "unicoil", "coil")
LIGHTNING_IR_CROSS_ENCODERS = ("mono", "set-encoder")
# Lightning IR (rayir.models.lightning_ir) types rayir knows of but cannot load (yet): refused with their name.
LIGHTNING_IR_UNSUPPORTED = ("bi-encoder", "cross-encoder")


def lightning_ir_type(config: dict) -> str | None:
    """The Lightning IR ``model_type`` of a ``config.json``, or None for any other checkpoint."""
    model_type = config.get("model_type")
    if "backbone_model_type" not in config:
        return None
    if model_type in LIGHTNING_IR_BI_ENCODERS + LIGHTNING_IR_CROSS_ENCODERS + LIGHTNING_IR_UNSUPPORTED:
        return model_type
    return None


def lightning_ir_kind(config: dict) -> str | None:
    """``bi`` / ``cross`` for a Lightning IR checkpoint (None for other checkpoints)."""
    model_type = lightning_ir_type(config)
    if model_type is None:
        return None
    if model_type == "cross-encoder" or model_type in LIGHTNING_IR_CROSS_ENCODERS:
        return "cross"
    return "bi"


BI_ENCODER_MODES = ("dense", "multi_vector", "sparse", "coil")
CROSS_ENCODER_MODES = ("sequence_classification", "pointwise", "mono_t5", "rank_t5", "listwise", "set_encoder")


def model_kind(name_or_path: str | Path, mode: str | None = None) -> str:
    """``bi`` or ``cross`` from the checkpoint's layout, or from a ``mode`` override that names one
    family. A plain backbone (``BertModel``, ``ElectraModel``...) could be either, and guessing
    would score it silently as the wrong one: that is an error asking for ``--kind``."""
    if mode in CROSS_ENCODER_MODES:
        return "cross"
    if mode in BI_ENCODER_MODES:
        return "bi"
    path = resolve_model_dir(name_or_path)
    config_file = path / "config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    if kind := lightning_ir_kind(config):
        return kind
    if model_type in ("rayir-cross-encoder", "t5") or config.get("is_encoder_decoder"):
        return "cross"
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "cross"
    if model_type == "rayir-bi-encoder" or (path / "modules.json").exists() or (path / "artifact.metadata").exists():
        return "bi"
    if "HF_ColBERT" in architectures or any(a.endswith("ForMaskedLM") for a in architectures):
        return "bi"
    raise ConfigError(
        f"{name_or_path}: a plain {model_type or 'transformer'} backbone can be a bi-encoder or a cross-encoder; "
        "give --kind bi or --kind cross (or a model_config mode)"
    )
