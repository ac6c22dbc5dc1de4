"""Progress of long work — documents encoded, queries searched, pairs scored — with counts, rate and
time left: a bar on a terminal, a line every ``RAYIR_PROGRESS_SECONDS`` (default 10) in logs.

Workers (Ray actors, or this process) add to a :class:`Tally` as each mini-batch finishes; the
driver reads it from a thread. Rates are measured from the first finished unit, so model loading
and Ray start-up do not drag them down.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

logger = logging.getLogger("rayir.progress")


class Tally:
    """A count that workers add to: held here in process, or under ``key`` in the Ray session's one
    counter actor (no CPU), which every worker's copy of this handle reaches."""

    def __init__(self, actor: Any = None, key: str = "") -> None:
        self._actor, self._key = actor, key
        self._count = 0

    def add(self, n: int) -> None:
        if self._actor is None:
            self._count += n
        else:
            self._actor.add.remote(self._key, n)  # fire and forget: a worker never waits on the count

    def value(self) -> int:
        if self._actor is None:
            return self._count
        import ray

        return ray.get(self._actor.value.remote(self._key))

    def close(self) -> None:
        if self._actor is not None:
            self._actor.forget.remote(self._key)


_COUNTER: Any = None


def tally(in_process: bool) -> Tally:
    """A fresh count for one stage's workers. On Ray the counts live in one actor per Ray session,
    started once (starting an actor per stage would cost every stage a process)."""
    if in_process:
        return Tally()
    import uuid

    import ray

    global _COUNTER
    if _COUNTER is None:

        @ray.remote(num_cpus=0)
        class Counter:
            def __init__(self) -> None:
                self.counts: dict[str, int] = {}

            def add(self, key: str, n: int) -> None:
                self.counts[key] = self.counts.get(key, 0) + n

            def value(self, key: str) -> int:
                return self.counts.get(key, 0)

            def forget(self, key: str) -> None:
                self.counts.pop(key, None)

        _COUNTER = Counter
    name = f"rayir-progress-{ray.get_runtime_context().get_job_id()}"  # one per driver: it owns the actor
    actor = _COUNTER.options(name=name, namespace="rayir", get_if_exists=True).remote()
    return Tally(actor, uuid.uuid4().hex)


class Progress:
    """Shows a tally against its total while the ``with`` block runs (a thread polls it)."""

    def __init__(
        self, what: str, total: int, unit: str, counts: Tally, interval: float | None = None, stream: Any = None
    ) -> None:
        self.what, self.total, self.unit, self.counts = what, total, unit, counts
        self.stream = stream or sys.stderr
        self.bar = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else float(os.environ.get("RAYIR_PROGRESS_SECONDS", "10"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"rayir-progress-{what}", daemon=True)
        self._first: tuple[float, int] | None = None  # (time, count) when the first unit finished
        self._started = time.perf_counter()

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if exc[0] is None:
            self._show(self._read(), final=True)
        elif self.bar:
            self.stream.write("\n")
        self.counts.close()

    def _read(self) -> int:
        try:
            return self.counts.value()
        except Exception:  # a lost counter never fails the work it reports on
            return 0

    def _poll(self) -> None:
        period = 0.5 if self.bar else self.interval
        while not self._stop.wait(period):
            self._show(self._read())

    def line(self, done: int, now: float | None = None) -> str:
        """``encode: 2,048/5,183 documents (39.5%), 23.1 documents/s, 2m16s left``."""
        now = time.perf_counter() if now is None else now
        done = min(done, self.total)  # a retried batch is counted again; never show more than all
        if done and self._first is None:
            self._first = (now, done)
        text = f"{self.what}: {done:,}/{self.total:,} {self.unit} ({100 * done / max(self.total, 1):.1f}%)"
        if self._first is None:
            return text + f", starting ({duration(now - self._started)})"
        since, base = self._first
        if now - since > 0 and done > base:
            rate = (done - base) / (now - since)
            text += f", {rate:,.1f} {self.unit}/s, {duration((self.total - done) / rate)} left"
        return text

    def _show(self, done: int, final: bool = False) -> None:
        if final:
            took = duration(time.perf_counter() - self._started)
            text = f"{self.what}: {min(done, self.total):,}/{self.total:,} {self.unit} in {took}"
        else:
            text = self.line(done)
        if self.bar:
            width = 24
            filled = int(width * min(done / max(self.total, 1), 1.0))
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}\033[K" + ("\n" if final else ""))
            self.stream.flush()
        else:
            logger.info("%s", text)


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
