"""The short chaos run of the default suite: ``kill -9`` of encoder and shard/query-searcher actors at
random times while encoding and searching the sample; nothing is lost and the outputs are
byte-identical to a run without faults. ``benchmarks/chaos.py`` repeats this (and kills Ray Train
workers during fit) 100 times on a 2,000-document SciFact cut."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def chaos():
    spec = importlib.util.spec_from_file_location("chaos", BENCHMARKS / "chaos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("workload", ["encode", "search"])
def test_killed_actors_lose_nothing_and_change_nothing(workload, chaos, ray_session, sample_collection, tmp_path):
    [tally] = chaos.chaos({"sample": sample_collection}, tmp_path, trials=1, workloads=[workload], seed=1, fit_steps=4)
    assert tally.faults >= 1, "no actor was killed: the trial proved nothing"
    assert tally.lost == 0, tally.problems


def test_only_processes_of_this_process_are_candidates(chaos):
    """The fault thread never reaches outside what this process started (no killing by name)."""
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in chaos.descendants(os.getpid())
        assert os.getppid() not in chaos.descendants(os.getpid())
    finally:
        child.kill()
        child.wait()
