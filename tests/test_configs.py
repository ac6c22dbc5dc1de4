"""Every file in configs/ parses with its stage's parser; the smoke configs run end to end here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rayir.cli import STAGES, main
from rayir.data import read_run
from rayir.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*/*.yaml"))
SMOKE = [path for path in CONFIGS if path.name.startswith("sample-") or path.name == "sample.yaml"]


def run_cli(capsys, *args: str) -> dict:
    """``rayir <args>`` in this process; the stage's JSON summary line."""
    main(list(args))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def test_configs_exist_for_every_stage():
    assert {path.parent.name for path in CONFIGS} >= set(STAGES)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_parses_with_its_stage(path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    stage = path.parent.name
    with pytest.raises(SystemExit) as exit_info:
        main([stage, "--config", str(path.relative_to(ROOT)), "--print_config"])
    assert exit_info.value.code in (0, None)
    resolved = yaml.safe_load(capsys.readouterr().out)
    written = yaml.safe_load(path.read_text())
    assert carried_through(written, resolved)  # every key written is a real field, its value unchanged


def carried_through(written, resolved) -> bool:
    """``written`` appears inside ``resolved`` (which adds defaults, e.g. a loss's other init_args)."""
    if isinstance(written, dict):
        return isinstance(resolved, dict) and all(
            k in resolved and carried_through(v, resolved[k]) for k, v in written.items()
        )
    if isinstance(written, list):
        return (
            isinstance(resolved, list)
            and len(written) == len(resolved)
            and all(carried_through(w, r) for w, r in zip(written, resolved))
        )
    return written == resolved


def test_unknown_config_key_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "configs/index/sample-bm25.yaml").read_text() + "normalise: true\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["index", "--config", str(bad)])
    assert exit_info.value.code == 2
    assert "normalise" in capsys.readouterr().err


def test_smoke_configs_run_end_to_end(ray_session, tmp_path, capsys, monkeypatch):
    """index → search → re_rank → evaluate (MiniLM), BM25 and encode-only, from the sample-* configs.
    The MiniLM index runs on Ray as configured; the later stages run in this process (their Ray
    paths have their own tests in test_serve.py): each Ray stage would start actors that import
    torch again, about 10 s apiece here."""
    monkeypatch.chdir(ROOT)
    config = {path.relative_to(ROOT / "configs").as_posix(): str(path) for path in SMOKE if path.parent.name != "fit"}
    out = tmp_path

    indexed = run_cli(
        capsys, "index", "--config", config.pop("index/sample-minilm.yaml"), "--output", str(out / "minilm")
    )
    assert indexed["documents"] == 30 and indexed["shards"] == 2
    searched = run_cli(
        capsys,
        "search",
        "--config",
        config.pop("search/sample.yaml"),
        "--index",
        str(out / "minilm/index"),
        "--output",
        str(out / "test.run"),
        "--in_process",
        "true",
    )
    first = read_run(out / "test.run")
    assert len(first) == 8 and all(len(docs) == 10 for docs in first.values())
    assert searched["nDCG@10"] == pytest.approx(
        evaluate(first, ROOT / "rayir/resources/sample", ["nDCG@10"], split="test").mean["nDCG@10"], abs=1e-6
    )

    reranked = run_cli(
        capsys,
        "re_rank",
        "--config",
        config.pop("re_rank/sample-minilm.yaml"),
        "--run",
        str(out / "test.run"),
        "--output",
        str(out / "rerank.run"),
        "--in_process",
        "true",
    )
    again = read_run(out / "rerank.run")
    assert {q: list(d) for q, d in again.items()} == {q: list(d) for q, d in first.items()}
    assert reranked["nDCG@10"] == pytest.approx(searched["nDCG@10"], abs=1e-6)  # the same model re-scores

    metrics = run_cli(
        capsys,
        "evaluate",
        "--config",
        config.pop("evaluate/sample.yaml"),
        "--run",
        str(out / "rerank.run"),
        "--output",
        str(out / "metrics.json"),
    )
    saved = json.loads((out / "metrics.json").read_text())
    assert metrics["nDCG@10"] == pytest.approx(reranked["nDCG@10"], abs=1e-6)
    assert saved["mean"]["nDCG@10"] == pytest.approx(metrics["nDCG@10"], abs=1e-6)
    assert len(saved["per_query"]["nDCG@10"]) == 8

    bm25 = run_cli(
        capsys,
        "index",
        "--config",
        config.pop("index/sample-bm25.yaml"),
        "--output",
        str(out / "bm25"),
        "--in_process",
        "true",
    )
    assert bm25["documents"] == 30 and bm25["factory"] == "inverted"
    encoded = run_cli(
        capsys,
        "encode",
        "--config",
        config.pop("encode/sample-minilm.yaml"),
        "--output",
        str(out / "embeddings"),
        "--in_process",
        "true",
    )
    assert encoded["documents"] == 30 and encoded["mode"] == "dense"
    assert not config, f"smoke configs not run: {sorted(config)}"


def test_fit_smoke_config_trains_a_checkpoint_that_search_stages_load(ray_session, tmp_path, capsys, monkeypatch):
    from rayir.modules import BiEncoderModule

    monkeypatch.chdir(ROOT)
    (config,) = [str(path) for path in SMOKE if path.parent.name == "fit"]
    # With a LoRA adapter (the full fits are the other Ray Train tests): the checkpoint holds it alone.
    summary = run_cli(capsys, "fit", "--config", config, "--output", str(tmp_path / "fit"), "--adapter.r", "8")
    assert summary["steps"] == 4 and summary["samples"] == 4 * 2 * 4  # steps x workers x batch
    from safetensors.torch import load_file

    from rayir.models.adapters import is_adapter_checkpoint

    checkpoint = Path(summary["checkpoint"])
    assert is_adapter_checkpoint(checkpoint) and not (checkpoint / "model.safetensors").exists()
    lora_b = [t for k, t in load_file(checkpoint / "adapter" / "adapter_model.safetensors").items() if "lora_B" in k]
    assert lora_b and all(t.abs().max() > 0 for t in lora_b)  # trained from zero
    # the default csv logger: one row per step with the loss the summary reports last
    import csv

    rows = [r for r in csv.DictReader((tmp_path / "fit" / "logs" / "csv" / "metrics.csv").open()) if r["train_loss"]]
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3]
    assert float(rows[-1]["train_loss"]) == pytest.approx(summary["train_loss"], abs=1e-5)
    module = BiEncoderModule(summary["checkpoint"])
    scores = module.score("coffee and health", ["Coffee intake and heart disease.", "Volcanoes erupt."]).scores
    assert scores[0] > scores[1]
    indexed = run_cli(
        capsys,
        "index",
        "--corpus",
        "rayir/resources/sample",
        "--model",
        summary["checkpoint"],
        "--output",
        str(tmp_path / "index"),
        "--encoding.docs_per_shard",
        "16",
        "--in_process",
        "true",  # the fit is what runs on Ray here; an index job on Ray has its own tests
    )
    assert indexed["documents"] == 30
