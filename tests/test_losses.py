"""Each loss against a direct numpy computation of its definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rayir.losses import (
    ApproxNDCG,
    FLOPSRegularization,
    InBatchCrossEntropy,
    InfoNCE,
    KLDivergence,
    L1Regularization,
    LossInputs,
    MarginMSE,
    RankNet,
    total_loss,
)

rng = np.random.default_rng(0)
SCORES = rng.normal(size=(3, 4))
TARGETS = np.array([[1.0, 0, 0, 0], [2.0, 1, 0, 0], [0.5, 3.0, 0.2, 1.0]])


def inputs(**extra) -> LossInputs:
    return LossInputs(torch.tensor(SCORES, dtype=torch.float64), torch.tensor(TARGETS, dtype=torch.float64), **extra)


def log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_ranknet():
    terms = [
        math.log1p(math.exp(-(SCORES[b, i] - SCORES[b, j])))
        for b in range(3)
        for i in range(4)
        for j in range(4)
        if TARGETS[b, i] > TARGETS[b, j]
    ]
    assert RankNet()(inputs()).item() == pytest.approx(np.mean(terms), rel=1e-10)


def test_margin_mse_supervised_and_constant():
    supervised, constant = [], []
    for b in range(3):
        p = TARGETS[b].argmax()
        for j in range(4):
            if j != p:
                supervised.append(((SCORES[b, p] - SCORES[b, j]) - (TARGETS[b, p] - TARGETS[b, j])) ** 2)
                constant.append(((SCORES[b, p] - SCORES[b, j]) - 0.5) ** 2)
    assert MarginMSE()(inputs()).item() == pytest.approx(np.mean(supervised), rel=1e-10)
    assert MarginMSE(margin=0.5)(inputs()).item() == pytest.approx(np.mean(constant), rel=1e-10)


def test_kl_divergence():
    teacher, student = log_softmax(TARGETS / 2.0), log_softmax(SCORES / 2.0)
    expected = (np.exp(teacher) * (teacher - student)).sum(axis=1).mean()
    assert KLDivergence(temperature=2.0)(inputs()).item() == pytest.approx(expected, rel=1e-10)


def test_infonce_and_in_batch_cross_entropy():
    positives = TARGETS.argmax(axis=1)
    expected = -log_softmax(SCORES / 0.1)[np.arange(3), positives].mean()
    assert InfoNCE(temperature=0.1)(inputs()).item() == pytest.approx(expected, rel=1e-10)
    matrix = rng.normal(size=(3, 12))
    columns = np.array([0, 5, 9])
    expected = -log_softmax(matrix)[np.arange(3), columns].mean()
    batch = inputs(in_batch_scores=torch.tensor(matrix), in_batch_targets=torch.tensor(columns))
    assert InBatchCrossEntropy()(batch).item() == pytest.approx(expected, rel=1e-10)


def test_approx_ndcg_matches_ndcg_when_sharp_and_is_below_one_minus_ndcg_bound():
    def ndcg(scores, gains):
        order = np.argsort(-scores)
        dcg = sum(gains[i] / math.log2(r + 2) for r, i in enumerate(order))
        ideal = sum(g / math.log2(r + 2) for r, g in enumerate(sorted(gains, reverse=True)))
        return dcg / ideal

    gains = 2.0**TARGETS - 1
    exact = np.mean([1 - ndcg(SCORES[b], gains[b]) for b in range(3)])
    assert ApproxNDCG(temperature=1e-4)(inputs()).item() == pytest.approx(exact, abs=1e-6)
    assert 0 < ApproxNDCG(temperature=1.0)(inputs()).item() < 1


def test_sparse_regularisers():
    queries, docs = np.abs(rng.normal(size=(3, 10))), np.abs(rng.normal(size=(6, 10)))
    batch = inputs(query_vectors=torch.tensor(queries), doc_vectors=torch.tensor(docs), sparse=True)
    flops = lambda x: ((np.abs(x).mean(axis=0)) ** 2).sum()  # noqa: E731
    assert FLOPSRegularization(0.3, 0.1)(batch).item() == pytest.approx(0.3 * flops(queries) + 0.1 * flops(docs))
    l1 = 0.3 * queries.sum(axis=1).mean() + 0.1 * docs.sum(axis=1).mean()
    assert L1Regularization(0.3, 0.1)(batch).item() == pytest.approx(l1)
    with pytest.raises(ValueError, match="sparse"):
        L1Regularization()(inputs())


def test_weighted_sum():
    total, terms = total_loss([RankNet(weight=0.5), InfoNCE(weight=2.0)], inputs())
    assert total.item() == pytest.approx(0.5 * terms["RankNet"].item() + 2.0 * terms["InfoNCE"].item())
