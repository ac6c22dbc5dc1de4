"""Logging set-up for processes that show progress to a person: the CLI, and each Ray Train
worker (a worker process starts without handlers, so its ``rayir.*`` records would be dropped)."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: int = logging.INFO) -> None:
    """Progress lines of every ``rayir.*`` logger on stderr as ``[rayir.encode.pipeline] ...`` (once)."""
    package = logging.getLogger("rayir")
    if not package.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        package.addHandler(handler)
    package.setLevel(level)
