"""LoRA adapters: save adapter-only, load, merge; an index from the merged model equals one from
the unmerged adapter checkpoint."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from rayir import BiEncoderModule, CrossEncoderModule
from rayir.models import adapters
from rayir.models.export import merge_adapter
from rayir.options import LoraSettings
from tests.conftest import fit_steps


def with_trained_adapter(module, base, overrides, seed=0):
    """A fresh adapter whose B matrices are made non-zero (as training would): the scores move."""
    adapters.add_lora(module.model, LoraSettings(r=4, alpha=8, target_modules=["query", "value"]), base, overrides)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return module.eval()


def shard_vectors(directory):
    tables = [pq.read_table(p) for p in sorted(directory.glob("embeddings/embeddings/part-*.parquet"))]
    table = pa.concat_tables(tables).sort_by("doc_id")
    return table.column("doc_id").to_pylist(), np.stack(table.column("embedding").to_numpy(zero_copy_only=False))


def test_bi_encoder_adapter_saves_small_loads_equal_and_merges_to_the_same_index(
    tiny_bert_dir, sample_collection, tmp_path
):
    from rayir.cli import index

    overrides = {"embedding_dim": 16}
    module = BiEncoderModule(tiny_bert_dir, **overrides)
    queries, docs = ["sparse retrieval"], ["dense vectors rank passages", "a query about cells"]
    before = module.eval().score(queries[0], docs).scores
    with_trained_adapter(module, tiny_bert_dir, overrides)
    trainable = [n for n, p in module.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("projection.") for n in trainable)
    with torch.inference_mode():
        adapted = module.score(queries[0], docs).scores
    assert (adapted - before).abs().max() > 1e-3  # the adapter changes the scores

    module.save_pretrained(tmp_path / "adapter-ckpt")
    saved = tmp_path / "adapter-ckpt"
    assert not (saved / "model.safetensors").exists() and (saved / "adapter" / "adapter_model.safetensors").exists()
    size = sum(f.stat().st_size for f in saved.rglob("*.safetensors"))
    assert size < (tiny_bert_dir / "model.safetensors").stat().st_size / 3

    loaded = BiEncoderModule(saved).eval()
    with torch.inference_mode():
        assert loaded.score(queries[0], docs).scores == pytest.approx(adapted, abs=1e-6)
    merged = merge_adapter(saved, tmp_path / "merged")
    assert not adapters.is_adapter_checkpoint(merged)
    with torch.inference_mode():
        assert BiEncoderModule(merged).eval().score(queries[0], docs).scores == pytest.approx(adapted, abs=1e-5)

    index(str(sample_collection), str(tmp_path / "unmerged-index"), str(saved), in_process=True)
    index(str(sample_collection), str(tmp_path / "merged-index"), str(merged), in_process=True)
    ids_a, vectors_a = shard_vectors(tmp_path / "unmerged-index")
    ids_b, vectors_b = shard_vectors(tmp_path / "merged-index")
    assert ids_a == ids_b and np.abs(vectors_a - vectors_b).max() < 1e-5


def test_cross_encoder_adapter_round_trip_and_refusals(tiny_bert_dir, tmp_path):
    module = CrossEncoderModule(tiny_bert_dir)
    with_trained_adapter(module, tiny_bert_dir, {})
    pair_docs = ["cells and proteins", "vectors"]
    with torch.inference_mode():
        adapted = module.score("query about cells", pair_docs).scores
    module.save_pretrained(tmp_path / "ce")
    with torch.inference_mode():
        loaded = CrossEncoderModule(tmp_path / "ce").eval().score("query about cells", pair_docs)
    assert loaded.scores == pytest.approx(adapted, abs=1e-6)
    classifier = CrossEncoderModule(tiny_bert_dir, mode="sequence_classification").model
    with pytest.raises(Exception, match="inside the backbone"):
        adapters.add_lora(classifier, LoraSettings(r=2), "x", {})


def test_lora_training_moves_the_adapter_and_heads_only(tiny_bert_dir, sample_collection):
    """Two optimiser steps with plain Lightning: the backbone's own weights stay as loaded."""
    from rayir.data import QrelsDataset
    from rayir.losses import InBatchCrossEntropy

    torch.manual_seed(0)
    module = BiEncoderModule(tiny_bert_dir, embedding_dim=16)
    adapters.add_lora(module.model, LoraSettings(r=4, target_modules=["query", "value"]), tiny_bert_dir, {})
    module.configure_training([InBatchCrossEntropy()], lr=1e-2)
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    fit_steps(
        module,
        lambda: QrelsDataset(sample_collection, sample_collection, sample_collection, num_negatives=0, split="test"),
    )
    moved = {n for n, p in module.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert any("lora_B" in n for n in moved) and any(n.startswith("projection.") for n in moved)
    assert all("lora_" in n or n.startswith("projection.") for n in moved)
