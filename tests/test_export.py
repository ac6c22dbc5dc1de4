"""A rayir bi-encoder exported as a sentence-transformers directory gives the same vectors there."""

from __future__ import annotations

import pytest
import torch

from rayir.models.export import export_sentence_transformers
from rayir.modules import BiEncoderModule

TEXTS = ["Glaciers retreat as the climate warms.", "Coffee and heart disease", "a"]


@pytest.mark.parametrize(
    "settings",
    [
        {"pooling": "mean", "embedding_dim": 16, "normalize": True, "similarity": "cosine"},
        {"pooling": "first", "embedding_dim": 8, "projection_bias": False},
        {"pooling": "max"},
    ],
)
def test_sentence_transformers_reads_the_export_with_rayirs_vectors(settings, tiny_bert_dir, tmp_path):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    torch.manual_seed(0)
    trained = BiEncoderModule(tiny_bert_dir, **settings)
    if trained.model.projection is not None:  # as if fine-tuned: a head that is not the seeded initial one
        torch.nn.init.normal_(trained.model.projection.weight)
    checkpoint = trained.save_pretrained(tmp_path / "checkpoint")
    export_sentence_transformers(checkpoint, tmp_path / "st")
    exported = sentence_transformers.SentenceTransformer(str(tmp_path / "st"), device="cpu")
    theirs = exported.encode(TEXTS, convert_to_tensor=True)
    ours = BiEncoderModule(checkpoint).encode_docs(TEXTS).vectors
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    assert exported.similarity_fn_name == ("cosine" if settings.get("similarity") == "cosine" else "dot")
    # and rayir reads the exported directory back as the same model
    torch.testing.assert_close(BiEncoderModule(tmp_path / "st").encode_docs(TEXTS).vectors, ours, atol=1e-5, rtol=1e-5)


def test_only_dense_bi_encoders_export(tiny_mlm_dir, tmp_path):
    from rayir.errors import ConfigError

    with pytest.raises(ConfigError, match="sparse bi-encoder has no sentence-transformers dense equivalent"):
        export_sentence_transformers(tiny_mlm_dir, tmp_path / "st")


def test_a_cross_encoder_with_a_fresh_head_says_so_loudly(tiny_bert_dir, tmp_path, caplog):
    """A backbone or bi-encoder read as a cross-encoder scores with a random head: a warning says so;
    a saved cross-encoder (its head trained or not, it is the checkpoint's own) loads without one."""
    from rayir.modules import CrossEncoderModule

    with caplog.at_level("WARNING", logger="rayir.models.loaders"):
        fresh = CrossEncoderModule(tiny_bert_dir)
    assert "scoring head is freshly initialised" in caplog.text and "pointwise" in caplog.text
    saved = fresh.save_pretrained(tmp_path / "cross")
    caplog.clear()
    with caplog.at_level("WARNING", logger="rayir.models.loaders"):
        CrossEncoderModule(saved)
    assert "freshly initialised" not in caplog.text


def test_rayir_export_writes_the_directory_and_refuses_a_full_one(tiny_bert_dir, tmp_path, capsys):
    pytest.importorskip("sentence_transformers")
    from rayir.cli import main

    main(["export", "--checkpoint", str(tiny_bert_dir), "--output", str(tmp_path / "st")])
    assert (tmp_path / "st" / "modules.json").exists()
    with pytest.raises(SystemExit) as ended:
        main(["export", "--checkpoint", str(tiny_bert_dir), "--output", str(tmp_path / "st")])
    assert ended.value.code == 2 and "is not empty" in capsys.readouterr().err
