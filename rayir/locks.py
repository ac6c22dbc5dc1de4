"""One rayir process per output: a lock beside each output directory or file.

Two ``rayir index`` runs into one directory once raced on the same temporary files and one died
on a rename. The driver of every stage that writes an output holds ``.<name>.lock`` beside it (an
``flock``, so a killed process never leaves it held); a second driver fails at once, naming the
process that holds it. The lock file records that pid and is removed when the lock is released.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError


class OutputInUseError(UserError, RuntimeError):
    """Another rayir process is writing the same output."""


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


@contextmanager
def output_lock(target: str | Path) -> Iterator[None]:
    """Hold the lock of ``target`` (a directory or a file, which need not exist yet)."""
    target = Path(target)
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputInUseError(
                f"{target}: in use by another rayir process (pid {holder}, lock {path}); wait for it to "
                "finish or choose another output"
            ) from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:  # not a lock file its last holder removed between our open and flock
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
