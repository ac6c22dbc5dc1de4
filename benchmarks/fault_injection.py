"""Fault injection for ``chaos.py``: SIGKILL to processes this process's Ray started, and a stall guard.

Only descendants of this process are candidates (read from ``/proc``: Linux only), so nothing
another user or test started can be hit; a process is chosen by its Ray title (``ray::<actor>``).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("chaos")


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (read from /proc: no dependency, Linux only)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def live_targets(names: tuple[str, ...]) -> list[int]:
    """Processes started by this process's Ray whose title names one of the ``names`` actors."""
    return [
        pid
        for pid in descendants(os.getpid())
        if title(pid).startswith("ray::") and any(n in title(pid) for n in names)
    ]


@dataclass
class FaultThread:
    """Kills ``faults`` target processes, each after a random delay once one is alive."""

    names: tuple[str, ...]
    faults: int
    max_delay: float
    rng: random.Random
    killed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FaultThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def _run(self) -> None:
        for _ in range(self.faults):
            victims: list[int] = []
            while not victims and not self.done.is_set():
                victims = live_targets(self.names)
                if not victims:
                    self.done.wait(0.05)
            if self.done.wait(self.rng.uniform(0.0, self.max_delay)):
                return
            victims = live_targets(self.names)
            if not victims:
                continue
            pid = self.rng.choice(victims)
            name = title(pid).split()[0]
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.killed.append(name)
            logger.info("killed %s (pid %d)", name, pid)


class Stalled(Exception):
    """A run that did not end within the stall limit (a hang is a failure, not a long trial)."""


def within(limit: float, work: Callable[[], Any]) -> Any:
    """``work()`` in a daemon thread, or :class:`Stalled` after ``limit`` seconds."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        raise Stalled(f"no result after {limit:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
