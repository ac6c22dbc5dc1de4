"""The main job: MiniLM encode → 2-shard index → search → evaluate on the bundled collection."""

from __future__ import annotations

import torch

from rayir.data import read_docs, read_queries, read_run
from rayir.evaluate import evaluate
from rayir.quickstart import main


def test_quickstart_ranks_like_sentence_transformers(ray_session, minilm_path, sample_collection, tmp_path, capsys):
    from sentence_transformers import SentenceTransformer

    metrics = main(model=minilm_path, output=str(tmp_path), measures=["nDCG@10"])
    printed = capsys.readouterr().out
    assert '"stage": "search"' in printed and '"nDCG@10"' in printed

    run = read_run(tmp_path / "test.run")
    queries = list(read_queries(sample_collection, split="test"))
    docs = list(read_docs(sample_collection))
    assert sorted(run) == sorted(q.query_id for q in queries)
    assert all(len(ranking) == len(docs) for ranking in run.values())

    reference = SentenceTransformer(minilm_path, device="cpu")
    scores = reference.similarity(
        reference.encode([q.text for q in queries], convert_to_tensor=True),
        reference.encode([d.text for d in docs], convert_to_tensor=True),
    )
    for query, row in zip(queries, scores):
        best = torch.topk(row, 5)
        ours = sorted(run[query.query_id].items(), key=lambda item: -item[1])[:5]
        assert [d for d, _ in ours] == [docs[i].doc_id for i in best.indices.tolist()]
        assert [s for _, s in ours] == __import__("pytest").approx(best.values.tolist(), abs=1e-5)
    expected = evaluate(tmp_path / "test.run", sample_collection, ["nDCG@10"], split="test").mean["nDCG@10"]
    assert metrics["nDCG@10"] == __import__("pytest").approx(expected, abs=1e-6)
