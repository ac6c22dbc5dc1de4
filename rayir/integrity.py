"""Checksums and manifest paths: what makes a stored artifact trustworthy when it is loaded.

An index manifest records ``bytes`` and ``sha256`` of every file (index-level files under ``files``,
each shard's under its ``files``, relative to the shard directory); an embeddings manifest records
each shard's ``sha256``. A manifest's paths must stay inside its directory: no absolute path, no
``..``. Verification is one streaming pass at the speed of SHA-256.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from .atomic import sha256_file
from .errors import IntegrityError


def inside(root: Path, relative: object, what: str) -> Path:
    """``root / relative`` for a manifest entry that must be a relative path with no ``..``."""
    if not isinstance(relative, str) or not relative or "\\" in relative:
        raise IntegrityError(f"{root}: {what} path {relative!r} in the manifest is not a relative path")
    parts = PurePosixPath(relative)
    if parts.is_absolute() or ".." in parts.parts:
        raise IntegrityError(f"{root}: {what} path {relative!r} in the manifest leads outside the directory")
    return root / parts


def checksum_files(directory: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {bytes, sha256}}`` of every file under ``directory`` (temp files excluded)."""
    return {
        path.relative_to(directory).as_posix(): file_checksum(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.endswith(".tmp")
    }


def file_checksum(path: Path) -> dict[str, Any]:
    """The ``{bytes, sha256}`` entry a manifest records for one file."""
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def verify_files(directory: Path, expected: dict[str, dict[str, Any]]) -> None:
    """Each file the manifest lists exists with its recorded size and checksum."""
    if not isinstance(expected, dict) or not expected:
        raise IntegrityError(f"{directory}: the index manifest lists no file checksums; rebuild the index")
    for relative, entry in sorted(expected.items()):
        verify_file(inside(directory, relative, "file"), entry["sha256"], entry["bytes"], "rebuild the index")


def verify_file(path: Path, sha256: str, size: int | None = None, remedy: str = "") -> None:
    """``path`` exists with the recorded size and checksum; ``remedy`` says what to do if not."""
    if not path.is_file():
        raise IntegrityError(f"{path}: missing (listed in the manifest){'; ' + remedy if remedy else ''}")
    if (size is not None and path.stat().st_size != size) or sha256_file(path) != sha256:
        raise IntegrityError(
            f"{path}: differs from the checksum in the manifest (corrupt or changed){'; ' + remedy if remedy else ''}"
        )
