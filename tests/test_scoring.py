"""Scoring arithmetic against brute-force numpy on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rayir.models import scoring
from rayir.models.bi_encoder import BiEncoderModel, Embeddings
from rayir.models.config import BiEncoderConfig
from tests.conftest import tiny_bert_config


def numpy_maxsim(q, qm, d, dm, cosine, aggregation):
    if cosine:
        q = q / np.linalg.norm(q, axis=-1, keepdims=True)
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    total = 0.0
    used = 0
    for i in range(q.shape[0]):
        if not qm[i]:
            continue
        sims = [float(q[i] @ d[j]) for j in range(d.shape[0]) if dm[j]]
        total += max(sims) if sims else 0.0
        used += 1
    return total / max(used, 1) if aggregation == "mean" else total


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_maxsim_matches_bruteforce(similarity, aggregation):
    rng = np.random.default_rng(0)
    nq, nd, lq, ld, dim = 3, 5, 6, 9, 8
    q = rng.normal(size=(nq, lq, dim)).astype(np.float32)
    d = rng.normal(size=(nd, ld, dim)).astype(np.float32)
    qm = rng.random((nq, lq)) > 0.3
    dm = rng.random((nd, ld)) > 0.3
    qm[:, 0] = dm[:, 0] = True
    matrix = scoring.maxsim_matrix(
        torch.tensor(q), torch.tensor(qm), torch.tensor(d), torch.tensor(dm), similarity, aggregation
    ).numpy()
    for i in range(nq):
        for j in range(nd):
            expected = numpy_maxsim(q[i], qm[i], d[j], dm[j], similarity == "cosine", aggregation)
            assert matrix[i, j] == pytest.approx(expected, abs=1e-4)


def test_sparse_dot_matches_bruteforce():
    rng = np.random.default_rng(1)
    vocab = 50
    q = np.where(rng.random((4, vocab)) > 0.8, rng.random((4, vocab)), 0).astype(np.float32)
    d = np.where(rng.random((7, vocab)) > 0.8, rng.random((7, vocab)), 0).astype(np.float32)
    config = BiEncoderConfig(encoder_config=tiny_bert_config(vocab_size=vocab), mode="sparse", pooling=None)
    model = BiEncoderModel(config)
    got = model.score_matrix(Embeddings(torch.tensor(q)), Embeddings(torch.tensor(d))).numpy()
    expected = [[sum(q[i, t] * d[j, t] for t in range(vocab)) for j in range(7)] for i in range(4)]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_splade_activation_matches_numpy():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 5, 11)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    got = scoring.splade_activation(torch.tensor(logits), torch.tensor(mask)).numpy()
    weights = np.log1p(np.maximum(logits, 0)) * mask[..., None]
    np.testing.assert_allclose(got, weights.max(axis=1), atol=1e-6)


def test_splade_max_pool_forward_and_gradient_match_torch_amax():
    """The row-wise max (and its gradient) equals masked ``torch.amax``: a non-prefix mask, an
    empty row (weights 0, no gradient), and ties, also past 255 tied tokens (the uint8 count)."""
    rng = np.random.default_rng(4)
    logits = torch.tensor(rng.normal(size=(4, 600, 9)).astype(np.float32))
    logits[3, :, 2] = 1.5  # 600 tokens tie on one term
    logits[1, [4, 5], 5] = 7.0  # two unmasked tokens tie on another
    mask = torch.ones(4, 600, dtype=torch.bool)
    mask[0, 300:] = False
    mask[1, ::3] = False
    mask[2] = False
    upstream = torch.tensor(rng.normal(size=(4, 9)).astype(np.float32))

    def weights_and_gradient(pool):
        leaf = logits.clone().requires_grad_()
        weights = torch.log1p(torch.relu(pool(leaf)))
        (weights * upstream).sum().backward()
        return weights.detach(), leaf.grad

    got = weights_and_gradient(lambda x: scoring.MaskedTokenMax.apply(x, mask))
    expected = weights_and_gradient(lambda x: x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1))
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-6, atol=1e-7)
    assert got[0][2].eq(0).all() and got[1][2].eq(0).all()
    assert got[1][3, :, 2].abs().sum() > 0  # the tie shared, not lost


@pytest.mark.parametrize("how", ["first", "mean", "max", "sum"])
def test_pooling_matches_numpy(how):
    rng = np.random.default_rng(3)
    tokens = rng.normal(size=(3, 6, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]])
    got = scoring.pool(torch.tensor(tokens), torch.tensor(mask), how).numpy()
    for row in range(3):
        real = tokens[row][mask[row].astype(bool)]
        expected = {"first": tokens[row, 0], "mean": real.mean(0), "max": real.max(0), "sum": real.sum(0)}[how]
        np.testing.assert_allclose(got[row], expected, atol=1e-5)


def test_score_groups_documents_by_query():
    config = BiEncoderConfig(encoder_config=tiny_bert_config(), similarity="dot")
    model = BiEncoderModel(config)
    q = Embeddings(torch.randn(2, 4))
    d = Embeddings(torch.randn(5, 4))
    flat = model.score(q, d, num_docs=[2, 3])
    matrix = model.score_matrix(q, d)
    assert torch.allclose(flat, torch.cat([matrix[0, :2], matrix[1, 2:]]))
    with pytest.raises(ValueError, match="sums to"):
        model.score(q, d, num_docs=[2, 2])


def test_length_sorted_batches_cover_every_position_once_within_the_token_budget():
    from rayir.models.batching import length_sorted_batches, restore_order

    lengths = np.random.default_rng(3).integers(1, 64, size=200)
    order, batches = length_sorted_batches(lengths, batch_size=8, max_length=64)
    assert sorted(np.concatenate(batches).tolist()) == list(range(200))
    assert np.array_equal(np.concatenate(batches), order)
    assert np.all(np.diff(lengths[order]) <= 0)  # longest first
    for picked in batches:
        assert len(picked) <= 4 * 8 and (len(picked) == 1 or len(picked) * lengths[picked].max() <= 8 * 64)
    values = lengths[order] * 10
    assert np.array_equal(values[restore_order(order)], lengths * 10)


@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_pair_scorer_sorts_a_block_by_length_and_returns_its_order(kind, tiny_bert_dir):
    """A block of pairs of very different lengths, scored in length-sorted mini-batches of 2,
    equals each pair scored alone (no padding at all): nothing lands on another pair's row."""
    from rayir.serve.rerank import PairScorer

    scorer = PairScorer(str(tiny_bert_dir), kind, {}, batch_size=2, device="cpu", threads=None)
    if kind == "cross":  # a fresh head scores every pair alike; a wide one tells them apart
        torch.nn.init.normal_(scorer.module.model.head.weight, std=1.0, generator=torch.Generator().manual_seed(0))
    words = "retrieval transformer ranking sparse dense index shard query".split()
    docs = [" ".join(words[: 1 + (i * 5) % 8] * (1 + i % 4)) for i in range(9)]
    queries = [f"query {i} {words[i % 8]}" for i in range(9)]
    block = scorer.sorted_scores(queries, docs)
    alone = np.concatenate([scorer.scores([q], [d]) for q, d in zip(queries, docs)])
    assert np.min(np.diff(np.sort(alone))) > 1e-4  # the pairs really score differently
    np.testing.assert_allclose(block, alone, atol=1e-5)
