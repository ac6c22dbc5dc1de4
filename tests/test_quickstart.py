"""The quickstart job: exhaustive MiniLM search over the sample collection, evaluated."""

from __future__ import annotations

import torch

from rayir.data import read_docs, read_queries, read_run
from rayir.evaluate import evaluate
from rayir.quickstart import main


def test_quickstart_ranks_like_sentence_transformers(minilm_path, sample_collection, tmp_path, capsys):
    from sentence_transformers import SentenceTransformer

    output = tmp_path / "run.txt"
    metrics = main(model=minilm_path, output=str(output), measures=("nDCG@10",))
    printed = capsys.readouterr().out
    assert '"nDCG@10"' in printed

    run = read_run(output)
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
        best = torch.topk(row, 3).indices.tolist()
        ours = sorted(run[query.query_id], key=run[query.query_id].get, reverse=True)[:3]
        assert ours == [docs[i].doc_id for i in best]
    assert metrics["nDCG@10"] == evaluate(output, sample_collection, ["nDCG@10"], split="test").mean["nDCG@10"]
