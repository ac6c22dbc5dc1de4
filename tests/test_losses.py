"""Each loss against a direct numpy computation of its definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rayir.losses import (
    ApproxMRR,
    ApproxNDCG,
    ApproxRankMSE,
    FLOPSRegularization,
    InBatchCrossEntropy,
    InfoNCE,
    KLDivergence,
    L1Regularization,
    L2Regularization,
    LossInputs,
    MarginMSE,
    PearsonCorrelation,
    RankNet,
    Scheduled,
    ScoreBasedInBatchCrossEntropy,
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


def approx_ranks_by_hand(scores: np.ndarray, temperature: float) -> np.ndarray:
    """1 + sum over the other candidates of sigmoid((s_j - s_i) / T)."""
    b, n = scores.shape
    return np.array(
        [
            [
                1 + sum(1 / (1 + math.exp(-(scores[q, j] - scores[q, i]) / temperature)) for j in range(n) if j != i)
                for i in range(n)
            ]
            for q in range(b)
        ]
    )


def test_approx_mrr():
    ranks = approx_ranks_by_hand(SCORES, 0.5)
    relevance = np.minimum(TARGETS, 1)
    expected = np.mean([1 - max(relevance[q, i] / ranks[q, i] for i in range(4)) for q in range(3)])
    assert ApproxMRR(temperature=0.5)(inputs()).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("discount", [None, "log2", "reciprocal"])
def test_approx_rank_mse(discount):
    ranks = approx_ranks_by_hand(SCORES, 1.0)
    true = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [3, 1, 4, 2]], dtype=float)  # ties by position (row 0)
    weight = {None: 1.0, "log2": 1 / np.log2(true + 1), "reciprocal": 1 / true}[discount]
    expected = np.mean((ranks - true) ** 2 * weight)
    assert ApproxRankMSE(discount=discount)(inputs()).item() == pytest.approx(expected, rel=1e-10)


def test_pearson_correlation():
    expected = np.mean([1 - np.corrcoef(SCORES[q], TARGETS[q])[0, 1] for q in range(3)])
    assert PearsonCorrelation()(inputs()).item() == pytest.approx(expected, rel=1e-10)


def test_score_based_in_batch_cross_entropy():
    """3 queries x 4 own candidates in a 12-column batch: own candidates less than 2.5 below the best are
    left out (rows 0 and 1: all three others; row 2, targets [0.5, 3, 0.2, 1]: only the 1.0, as 0.5 is
    exactly 2.5 below); the other queries' documents are negatives."""
    matrix = rng.normal(size=(3, 12))
    positives = np.array([4 * q + TARGETS[q].argmax() for q in range(3)])
    expected = []
    for q in range(3):
        kept = []
        for col in range(12):
            own = 4 * q <= col < 4 * q + 4
            if own and col != positives[q] and TARGETS[q, col - 4 * q] > TARGETS[q].max() - 2.5:
                continue
            kept.append(col)
        logits = matrix[q, kept] / 0.5
        expected.append(-(logits[kept.index(positives[q])] - np.log(np.exp(logits).sum())))
    loss = ScoreBasedInBatchCrossEntropy(min_target_diff=2.5, temperature=0.5)(
        inputs(in_batch_scores=torch.tensor(matrix), in_batch_targets=torch.tensor(positives))
    )
    assert loss.item() == pytest.approx(np.mean(expected), rel=1e-10)


def test_l2_regularization():
    q, d = rng.normal(size=(3, 5)), rng.normal(size=(6, 5))
    expected = 0.3 * np.linalg.norm(q, axis=1).mean() + 2.0 * np.linalg.norm(d, axis=1).mean()
    loss = L2Regularization(query_weight=0.3, doc_weight=2.0)(
        inputs(query_vectors=torch.tensor(q), doc_vectors=torch.tensor(d))
    )
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="single-vector"):
        L2Regularization()(inputs(query_vectors=torch.zeros(3, 2, 5), doc_vectors=torch.zeros(6, 2, 5)))


@pytest.mark.parametrize(
    "shape, expected",
    [
        ("linear", [0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0]),  # delay 2, warm-up 4 to weight 2.0
        ("quadratic", [0.0, 0.0, 0.0, 0.125, 0.5, 1.125, 2.0]),
        ("constant", [0.0, 0.0, 2.0, 2.0, 2.0, 2.0, 2.0]),
    ],
)
def test_scheduled_loss_weights(shape, expected):
    scheduled = Scheduled(FLOPSRegularization(weight=2.0), warmup_steps=4, delay_steps=2, shape=shape)
    assert [scheduled.weight_at(step) for step in (0, 1, 2, 3, 4, 5, 6)] == pytest.approx(expected)
    assert scheduled.name == "FLOPSRegularization" and scheduled.needs_sparse


def test_total_loss_uses_the_weight_of_the_step():
    q, d = torch.tensor(rng.random((3, 6))), torch.tensor(rng.random((12, 6)))
    sparse = inputs(query_vectors=q, doc_vectors=d, sparse=True)
    flops = FLOPSRegularization(weight=0.5)(sparse)
    losses = [InfoNCE(), Scheduled(FLOPSRegularization(weight=0.5), warmup_steps=10)]
    for step in (0, 5, 20):
        total, terms = total_loss(losses, sparse, step)
        assert total.item() == pytest.approx(terms["InfoNCE"].item() + 0.5 * min(1, step / 10) * flops.item())


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("linear", [0.5, 1.0, 1.0, 0.75, 0.5]),  # warm-up 2 of 6 steps, then 4 decay steps to 0 at step 6
        ("cosine", [0.5, 1.0, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5]),
        ("constant", [0.5, 1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_lr_schedules(schedule, expected, tiny_bert_dir):
    from types import SimpleNamespace

    from rayir.modules import BiEncoderModule

    module = BiEncoderModule(tiny_bert_dir).configure_training([InfoNCE()], warmup_steps=2, lr_schedule=schedule)
    module._trainer = SimpleNamespace(estimated_stepping_batches=6)
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert [scheduler.lr_lambdas[0](step) for step in range(5)] == pytest.approx(expected)


def test_loggers_are_checked_before_training_and_write_where_told(tmp_path):
    from rayir.errors import ConfigError
    from rayir.train.loggers import check_loggers, experiment_loggers

    with pytest.raises(ConfigError, match="name each logger once"):
        check_loggers(["csv", "csv"])
    (csv_logger,) = experiment_loggers(["csv"], tmp_path)
    csv_logger.log_metrics({"train_loss": 0.5}, step=3)
    csv_logger.save()
    assert (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[1].split(",") == ["3", "0.5"]


def test_tensorboard_logger_writes_event_files(tmp_path):
    pytest.importorskip("tensorboardX")
    from rayir.train.loggers import check_loggers, experiment_loggers

    check_loggers(["csv", "tensorboard"])
    _, board = experiment_loggers(["csv", "tensorboard"], tmp_path)
    board.log_metrics({"train_loss": 0.25}, step=1)
    board.finalize("success")
    from tensorboardX.event_file_writer import EventFileWriter  # noqa: F401 - the writer really is tensorboardX

    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and b"train_loss" in events[0].read_bytes()  # the scalar's tag in its record
