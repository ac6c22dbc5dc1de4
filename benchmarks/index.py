"""Index build time and size for each index type on one collection's embeddings.

Dense factories are compared with the exact ``Flat`` index they approximate (recall of its top-10,
queries pre-encoded); the sparse rows are exact by construction. Build time is the wall time of
``build_index`` (Ray tasks included), size the bytes on disk.

    python benchmarks/index.py --dense <encode_corpus dir of a dense model> --sparse <splade dir> --bm25 <bm25 dir>
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import ray

from rayir import BiEncoderModule
from rayir.data import read_qrels, read_queries
from rayir.evaluate import evaluate
from rayir.index import QueryBatch, build_index, load_shard, merge_hits
from rayir.index.manifest import read_doc_table
from rayir.serve.results import SearchResult

FACTORIES = ["Flat", "HNSW32", "IVF64,Flat", "IVF64,PQ32", "PQ32"]


def size_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 2**20


def search(index_dir: Path, manifest: dict, batch: QueryBatch, k: int, **options) -> SearchResult:
    shards = [load_shard(index_dir / s["dir"], **options) for s in manifest["shards"]]
    merged = merge_hits([s.search(batch, k) for s in shards], k)
    return SearchResult([str(i) for i in range(len(batch))], merged, read_doc_table(index_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="../shared/data/scifact")
    parser.add_argument("--dense", required=True, help="embeddings of a dense model (encode_corpus output)")
    parser.add_argument("--sparse", action="append", default=[], help="embeddings of sparse models / bm25")
    parser.add_argument("--shards", type=int, default=1)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    work = Path(tempfile.mkdtemp(prefix="rayir-index-bench-"))
    queries = list(read_queries(args.corpus, split="test"))
    qrels = read_qrels(args.corpus, "test")
    from rayir.encode import read_manifest

    manifest = read_manifest(args.dense)
    module = BiEncoderModule(manifest["settings"]["model"], **manifest["settings"]["config_overrides"])
    batch = QueryBatch(vectors=module.encode_queries([q.text for q in queries]).vectors.numpy())

    rows = []
    exact = None
    for factory in FACTORIES:
        target = work / factory.replace(",", "_")
        started = time.perf_counter()
        index_manifest = build_index(args.dense, target, num_shards=args.shards, factory=factory)
        seconds = time.perf_counter() - started
        options = {"nprobe": 8} if factory.startswith("IVF") else {}
        hits = search(target, index_manifest, batch, 100, **options)
        if exact is None:
            exact = hits
        recall = np.mean([len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(hits.doc_ids, exact.doc_ids)])
        run = {q.query_id: dict(zip(ids, map(float, sc))) for q, ids, sc in zip(queries, hits.doc_ids, hits.scores)}
        ndcg = evaluate(run, qrels, ["nDCG@10"]).mean["nDCG@10"]
        rows.append((f"dense {factory}" + (" (nprobe 8)" if options else ""), seconds, size_mb(target), recall, ndcg))
    for number, sparse in enumerate(args.sparse):
        name = Path(sparse).resolve().parent.name if Path(sparse).name == "embeddings" else Path(sparse).name
        target = work / f"sparse-{number}-{name}"
        started = time.perf_counter()
        index_manifest = build_index(sparse, target, num_shards=args.shards)
        rows.append((f"sparse inverted ({name})", time.perf_counter() - started, size_mb(target), 1.0, float("nan")))

    print(f"\nIndex builds on {args.corpus} ({manifest['documents']} documents, {args.shards} shard(s))")
    print(f"{'index':<34} {'build s':>8} {'size MiB':>9} {'R@10 vs Flat':>13} {'nDCG@10':>8}")
    for name, seconds, size, recall, ndcg in rows:
        print(f"{name:<34} {seconds:>8.2f} {size:>9.2f} {recall:>13.3f} {ndcg:>8.4f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
