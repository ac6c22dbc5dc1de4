"""Every config field is checked: unknown keys and invalid combinations are errors."""

from __future__ import annotations

import pytest

from rayir import BiEncoderConfig, BiEncoderModule, CrossEncoderConfig
from tests.conftest import tiny_bert_config


def test_unknown_field_is_an_error():
    with pytest.raises(ValueError, match="unknown field.*normalise"):
        BiEncoderConfig(encoder_config=tiny_bert_config(), normalise=True)


def test_invalid_choice_is_an_error():
    with pytest.raises(ValueError, match="pooling='median'"):
        BiEncoderConfig(encoder_config=tiny_bert_config(), pooling="median")
    with pytest.raises(ValueError, match="mode='pairwise'"):
        CrossEncoderConfig(encoder_config=tiny_bert_config(), mode="pairwise")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"mode": "dense", "pooling": None}, "needs a pooling"),
        ({"mode": "multi_vector"}, "pools internally"),
        ({"mode": "sparse", "pooling": None, "embedding_dim": 8}, "vocabulary space"),
        ({"mode": "dense", "query_expansion": True}, "multi_vector"),
        ({"mode": "dense", "query_inference_free": True}, "sparse"),
        ({"query_max_length": 0}, "positive"),
    ],
)
def test_inconsistent_settings_are_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        BiEncoderConfig(encoder_config=tiny_bert_config(), **settings)


def test_overrides_reach_the_loaded_config(tiny_bert_dir):
    module = BiEncoderModule(tiny_bert_dir, pooling="max", normalize=True, doc_max_length=16)
    assert (module.config.pooling, module.config.normalize, module.config.doc_max_length) == ("max", True, 16)
    long_text = "word " * 100
    assert module.tokenizer.docs([long_text])["input_ids"].shape[1] == 16
    with pytest.raises(ValueError, match="unknown field"):
        BiEncoderModule(tiny_bert_dir, poolling="max")


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        BiEncoderModule(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("stage", "arguments"),
    [
        ("search", {"index": "/abs/index", "queries": "/abs/queries.jsonl", "output": "runs/x.run"}),
        ("encode", {"corpus": "/abs/corpus.jsonl", "model": "bm25", "output": "outputs/embeddings"}),
        ("index", {"corpus": "/abs/corpus.jsonl", "model": "bm25", "output": "outputs/index"}),
        (
            "re_rank",
            {"model": "/m", "run": "/r", "queries": "/q", "corpus": "/c", "output": "/abs/out.run", "work_dir": "work"},
        ),
    ],
)
def test_a_relative_output_is_refused_in_a_job_joined_to_a_cluster(stage, arguments, monkeypatch):
    """Under ``ray job submit`` a relative output lands in Ray's temporary working-dir copy and is lost."""
    import rayir.cli.stages as stages

    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:1")  # never contacted: refused first
    with pytest.raises(ValueError, match="relative path while RAY_ADDRESS is set"):
        getattr(stages, stage)(**arguments)
    monkeypatch.delenv("RAY_ADDRESS")
