"""colbert-ai's PLAID index over given token vectors: the peer of ``benchmarks/multivector.py``.

Runs in its own environment (colbert-ai pins what it pins; it cannot import rayir), e.g.::

    python -m venv /tmp/colbert-venv
    /tmp/colbert-venv/bin/pip install torch==2.13.0 colbert-ai faiss-cpu "transformers<5" ninja
    /tmp/colbert-venv/bin/python benchmarks/plaid_peer.py WORK_DIR --nbits 2

``WORK_DIR`` holds ``doc_tokens.npy`` (all document token vectors, float32, one document after
another), ``doc_lens.npy`` and ``queries.npy`` ``(Q, Lq, D)`` (masked query tokens as zero rows,
which add 0 to a MaxSim), written by ``multivector.py``. colbert-ai's own indexer and searcher run
unchanged except that its encoder is replaced by a lookup of these vectors (no model is loaded).
Builds use every CPU, searches one thread. Writes ``plaid-<nbits>.json``: build seconds, index
bytes (all files; ``token_bytes``: codes, residuals and the centroid-to-document lists), and per
search setting the seconds and the top-k document numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work", type=Path)
    parser.add_argument("--nbits", type=int, default=2)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--settings", default="1:0.5:256,2:0.45:1024,4:0.4:4096", help="ncells:threshold:ndocs,…")
    args = parser.parse_args()

    from colbert.indexing import collection_indexer
    from colbert.infra import ColBERTConfig, Run, RunConfig
    from colbert.modeling.colbert import ColBERT
    from colbert.search.index_storage import IndexScorer

    ColBERT.try_load_torch_extensions(use_gpu=False)  # its MaxSim kernel, loaded with a model otherwise
    tokens = torch.from_numpy(np.load(args.work / "doc_tokens.npy")).float()
    lens = np.load(args.work / "doc_lens.npy")
    starts = np.concatenate([[0], np.cumsum(lens)])

    def encode_passages(self, passages):  # passages are document numbers as text
        rows = [int(p) for p in passages]
        if not rows:
            return None, None
        return torch.cat([tokens[starts[r] : starts[r + 1]] for r in rows]), [int(lens[r]) for r in rows]

    collection_indexer.Checkpoint = lambda *a, **k: None  # no model: the vectors are given
    collection_indexer.CollectionEncoder.encode_passages = encode_passages
    collection = [str(i) for i in range(len(lens))]
    root = args.work / f"colbert-{args.nbits}"
    config = ColBERTConfig(
        nbits=args.nbits,
        dim=tokens.shape[1],
        doc_maxlen=int(lens.max()),
        root=str(root),
        index_name="bench",
        avoid_fork_if_possible=True,
        nranks=1,
        checkpoint="given-vectors",
        collection=collection,
    )
    with Run().context(RunConfig(nranks=1, root=str(root), experiment="bench")):
        started = time.perf_counter()
        config.configure(index_path=str(root / "index"))
        os.makedirs(config.index_path_, exist_ok=True)
        import faiss

        faiss.omp_set_num_threads(os.cpu_count() or 1)  # builds use the machine, searches 1 thread
        torch.set_num_threads(os.cpu_count() or 1)
        collection_indexer.encode(config, collection, [], [], verbose=0)
        build_seconds = time.perf_counter() - started
        torch.set_num_threads(1)
        files = [f for f in Path(config.index_path_).glob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        token_bytes = sum(
            f.stat().st_size for f in files if f.name.endswith((".codes.pt", ".residuals.pt", "ivf.pid.pt"))
        )
        scorer = IndexScorer(config.index_path_, use_gpu=False, load_index_with_mmap=False)
        queries = torch.from_numpy(np.load(args.work / "queries.npy")).float()
        results = []
        for setting in args.settings.split(","):
            ncells, threshold, ndocs = setting.split(":")
            search = ColBERTConfig.from_existing(config)
            search.configure(ncells=int(ncells), centroid_score_threshold=float(threshold), ndocs=int(ndocs))
            scorer.rank(search, queries[:1])  # warm-up (extension loading, first allocations)
            started = time.perf_counter()
            top = []
            for q in queries:
                pids, scores = scorer.rank(search, q[None])
                top.append([int(p) for p in pids[: args.k]])
            results.append({"setting": setting, "seconds": time.perf_counter() - started, "top": top})
    out = {
        "nbits": args.nbits,
        "build_seconds": build_seconds,
        "index_bytes": size,
        "token_bytes": token_bytes,
        "searches": results,
    }
    (args.work / f"plaid-{args.nbits}.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()
