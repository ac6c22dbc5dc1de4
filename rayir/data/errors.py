"""Errors raised for bad input data; they always name where the problem is."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """Malformed input: the message names the file and line (or record)."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


class DuplicateIdError(ValueError):
    """The same document (or query) id appears twice in one collection."""
