"""The model families beyond the plain modes: MVR (viewer tokens), XTR (in-batch token retrieval
in training), UniCOIL (one weight per token), COIL (token vectors matched by vocabulary id) and
the Set-Encoder (candidates attend to each other
inside the backbone). Each is checked against a direct formula, trains a few steps, round-trips
through ``save_pretrained`` and indexes + searches (bi-encoders) or re-ranks (cross-encoders)
through the jobs. Lightning IR's own checkpoints of these families are compared with its recorded
scores in ``tests/test_lightning_ir_checkpoints.py``."""

from __future__ import annotations

import pytest
import torch

from rayir import BiEncoderModule, CrossEncoderModule
from rayir.data.datasets import QrelsDataset
from rayir.losses import ContrastiveLocalLoss, InBatchCrossEntropy, LossInputs, RankNet
from rayir.models import scoring
from tests.conftest import fit_steps

QUERY = "glacier ice melt"
DOCS = ["ice sheets melt as glaciers retreat", "coffee is brewed from roasted beans", "glacier ice cores hold old air"]


# ----------------------------------------------------------------------------- formulas


def xtr_by_hand(query, query_mask, docs, doc_mask, k):
    """XTR's training score written out over plain Python lists (dot similarity)."""
    sims = {}
    for n, (doc, dmask) in enumerate(zip(docs, doc_mask)):
        for i, (q, qm) in enumerate(zip(query, query_mask)):
            for j, (d, dm) in enumerate(zip(doc, dmask)):
                if qm and dm:
                    sims[n, i, j] = float(q @ d)
    kept = dict(sorted(sims.items(), key=lambda item: -item[1])[:k])
    scores = []
    for n in range(len(docs)):
        total, found = 0.0, 0
        for i in range(len(query)):
            best = max([kept.get((n, i, j), 0.0) for j in range(docs.shape[1])])
            total += best
            found += best > 0
        scores.append(total / max(found, 1))
    return scores


def test_xtr_keeps_each_querys_top_k_token_pairs():
    generator = torch.Generator().manual_seed(0)
    query, docs = torch.randn(4, 8, generator=generator), torch.randn(3, 5, 8, generator=generator)
    query_mask, doc_mask = torch.tensor([1, 1, 1, 0]), torch.ones(3, 5, dtype=torch.long)
    doc_mask[1, 3:] = 0
    for k in (1, 4, 10, 1000):
        expected = xtr_by_hand(query, query_mask, docs, doc_mask, k)
        got = scoring.xtr_scores(query, query_mask, docs, doc_mask, "dot", k)
        assert got.tolist() == pytest.approx(expected, abs=1e-5)
    # with every pair kept, XTR is MaxSim over the positive maxima, normalised by their number
    maxsim = scoring.maxsim(query.expand(3, -1, -1), query_mask.expand(3, -1), docs, doc_mask)
    kept_all = scoring.xtr_scores(query, query_mask, docs, doc_mask, "dot", 10_000)
    assert not torch.allclose(kept_all, maxsim)  # normalised, and negative maxima count 0


def test_xtr_applies_in_training_only(tiny_bert_dir):
    module = BiEncoderModule(tiny_bert_dir, mode="multi_vector", pooling=None, embedding_dim=8, xtr_k_train=4)
    queries, docs = module.encode_queries([QUERY]), module.encode_docs(DOCS)
    plain = module.model.score(queries, docs)
    module.model.train()
    trained = module.model.score(queries, docs)
    matrix = module.model.score_matrix(queries, docs)
    module.model.eval()
    expected = scoring.xtr_scores(queries.vectors[0], queries.mask[0], docs.vectors, docs.mask, "dot", 4)
    assert torch.allclose(trained, expected) and torch.allclose(matrix[0], expected)
    assert torch.allclose(plain, module.model.score_pairs(queries.select(torch.zeros(3, dtype=torch.long)), docs))
    assert not torch.allclose(plain, trained)


