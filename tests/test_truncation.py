"""Texts cut at a model's length limits are counted in the stage summaries (and warned about), and
lengths default to the checkpoint's own limits."""

from __future__ import annotations

import logging

from transformers import AutoTokenizer

from rayir.cli.stages import index, re_rank, search
from rayir.data import read_docs, read_queries, read_run
from rayir.models.loaders import load_bi_encoder


def longer_than(tokenizer, texts, limit: int, pairs=None) -> int:
    """How many texts (or pairs) need more than ``limit`` tokens, special tokens included."""
    if pairs is not None:
        return sum(len(tokenizer(q, d)["input_ids"]) > limit for q, d in pairs)
    return sum(len(tokenizer(t)["input_ids"]) > limit for t in texts)


def test_cut_documents_queries_and_pairs_are_counted(sample_collection, tiny_bert_dir, tmp_path, caplog):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    docs = [d.text for d in read_docs(sample_collection)]
    queries = {q.query_id: q.text for q in read_queries(sample_collection, split="test")}
    lengths = {"doc_max_length": 22, "query_max_length": 8}
    with caplog.at_level(logging.WARNING, logger="rayir"):
        indexed = index(
            str(sample_collection), str(tmp_path / "out"), str(tiny_bert_dir), model_config=lengths, in_process=True
        )
        searched = search(
            str(tmp_path / "out" / "index"),
            str(sample_collection),
            str(tmp_path / "first.run"),
            k=3,
            split="test",
            in_process=True,
        )
        reranked = re_rank(
            str(tiny_bert_dir),
            str(tmp_path / "first.run"),
            str(sample_collection),
            str(sample_collection),
            str(tmp_path / "second.run"),
            split="test",
            kind="cross",
            model_config={"max_length": 20},
            in_process=True,
        )
    expected_docs = longer_than(tokenizer, docs, 22)
    expected_queries = longer_than(tokenizer, queries.values(), 8)
    assert 0 < expected_docs < len(docs) and 0 < expected_queries < len(queries)  # the check can tell
    assert indexed["truncated_documents"] == expected_docs
    assert searched["truncated_queries"] == expected_queries
    first = read_run(tmp_path / "first.run")
    pairs = [(queries[q], d) for q, ranked in first.items() for d in ranked]
    texts = {d.doc_id: d.text for d in read_docs(sample_collection)}
    expected_pairs = longer_than(tokenizer, None, 20, pairs=[(q, texts[d]) for q, d in pairs])
    assert reranked["truncated_pairs"] == expected_pairs > 0
    assert f"{expected_docs} of 30 documents" in caplog.text and "doc_max_length=22 tokens" in caplog.text
    assert f"{expected_queries} of 8 queries" in caplog.text and "query_max_length=8 tokens" in caplog.text
    assert f"{expected_pairs} of {len(pairs)} pairs" in caplog.text


def test_lengths_default_to_the_checkpoints_own_limits(tiny_mlm_dir, tiny_bert_dir):
    """A plain MLM (SPLADE) or backbone directory: the smaller of the tokenizer's model_max_length (512)
    and the backbone's max_position_embeddings (128); ColBERT-style query expansion keeps 32 pads."""
    sparse, _ = load_bi_encoder(tiny_mlm_dir)
    assert (sparse.config.query_max_length, sparse.config.doc_max_length) == (128, 128)
    expanded, _ = load_bi_encoder(tiny_bert_dir, mode="multi_vector", query_expansion=True)
    assert (expanded.config.query_max_length, expanded.config.doc_max_length) == (32, 128)
    chosen, _ = load_bi_encoder(tiny_bert_dir, query_max_length=16)
    assert chosen.config.query_max_length == 16
