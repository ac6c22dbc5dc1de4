"""What every reader shares: opening a (possibly gzipped) text file, telling an ``ir_datasets``
id from a path, and joining a title to a text. A leaf: it imports no other reader."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO


def join_title(title: str | None, text: str | None) -> str:
    title, text = (title or "").strip(), (text or "").strip()
    return f"{title} {text}" if title else text


def open_text(path: Path) -> IO[str]:
    """A text file (gzip by suffix) as UTF-8; a byte-order mark at its start is not part of the
    first record (``utf-8-sig``: it would otherwise begin the first id)."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open(encoding="utf-8-sig")


def is_irds_id(source: str | Path) -> bool:
    return isinstance(source, str) and (source.startswith("irds:") or not Path(source).exists())
