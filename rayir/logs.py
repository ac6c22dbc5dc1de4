"""Logging set-up for processes that show progress to a person: the CLI, and each Ray Train
worker (a worker process starts without handlers, so its ``rayir.*`` records would be dropped)."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: int = logging.INFO, propagate: bool = True) -> None:
    """Progress lines of every ``rayir.*`` logger on stderr as ``[rayir.encode.pipeline] ...`` (once).

    A Ray Train worker passes ``propagate=False``: Lightning gives its root logger a handler of its
    own, which would print every line a second time."""
    package = logging.getLogger("rayir")
    if not package.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        package.addHandler(handler)
    package.setLevel(level)
    package.propagate = propagate


# Texts cut at a model's length limit are always counted; above this share of the input a warning says so.
TRUNCATION_WARNING = 0.01


def report_truncation(logger: logging.Logger, truncated: int, total: int, what: str, setting: str) -> None:
    """Warn when at least ``TRUNCATION_WARNING`` of ``total`` texts lost tokens to ``setting``."""
    if total and truncated >= max(1, TRUNCATION_WARNING * total):
        logger.warning(
            "%d of %d %s (%.1f%%) were cut at %s; raise it in model_config if their ends matter",
            truncated,
            total,
            what,
            100 * truncated / total,
            setting,
        )
