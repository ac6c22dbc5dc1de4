"""Where a checkpoint lives and what it is, without loading it (no torch, no transformers).

A model is named by a directory path or ``pkg:<module>`` (a pip-installed package exposing
``get_model_path()``), so configs name the same model on a laptop and on every cluster node. Its
*fingerprint* is a SHA-256 over every file of the directory (relative names and contents): the
same files give the same encodings wherever they sit, and an overwritten checkpoint is noticed
before any vector is compared with vectors it did not make.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

from .atomic import sha256_file

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
    """The checkpoint directory of a path or ``pkg:<module>``; a clear error if it is none."""
    text = str(name_or_path)
    path = _package_model_dir(text[len(PACKAGE_PREFIX) :]) if text.startswith(PACKAGE_PREFIX) else Path(text)
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        raise FileNotFoundError(
            f"{name_or_path}: not a model directory (no config.json or modules.json); rayir loads local "
            "checkpoints only — download the model first"
        )
    return path


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
