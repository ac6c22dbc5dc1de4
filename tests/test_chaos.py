"""The short chaos run (the scenario tier, ``-m scenario``: CI runs it after the default suite):
``kill -9`` of encoder and shard/query-searcher actors at random times while encoding and
searching the sample; nothing is lost and the outputs are byte-identical to a run without faults.
``benchmarks/chaos.py`` repeats this (and kills Ray Train workers during fit) 100 times on a
2,000-document SciFact cut."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def benchmarks():
    """``benchmarks/`` importable for this module's tests (chaos.py imports fault_injection.py beside it)."""
    sys.path.insert(0, str(BENCHMARKS))
    yield
    sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def chaos(benchmarks):
    return importlib.import_module("chaos")


@pytest.mark.scenario
@pytest.mark.parametrize("workload", ["encode", "search"])
def test_killed_actors_lose_nothing_and_change_nothing(workload, chaos, ray_session, sample_collection, tmp_path):
    [tally] = chaos.chaos({"sample": sample_collection}, tmp_path, trials=1, workloads=[workload], seed=1, fit_steps=4)
    assert tally.faults >= 1, "no actor was killed: the trial proved nothing"
    assert tally.lost == 0, tally.problems


def test_only_processes_of_this_process_are_candidates(benchmarks):
    """The fault thread never reaches outside what this process started (no killing by name)."""
    import os
    import subprocess

    from fault_injection import descendants

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in descendants(os.getpid())
        assert os.getppid() not in descendants(os.getpid())
    finally:
        child.kill()
        child.wait()
