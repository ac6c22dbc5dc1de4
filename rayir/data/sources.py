"""What every reader shares: opening a (possibly gzipped) text file, telling an ``ir_datasets``
id from a path, and joining a title to a text. A leaf: it imports no other reader."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import DataFormatError


def join_title(title: str | None, text: str | None) -> str:
    title, text = (title or "").strip(), (text or "").strip()
    return f"{title} {text}" if title else text


def open_text(path: Path) -> IO[str]:
    """A text file (gzip by suffix) as UTF-8; a byte-order mark at its start is not part of the
    first record (``utf-8-sig``: it would otherwise begin the first id)."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open(encoding="utf-8-sig")


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a text file (gzip by suffix), decoded line by line so that a byte
    that is not UTF-8, or a truncated or corrupt ``.gz``, is an error naming the file and the line."""
    line_no = 0
    if path.is_dir():
        raise DataFormatError(path, None, "is a directory; expected a file")
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                try:
                    yield line_no, raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
                except UnicodeDecodeError as err:
                    raise DataFormatError(
                        path, line_no, f"not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})"
                    ) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataFormatError(path, line_no + 1, f"the compressed file is truncated or corrupt ({err})") from None


def is_irds_id(source: str | Path) -> bool:
    return isinstance(source, str) and (source.startswith("irds:") or not Path(source).exists())
