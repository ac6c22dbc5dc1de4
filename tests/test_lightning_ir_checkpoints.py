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
BI_ENCODERS = ["dpr", "dpr-mean-cosine", "col", "splade"]
CROSS_ENCODERS = ["mono", "mono-mean-bias"]


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / name / "scores.json").read_text())


@pytest.mark.parametrize("name", BI_ENCODERS + CROSS_ENCODERS)
def test_lightning_ir_checkpoints_score_as_lightning_ir_did(name):
    expected = recorded(name)
    module_cls = BiEncoderModule if name in BI_ENCODERS else CrossEncoderModule
    module = module_cls(FIXTURES / name).eval()
    assert model_kind(FIXTURES / name) == ("bi" if name in BI_ENCODERS else "cross")
    with torch.inference_mode():
        scores = [module.score(query, expected["docs"]).scores.tolist() for query in expected["queries"]]
    flat_expected = [s for row in expected["scores"] for s in row]
    assert max(flat_expected) - min(flat_expected) > 1e-3  # the pairs really score differently
    assert scores == pytest.approx(expected["scores"], abs=1e-5)


def test_documents_longer_than_lightning_ir_lengths_are_cut_alike():
    """The fixtures' documents exceed their ``doc_length``: equal scores mean rayir cut them as
    Lightning IR did (per side, before pairing, for the cross-encoder)."""
    module = CrossEncoderModule(FIXTURES / "mono").eval()
    docs = recorded("mono")["docs"]
    lengths = [len(module.tokenizer.tokenizer(d, add_special_tokens=False)["input_ids"]) for d in docs]
    assert max(lengths) > module.config.doc_max_length


def test_unsupported_lightning_ir_settings_are_refused_by_name(tmp_path):
    target = tmp_path / "mono-two-class"
    shutil.copytree(FIXTURES / "mono", target)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "scoring_strategy": "mono"}))
    with pytest.raises(ConfigError, match="scoring_strategy='mono'"):
        CrossEncoderModule(target)
    (target / "config.json").write_text(json.dumps({**config, "model_type": "set-encoder"}))
    with pytest.raises(ConfigError, match="'set-encoder'"):
        CrossEncoderModule(target)