def test_unicoil_vectors_hold_each_tokens_largest_relu_weight():
    weights = torch.tensor([[0.5, -1.0, 2.0, 0.7, 3.0]])
    ids = torch.tensor([[101, 7, 9, 7, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    vector = scoring.token_weights_to_vocabulary(weights, ids, mask, vocab=12 + 101)
    expected = torch.zeros(1, 113)
    expected[0, 101], expected[0, 7], expected[0, 9] = 0.5, 0.7, 2.0  # token 7: max(relu(-1), 0.7); pad: 0
    assert torch.equal(vector, expected)


def test_contrastive_local_loss_is_cross_entropy_towards_the_best_view():
    sims = torch.tensor([[[0.2, 1.5, -0.3]], [[2.0, float("-inf"), 0.1]]])  # (pairs, Lq=1, views)
    mask = torch.ones(2, 1, dtype=torch.bool)
    inputs = LossInputs(torch.zeros(1, 2), torch.zeros(1, 2), token_similarity=sims, query_token_mask=mask)
    first = -(1.5 / 0.5) + torch.logsumexp(torch.tensor([0.2, 1.5, -0.3]) / 0.5, 0)
    second = -(2.0 / 0.5) + torch.logsumexp(torch.tensor([2.0, 0.1]) / 0.5, 0)
    expected = (first + second) / 2
    assert ContrastiveLocalLoss(temperature=0.5)(inputs).item() == pytest.approx(expected.item(), rel=1e-6)


def coil_by_hand(query, doc):
    """COIL's score written out: first tokens' dot product, plus per query token the best dot
    product with a same-id document token, floored at 0."""
    total = float(query.first[0] @ doc.first[0])
    for q, q_id, q_on in zip(query.vectors[0], query.token_ids[0], query.mask[0]):
        if not q_on:
            continue
        same = [
            float(q @ d)
            for d, d_id, d_on in zip(doc.vectors[0], doc.token_ids[0], doc.mask[0])
            if d_on and d_id == q_id
        ]
        total += max(same + [0.0])
    return total


def test_coil_scores_match_only_same_token_vectors(tiny_bert_dir):
    module = BiEncoderModule(tiny_bert_dir, mode="coil", embedding_dim=8, cls_embedding_dim=16)
    torch.nn.init.normal_(module.model.projection.weight, std=0.5)
    queries, docs = module.encode_queries([QUERY]), module.encode_docs(DOCS)
    assert docs.first.shape == (3, 16) and docs.vectors.shape[-1] == 8
    scores = module.score(QUERY, DOCS).scores
    expected = [coil_by_hand(queries, docs.select(slice(i, i + 1))) for i in range(3)]
    assert scores.tolist() == pytest.approx(expected, rel=1e-6)  # scores in the hundreds: float32 rounding
    # "coffee ..." shares only [SEP] with the query (which counts, as in Lightning IR); the others more
    lexical = scores - (queries.first @ docs.first.T)[0]
    sep = module.tokenizer.tokenizer.sep_token_id
    q_sep = queries.vectors[0][queries.token_ids[0] == sep][0]
    d_sep = docs.vectors[1][(docs.token_ids[1] == sep) & docs.mask[1]][0]
    assert lexical[1].item() == pytest.approx(max(float(q_sep @ d_sep), 0.0), abs=1e-4)
    assert lexical[0].item() > lexical[1].item() and lexical[2].item() > lexical[1].item()
    matrix = module.model.score_matrix(queries, docs)
    assert torch.allclose(matrix[0], scores, atol=1e-5)


def test_set_encoder_candidates_see_each_other_and_a_lone_pair_scores_as_pointwise(tiny_bert_dir):
    module = CrossEncoderModule(tiny_bert_dir, mode="set_encoder")
    torch.nn.init.normal_(module.model.head.weight, std=1.0)
    pointwise = CrossEncoderModule(tiny_bert_dir, mode="pointwise")
    pointwise.model.head.load_state_dict(module.model.head.state_dict())
    full = module.score(QUERY, DOCS).scores
    assert torch.allclose(module.score(QUERY, DOCS[::-1]).scores.flip(0), full, atol=1e-5)
    alone = [module.score(QUERY, [doc]).scores for doc in DOCS]
    assert torch.allclose(torch.cat(alone), pointwise.score(QUERY, DOCS).scores, atol=1e-5)
    assert not torch.allclose(torch.cat(alone), full, atol=1e-4)  # the list changes the scores
    two = module.score([QUERY, "coffee"], [DOCS, DOCS[:2]])
    assert torch.allclose(two.per_query()[0], full, atol=1e-5)  # lists of other queries do not mix in
    assert module.model.encoder.state_dict().keys() == pointwise.model.encoder.state_dict().keys()


# ----------------------------------------------------------------------------- train, save, index / re-rank


def judged(sample_collection, **options):
    where = str(sample_collection)
    return lambda: QrelsDataset(where, where, where, split="test", **options)


def trained(module, losses, train, tmp_path, name):
    """A few optimiser steps; then the saved model loads back with the same scores."""
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    module.configure_training(losses, lr=1e-2)
    fit_steps(module, train, steps=2, batch_size=2)
    module.eval()
    assert any(not torch.equal(p.detach(), before[n]) for n, p in module.model.named_parameters())
    module.save_pretrained(tmp_path / name)
    again = type(module)(tmp_path / name).eval()
    with torch.inference_mode():
        assert torch.allclose(again.score(QUERY, DOCS).scores, module.score(QUERY, DOCS).scores, atol=1e-5)
    return again


def search_matches_brute_force(module, model_dir, sample_collection, tmp_path, k=5):
    """Index the sample with the jobs and search it: every query's ranking is the exhaustive one."""
    from rayir.cli import index, search
    from rayir.data import DocStore, read_queries, read_run

    index(str(sample_collection), str(tmp_path / "index"), str(model_dir), in_process=True)
    search(
        str(tmp_path / "index" / "index"),
        str(sample_collection),
        str(tmp_path / "run"),
        k=k,
        split="test",
        in_process=True,
    )
    run = read_run(tmp_path / "run")
    store = DocStore.from_source(sample_collection)
    doc_ids = list(store)
    texts = [store[d] for d in doc_ids]
    queries = list(read_queries(sample_collection, split="test"))
    assert set(run) == {q.query_id for q in queries}
    with torch.inference_mode():
        for query in queries:
            scores = module.score(query.text, texts).scores
            top = torch.topk(scores, k)
            expected = {doc_ids[i]: s for i, s in zip(top.indices.tolist(), top.values.tolist())}
            assert run[query.query_id] == pytest.approx(expected, abs=1e-4), query.query_id


def test_mvr_trains_with_its_local_loss_and_searches_its_views(tiny_bert_dir, sample_collection, tmp_path):
    module = BiEncoderModule(tiny_bert_dir, mode="multi_vector", pooling=None, embedding_dim=16, viewer_tokens=3)
    tokenizer = module.tokenizer.tokenizer
    assert all(t in tokenizer.get_vocab() for t in ("[VIE0]", "[VIE1]", "[VIE2]"))
    batch = module.tokenizer.docs(DOCS)
    assert batch["scoring_mask"].sum(dim=1).tolist() == [3, 3, 3]  # a document is its views
    assert module.tokenizer.queries([QUERY])["scoring_mask"].sum().item() == 1  # a query its first vector
    again = trained(
        module,
        [InBatchCrossEntropy(), ContrastiveLocalLoss(weight=0.1)],
        judged(sample_collection, num_negatives=0),
        tmp_path,
        "mvr",
    )
    assert again.config.viewer_tokens == 3
    search_matches_brute_force(again, tmp_path / "mvr", sample_collection, tmp_path)


def test_xtr_trains_and_searches_with_maxsim(tiny_bert_dir, sample_collection, tmp_path):
    module = BiEncoderModule(tiny_bert_dir, mode="multi_vector", pooling=None, embedding_dim=16, xtr_k_train=32)
    again = trained(module, [InBatchCrossEntropy()], judged(sample_collection, num_negatives=0), tmp_path, "xtr")
    assert again.config.xtr_k_train == 32
    search_matches_brute_force(again, tmp_path / "xtr", sample_collection, tmp_path)


def test_unicoil_trains_and_searches_the_sparse_index(tiny_bert_dir, sample_collection, tmp_path):
    module = BiEncoderModule(tiny_bert_dir, mode="sparse", sparse_weighting="token")
    with torch.no_grad():
        module.model.projection.bias.fill_(0.5)  # a fresh head relu-s most weights to 0
    assert module.model.embedding_dim == module.model.config.encoder_config.vocab_size
    again = trained(module, [InBatchCrossEntropy()], judged(sample_collection, num_negatives=0), tmp_path, "unicoil")
    assert again.config.sparse_weighting == "token" and "MaskedLM" not in type(again.model.encoder).__name__
    search_matches_brute_force(again, tmp_path / "unicoil", sample_collection, tmp_path)


def test_coil_trains_and_searches_its_token_lists_exactly_at_any_shard_count(
    tiny_bert_dir, sample_collection, tmp_path
):
    from rayir.cli import search
    from rayir.data import read_run

    module = BiEncoderModule(tiny_bert_dir, mode="coil", embedding_dim=8, cls_embedding_dim=16)
    again = trained(module, [InBatchCrossEntropy()], judged(sample_collection, num_negatives=0), tmp_path, "coil")
    assert (again.config.mode, again.config.cls_embedding_dim) == ("coil", 16)
    search_matches_brute_force(again, tmp_path / "coil", sample_collection, tmp_path)
    from rayir.index import build_index

    build_index(tmp_path / "index" / "embeddings", tmp_path / "three", num_shards=3, in_process=True)
    search(
        str(tmp_path / "three"), str(sample_collection), str(tmp_path / "three.run"), k=5, split="test", in_process=True
    )
    three, one = read_run(tmp_path / "three.run"), read_run(tmp_path / "run")
    assert {q: list(ranked) for q, ranked in three.items()} == {q: list(ranked) for q, ranked in one.items()}
    for query_id, ranked in one.items():  # equal up to float32 rounding of differently sized products
        assert three[query_id] == pytest.approx(ranked, rel=1e-6)


def test_set_encoder_trains_on_lists_and_re_ranks_them_together(tiny_bert_dir, sample_collection, tmp_path):
    from rayir.cli import re_rank
    from rayir.data import DocStore, read_queries, read_run

    store = DocStore.from_source(sample_collection)
    queries = list(read_queries(sample_collection, split="test"))
    run_file = tmp_path / "all.run"
    run_file.write_text(
        "".join(f"{q.query_id} Q0 {d} {r + 1} {-r} all\n" for q in queries for r, d in enumerate(store))
    )
    module = CrossEncoderModule(tiny_bert_dir, mode="set_encoder")
    again = trained(module, [RankNet()], judged(sample_collection, num_negatives=3, run=str(run_file)), tmp_path, "set")
    assert again.config.mode == "set_encoder"
    re_rank(
        str(tmp_path / "set"),
        str(run_file),
        str(sample_collection),
        str(sample_collection),
        str(tmp_path / "set.run"),
        depth=6,
        split="test",
        in_process=True,
    )
    reranked = read_run(tmp_path / "set.run")
    first = read_run(run_file)
    for query in queries[:3]:
        candidates = sorted(first[query.query_id], key=first[query.query_id].get, reverse=True)[:6]
        with torch.inference_mode():
            expected = again.score(query.text, [store[d] for d in candidates]).scores.tolist()
        assert reranked[query.query_id] == pytest.approx(dict(zip(candidates, expected)), abs=1e-5)


def test_family_settings_that_do_not_fit_are_refused(tiny_bert_dir):
    with pytest.raises(ValueError, match="viewer_tokens"):
        BiEncoderModule(tiny_bert_dir, viewer_tokens=2)  # dense
    with pytest.raises(ValueError, match="xtr_k_train"):
        BiEncoderModule(tiny_bert_dir, mode="sparse", xtr_k_train=4)
    with pytest.raises(ValueError, match="sparse_weighting"):
        BiEncoderModule(tiny_bert_dir, mode="sparse", sparse_weighting="token", query_inference_free=True)
    module = BiEncoderModule(tiny_bert_dir)
    with pytest.raises(ValueError, match="multi-vector"):
        module.configure_training([ContrastiveLocalLoss()])


def test_a_two_class_head_over_berts_pooler_scores_the_relevant_class_and_round_trips(tiny_bert_dir, tmp_path):
    """Lightning IR's ``mono`` scoring (two logits, log-softmax) over a dense + tanh pooler."""
    module = CrossEncoderModule(tiny_bert_dir, score_head="two_class", pooler_dense=True)
    torch.nn.init.normal_(module.model.head.weight, std=1.0)
    pairs = module.tokenizer.pairs([QUERY] * 3, DOCS)
    with torch.inference_mode():
        hidden = module.model.encoder(**pairs).last_hidden_state[:, 0]
        pooled = torch.tanh(hidden @ module.model.pooler[0].weight.T + module.model.pooler[0].bias)
        expected = torch.log_softmax(module.model.head(pooled), dim=-1)[:, 1]
        scores = module.score(QUERY, DOCS).scores
    assert torch.allclose(scores, expected, atol=1e-6) and (scores < 0).all()
    module.save_pretrained(tmp_path / "two-class")
    again = CrossEncoderModule(tmp_path / "two-class")
    assert (again.config.score_head, again.config.pooler_dense) == ("two_class", True)
    assert torch.allclose(again.score(QUERY, DOCS).scores, scores, atol=1e-6)
    with pytest.raises(ValueError, match="pooler_dense / score_head"):
        CrossEncoderModule(tiny_bert_dir, mode="sequence_classification", score_head="two_class")
