"""The held-out split that fine-tuning settings are chosen on (``benchmarks/carve_validation.py``):
every judgement of the source split lands in exactly one of fit / val, and rayir reads both."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rayir.data import read_queries
from rayir.data.trec import read_qrels

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "carve_validation.py"


def load_script():
    spec = importlib.util.spec_from_file_location("carve_validation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def judgements(qrels) -> set[tuple[str, str, int]]:
    return {(q, d, r) for q, docs in qrels.items() for d, r in docs.items()}


def test_fit_and_val_partition_the_split_by_query(sample_collection, tmp_path):
    carve = load_script().carve
    out = tmp_path / "carved"
    assert carve(sample_collection, out, "test", size=3, seed=0) == (5, 3)

    source = read_qrels(sample_collection / "qrels" / "test.tsv")
    fit, val = read_qrels(out / "qrels" / "fit.tsv"), read_qrels(out / "qrels" / "val.tsv")
    assert len(val) == 3 and not set(fit) & set(val)
    assert judgements(fit) | judgements(val) == judgements(source)
    assert not judgements(fit) & judgements(val)
    assert not (out / "qrels" / "test.tsv").exists()  # the carved split is not linked again
    assert sorted(q.query_id for q in read_queries(out, split="val")) == sorted(val)
    assert carve(sample_collection, tmp_path / "again", "test", size=3, seed=0) == (5, 3)
    assert read_qrels(tmp_path / "again" / "qrels" / "val.tsv") == val  # the seed decides
    with pytest.raises(ValueError, match="has 8 queries: cannot hold out 8"):
        carve(sample_collection, tmp_path / "all", "test", size=8, seed=0)
