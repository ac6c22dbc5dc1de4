"""Score a small collection exhaustively with a bi-encoder and evaluate: rayir in one process.

The distributed pipeline (``jobs/index.py`` then ``jobs/search.py``) does the same at scale.
"""

from __future__ import annotations

import json
from pathlib import Path

from .data import read_docs, read_qrels, read_queries, write_run
from .evaluate import evaluate
from .modules import BiEncoderModule
from .resources import SAMPLE_COLLECTION, default_model_path


def exhaustive_run(module: BiEncoderModule, collection: str | Path, split: str, depth: int) -> dict[str, dict[str, float]]:
    docs = list(read_docs(collection))
    queries = list(read_queries(collection, split=split))
    doc_embeddings = module.encode_docs([d.text for d in docs])
    query_embeddings = module.encode_queries([q.text for q in queries])
    scores = module.model.score_matrix(query_embeddings, doc_embeddings)
    top = scores.topk(min(depth, len(docs)), dim=1)
    return {
        q.query_id: {docs[j].doc_id: float(s) for s, j in zip(values.tolist(), indices.tolist())}
        for q, values, indices in zip(queries, top.values, top.indices)
    }


def main(
    model: str | None = None,
    collection: str = str(SAMPLE_COLLECTION),
    split: str = "test",
    output: str = "outputs/quickstart.run",
    measures: tuple[str, ...] = ("nDCG@10", "R@100", "RR@10"),
    depth: int = 100,
) -> dict[str, float]:
    module = BiEncoderModule(model or default_model_path())
    run = exhaustive_run(module, collection, split, depth)
    write_run(run, output)
    result = evaluate(run, read_qrels(collection, split), measures)
    print(json.dumps({"run": output, "queries": result.num_queries, **result.mean}))
    return result.mean
