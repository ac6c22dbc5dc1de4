"""Errors raised for bad input data; they always name where the problem is."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError


class DataFormatError(UserError, ValueError):
    """Malformed input: the message names the file and line (or record)."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


def checked_id(path: str | Path, line: int | None, value: object, what: str = "id") -> str:
    """An id as it will stand in a TREC run: a non-empty string without whitespace (a JSON integer
    becomes its digits). Anything else is refused here, naming the file and line, rather than
    written into runs that rayir's own ``evaluate`` then cannot read."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DataFormatError(path, line, f"{what} {value!r} is not a string (or a JSON integer)")
    text = str(value)
    if not text or any(c.isspace() for c in text):
        raise DataFormatError(path, line, f"{what} {text!r} is empty or holds whitespace (a TREC run cannot carry it)")
    return text


class DuplicateIdError(UserError, ValueError):
    """The same document (or query) id appears twice in one collection."""
