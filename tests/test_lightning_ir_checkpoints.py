"""Lightning IR's own checkpoints load as rayir models with Lightning IR's scores.

The fixtures under ``tests/fixtures/lightning_ir/`` were saved by Lightning IR 0.0.6 itself
(``make_fixtures.py`` there, run in a separate environment with the real package); each
``scores.json`` holds the scores Lightning IR computed for its queries and documents.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from rayir import BiEncoderModule, CrossEncoderModule
from rayir.checkpoints import model_kind
from rayir.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "lightning_ir"
BI_ENCODERS = ["dpr", "dpr-mean-cosine", "col", "splade", "mvr", "unicoil", "coil"]
CROSS_ENCODERS = ["mono", "mono-mean-bias", "mono-two-class-bert-pool", "set-encoder"]


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / name / "scores.json").read_text())


@pytest.mark.parametrize("name", BI_ENCODERS + CROSS_ENCODERS)
def test_lightning_ir_checkpoints_score_as_lightning_ir_did(name):
    expected = recorded(name)
    module_cls = BiEncoderModule if name in BI_ENCODERS else CrossEncoderModule
    module = module_cls(FIXTURES / name).eval()
    assert model_kind(FIXTURES / name) == ("bi" if name in BI_ENCODERS else "cross")
    with torch.inference_mode():
        scores = [s for query in expected["queries"] for s in module.score(query, expected["docs"]).scores.tolist()]
    flat_expected = [s for row in expected["scores"] for s in row]
    assert max(flat_expected) - min(flat_expected) > 1e-3  # the pairs really score differently
    assert scores == pytest.approx(flat_expected, abs=1e-5)


def largest_difference(name: str, module_cls: type, **overrides) -> float:
    expected = recorded(name)
    module = module_cls(FIXTURES / name, **overrides).eval()
    with torch.inference_mode():
        scores = [s for query in expected["queries"] for s in module.score(query, expected["docs"]).scores.tolist()]
    return max(abs(a - b) for a, b in zip(scores, [s for row in expected["scores"] for s in row]))


def test_the_comparison_tells_a_family_from_its_plain_relative():
    """The recorded scores catch a Set-Encoder scored pair by pair, and MVR documents cut elsewhere
    (the viewer tokens count towards the document length) or read through fewer views."""
    assert largest_difference("set-encoder", CrossEncoderModule) < 1e-5
    assert largest_difference("set-encoder", CrossEncoderModule, mode="pointwise") > 1e-4
    assert largest_difference("mvr", BiEncoderModule, doc_max_length=27) > 1e-4
    assert largest_difference("mvr", BiEncoderModule, viewer_tokens=2) > 1e-4
    two_class = "mono-two-class-bert-pool"
    assert largest_difference(two_class, CrossEncoderModule, pooler_dense=False) > 1e-4


def test_the_fixtures_hold_texts_longer_than_the_models_lengths():
    """Equal scores above mean rayir cut long texts where Lightning IR did (queries at 8 tokens,
    documents at 24; the cross-encoder cuts each side before pairing) only if some texts are long."""
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(FIXTURES / "mono")
    expected = recorded("mono")
    count = lambda text: len(tokenizer(text)["input_ids"])  # noqa: E731 - with [CLS] and [SEP]
    assert max(map(count, expected["queries"])) > 8 and max(map(count, expected["docs"])) > 24
    assert CrossEncoderModule(FIXTURES / "mono").config.doc_max_length == 24


def test_unsupported_lightning_ir_settings_are_refused_by_name(tmp_path):
    target = tmp_path / "mono-two-class"
    shutil.copytree(FIXTURES / "mono", target)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "scoring_strategy": "listwise"}))
    with pytest.raises(ConfigError, match="scoring_strategy='listwise'"):
        CrossEncoderModule(target)
    (target / "config.json").write_text(json.dumps({**config, "model_type": "set-encoder", "add_extra_token": True}))
    with pytest.raises(ConfigError, match="add_extra_token"):
        CrossEncoderModule(target)
    (target / "config.json").write_text(json.dumps({**config, "model_type": "bi-encoder"}))
    with pytest.raises(ConfigError, match="'bi-encoder'"):
        BiEncoderModule(target)


def test_lightning_ir_checkpoints_index_search_and_re_rank_by_path(sample_collection, tmp_path):
    """Through the jobs, with the family found from the checkpoint (kind=auto): a Col model indexes
    and searches the sample; the mono model re-ranks that run with its own scores."""
    from rayir.cli import index, re_rank, search
    from rayir.data import read_queries, read_run

    index(str(sample_collection), str(tmp_path / "col"), str(FIXTURES / "col"), in_process=True)
    search(
        str(tmp_path / "col" / "index"),
        str(sample_collection),
        str(tmp_path / "col.run"),
        k=5,
        split="test",
        in_process=True,
    )
    re_rank(
        str(FIXTURES / "mono"),
        str(tmp_path / "col.run"),
        str(sample_collection),
        str(sample_collection),
        str(tmp_path / "mono.run"),
        split="test",
        in_process=True,
    )
    first, second = read_run(tmp_path / "col.run"), read_run(tmp_path / "mono.run")
    assert {q: set(d) for q, d in first.items()} == {q: set(d) for q, d in second.items()}
    query_id, ranked = next(iter(second.items()))
    query = next(q.text for q in read_queries(sample_collection, split="test") if q.query_id == query_id)
    from rayir.data import DocStore

    store = DocStore.from_source(sample_collection, ids=list(ranked))
    with torch.inference_mode():
        expected = CrossEncoderModule(FIXTURES / "mono").eval().score(query, [store[d] for d in ranked]).scores
    assert list(ranked.values()) == pytest.approx(expected.tolist(), abs=1e-5)
