"""A content fingerprint of a corpus or query source, recorded in an encoding's settings.

Resuming an unfinished encoding, or calling a finished one "already complete", is only right if
the source still holds what was staged. The path alone cannot tell: a corpus edited in place keeps
its path. A file up to ``FULL_HASH_BYTES`` is hashed whole (at about 1.6 GB/s, well under a second);
a larger one by its size, modification time and a hash of evenly spaced samples, so that checking a
many-gigabyte corpus costs milliseconds, not a full read in the driver.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .sources import is_irds_id

FULL_HASH_BYTES = 1 << 30
SAMPLES = 64
SAMPLE_BYTES = 1 << 16


def source_fingerprint(source: str | Path, beir_names: tuple[str, ...] = ("corpus.jsonl",)) -> dict[str, Any]:
    """What identifies the content of ``source``: an ``ir_datasets`` id is its own fingerprint; a
    BEIR directory is fingerprinted by the files ``beir_names`` that are read from it (documents:
    ``corpus.jsonl`` only, so editing its queries or qrels does not invalidate an encoding)."""
    if is_irds_id(source):
        return {"irds": str(source)}
    path = Path(source)
    if path.is_dir():
        from .readers import beir_file

        return {name: file_fingerprint(beir_file(path, name)) for name in beir_names}
    return file_fingerprint(path)


def file_fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if stat.st_size <= FULL_HASH_BYTES:
            while block := handle.read(1 << 20):
                digest.update(block)
            return {"bytes": stat.st_size, "sha256": digest.hexdigest()}
        step = max(0, stat.st_size - SAMPLE_BYTES) // (SAMPLES - 1)
        for sample in range(SAMPLES):  # the first and the last block are among them
            handle.seek(sample * step)
            digest.update(handle.read(SAMPLE_BYTES))
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sampled_sha256": digest.hexdigest()}
