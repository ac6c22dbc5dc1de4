"""Scale: index build, search speed and memory from 10k to 1M documents, rayir beside its peers.

For each representation (``bm25`` texts, ``dense`` MiniLM-like vectors, ``sparse`` splade-tiny-like
vectors; see ``synthetic.py`` for how each collection is made from real data) and each collection
size, in one run:

- rayir at 1, 2 and 4 shards: ``build_index`` seconds and the peak RSS of each build task; search
  through the coordinator (queries pre-encoded; batches of ``--batch-size``): queries/s with batches
  pipelined, p50 / p99 latency of one batch at a time, the peak RSS of each shard actor and of the
  driver. Each shard actor and build task gets one CPU.
- the peers on the same data, one thread each, every peer in a fresh process (its peak RSS covers
  loading, building and searching): bm25s (BM25), Faiss ``IndexFlatIP`` and ``IndexHNSWFlat``
  (dense), a torch sparse CSR product over all documents and Seismic (``pyseismic-lsr``) (SPLADE).
  Recall@10 is measured against rayir's exact top-10 (BM25: overlap with it, the tokenisers differ,
  and whether the query's source document is in the top-10).

It prints one table, the growth exponent of each cost (the slope of log cost against log
documents), and writes a PNG of queries/s and memory against collection size. Every
(representation, size) result is saved in ``--cache``/scale-results.json, so a long run can be
resumed or extended (``--force`` measures again).

    python benchmarks/scale.py --sizes 10000 100000 1000000 --cache /tmp/rayir-scale --plot scale.png
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import synthetic
from scale_peers import PEER_BUILDERS, K
from scale_report import plot, print_tables

logger = logging.getLogger("scale")
MODELS = {"dense": "all-MiniLM-L6-v2", "sparse": "splade-tiny", "bm25": "bm25"}
PEERS = {"bm25": ["bm25s"], "dense": ["faiss-flat", "faiss-hnsw"], "sparse": ["torch-csr", "seismic"]}


def peak_rss_mib() -> float:
    """This process's peak RSS (``VmHWM``: unlike ``ru_maxrss`` it is not inherited across exec, so a
    child does not report its parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class TitleSampler:
    """Peak RSS of the Ray worker processes whose title starts with ``prefix`` (e.g. a task's name),
    sampled every 0.2 s while the block runs."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.peaks, self._stop = prefix, {}, threading.Event()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.2):
            for process in psutil.process_iter(["cmdline", "memory_info"]):
                cmdline = process.info["cmdline"] or [""]
                if cmdline and cmdline[0].startswith(self.prefix) and process.info["memory_info"]:
                    rss = process.info["memory_info"].rss / 2**20
                    self.peaks[process.pid] = max(self.peaks.get(process.pid, 0.0), rss)

    def __enter__(self) -> TitleSampler:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------------------------- the data
def embeddings_dir(cache: Path, kind: str, documents: int) -> Path:
    return cache / f"{kind}-{documents}" / ("embeddings" if kind == "bm25" else "")


def prepare(kind: str, documents: int, queries: int, cache: Path, model: str | None) -> None:
    """Generate (once) the collection and query set of this size into the cache."""
    target = embeddings_dir(cache, kind, documents)
    if kind == "bm25":
        corpus, _ = synthetic.cached_texts(cache, documents, queries)
        if not (target / "manifest.json").exists():
            from rayir.encode import encode_corpus

            # At least 10 files (enough for 4 index shards), at most 16,384 documents each.
            per_file = min(16384, max(1024, -(-documents // 16)))
            encode_corpus("bm25", corpus, target, docs_per_shard=per_file, overwrite=True)
        return
    query_file = cache / f"queries-{kind}-{queries}.npz"
    if (target / "manifest.json").exists() and query_file.exists():
        return
    model = model or (str(synthetic.SPLADE_TINY) if kind == "sparse" else default_model())
    template, seed_docs, seed_queries = synthetic.real_encodings(kind, model, cache)
    if not (target / "manifest.json").exists():
        # 16 files (at least 1,024 documents each): enough for 4 index shards at every size.
        synthetic.synthetic_embeddings(
            target, template, seed_docs, documents, docs_per_shard=max(1024, -(-documents // 16))
        )
    encoded = synthetic.synthetic_queries(seed_queries, queries)
    if isinstance(encoded, synthetic.Csr):
        np.savez(query_file, indptr=encoded.indptr, terms=encoded.terms, weights=encoded.weights)
    else:
        np.savez(query_file, vectors=encoded)


def default_model() -> str:
    from rayir.resources import default_model_path

    return default_model_path()


def load_queries(kind: str, cache: Path, documents: int, queries: int, index_dir: Path | None = None):
    """The query set as a ``QueryBatch`` (BM25: encoded by the index's own query encoder) and, for
    BM25, the texts and source documents."""
    from rayir.index import QueryBatch

    if kind == "bm25":
        from rayir.index.manifest import read_index_manifest
        from rayir.serve.query_encoder import index_query_encoder

        _, query_file = synthetic.cached_texts(cache, documents, queries)
        records = [json.loads(line) for line in query_file.read_text().splitlines()]
        texts = [r["text"] for r in records]
        batch = None
        if index_dir is not None:
            batch = index_query_encoder(index_dir, read_index_manifest(index_dir))(texts)
        return batch, texts, [int(r["source"][1:]) for r in records]
    saved = np.load(cache / f"queries-{kind}-{queries}.npz")
    if kind == "dense":
        return QueryBatch(vectors=saved["vectors"]), None, None
    return QueryBatch(indptr=saved["indptr"], terms=saved["terms"], weights=saved["weights"]), None, None


def batches(batch, size: int) -> list:
    return [batch.rows(start, start + size) for start in range(0, len(batch), size)]


def latency_and_qps(search_one, search_all, parts: list, queries: int) -> tuple[dict, list]:
    """p50/p99 of one batch at a time, then queries/s over all batches (best of two passes); also
    the last pass's results."""
    seconds = []
    for part in parts:
        started = time.perf_counter()
        search_one(part)
        seconds.append(time.perf_counter() - started)
    best, found = float("inf"), []
    for _ in range(2):
        started = time.perf_counter()
        found = search_all(parts)
        best = min(best, time.perf_counter() - started)
    speed = {
        "qps": queries / best,
        "p50_ms": 1000 * float(np.percentile(seconds, 50)),
        "p99_ms": 1000 * float(np.percentile(seconds, 99)),
    }
    return speed, found


# ----------------------------------------------------------------------------- rayir (a child)
def _import_backends() -> None:
    import rayir.index.build
    import rayir.index.dense
    import rayir.index.sparse
    import rayir.index.sparse_kernel  # noqa: F401 - numba loads its compiled kernel here


def run_rayir(kind: str, documents: int, shard_counts: list[int], args) -> list[dict]:
    import ray

    from rayir.index import build_index
    from rayir.index.hits import HitMatrix
    from rayir.index.manifest import read_doc_table
    from rayir.serve.coordinator import Searcher

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    rows, reference = [], None
    # Start the task workers and import the backends first: build seconds time the build alone.
    ray.get([ray.remote(num_cpus=1)(_import_backends).remote() for _ in range(2)])
    for shards in shard_counts:
        index_dir = args.cache / "indexes" / f"{kind}-{documents}-{shards}"
        with TitleSampler("ray::build_index_shard") as sampler:
            started = time.perf_counter()
            build_index(embeddings_dir(args.cache, kind, documents), index_dir, num_shards=shards, overwrite=True)
            build_s = time.perf_counter() - started
        batch, texts, sources = load_queries(kind, args.cache, documents, args.queries, index_dir)
        parts = batches(batch, args.batch_size)
        with Searcher(index_dir, threads_per_shard=1) as searcher:
            searcher.search_batch(parts[0], K)  # actors loaded and warm
            speed, found = latency_and_qps(
                lambda part: searcher.search_batch(part, K),
                lambda all_parts: list(searcher.search_batches(iter(all_parts), K)),
                parts,
                len(batch),
            )
            hits = HitMatrix.stack(found)
            actor_rss = [ray.get(a.__ray_call__.remote(lambda self: peak_rss_mib())) for a in searcher.actors]
        doc_ids = read_doc_table(index_dir).to_numpy(zero_copy_only=False)
        # Documents are "d<number>"; -1 pads a query that matched fewer than K documents.
        top = np.full((len(hits), K), -1, dtype=np.int64)
        for i, (row, count) in enumerate(zip(hits.ordinals, hits.counts)):
            top[i, : min(count, K)] = [int(doc_ids[o][1:]) for o in row[: min(count, K)]]
        if reference is None:
            reference = top
            np.save(args.cache / f"exact-{kind}-{documents}-{args.queries}.npy", top)
        row = {
            "kind": kind,
            "documents": documents,
            "system": "rayir",
            "shards": shards,
            "build_s": build_s,
            "build_mib": max(sampler.peaks.values(), default=float("nan")),
            **speed,
            "search_mib": max(actor_rss),
            "driver_mib": peak_rss_mib(),
            "recall": recall_at_k(top, reference),
        }
        if sources is not None:
            row["source_at_10"] = float(np.mean([s in set(r) for s, r in zip(sources, top)]))
        rows.append(row)
        logger.warning("%s", row)
    ray.shutdown()
    return rows


# ----------------------------------------------------------------------------- peers (children)
def run_peer(kind: str, documents: int, peer: str, args) -> dict:
    """One peer in this (fresh) process: build, then search the same queries one thread."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rayir.encode import read_manifest

    reference = np.load(args.cache / f"exact-{kind}-{documents}-{args.queries}.npy")
    row = {"kind": kind, "documents": documents, "system": peer, "shards": 1}
    if kind == "bm25":
        return {**row, **bm25s_peer(documents, args, reference)}
    directory = embeddings_dir(args.cache, kind, documents)
    table = pa.concat_tables([pq.read_table(directory / s["file"]) for s in read_manifest(directory)["shards"]])
    doc_number = np.array([int(d[1:]) for d in table.column("doc_id").to_pylist()])
    batch, _, _ = load_queries(kind, args.cache, documents, args.queries)
    parts = batches(batch, args.batch_size)
    build, search = PEER_BUILDERS[peer](table, read_manifest(directory)["dim"])
    del table
    started = time.perf_counter()
    searcher = build()
    row["build_s"] = time.perf_counter() - started
    speed, found = latency_and_qps(
        lambda p: search(searcher, p), lambda ps: [search(searcher, p) for p in ps], parts, len(batch)
    )
    row.update(speed)
    top = doc_number[np.concatenate(found)]
    row["recall"] = recall_at_k(top, reference)
    row["build_mib"] = row["search_mib"] = peak_rss_mib()
    return row


def recall_at_k(top: np.ndarray, reference: np.ndarray) -> float:
    """Mean share of each query's exact top-K (without the -1 padding) that ``top`` found."""
    shares = []
    for found, exact in zip(top, reference):
        wanted = set(exact.tolist()) - {-1}
        shares.append(len(wanted & set(found.tolist())) / len(wanted) if wanted else 1.0)
    return float(np.mean(shares))


def bm25s_peer(documents: int, args, reference: np.ndarray) -> dict:
    import bm25s
    import Stemmer

    corpus, _ = synthetic.cached_texts(args.cache, documents, args.queries)
    _, texts, sources = load_queries("bm25", args.cache, documents, args.queries)
    stemmer = Stemmer.Stemmer("porter")
    started = time.perf_counter()
    with corpus.open(encoding="utf-8") as handle:
        docs = [json.loads(line)["text"] for line in handle]
    tokens = bm25s.tokenize(docs, stopwords="en", stemmer=stemmer, show_progress=False)
    del docs
    retriever = bm25s.BM25(k1=0.9, b=0.4)
    retriever.index(tokens, show_progress=False)
    build_s = time.perf_counter() - started
    del tokens
    parts = [texts[i : i + args.batch_size] for i in range(0, len(texts), args.batch_size)]

    def search(part):
        query_tokens = bm25s.tokenize(part, stopwords="en", stemmer=stemmer, show_progress=False)
        return retriever.retrieve(query_tokens, k=K, show_progress=False, n_threads=1)[0]

    speed, found = latency_and_qps(search, lambda ps: [search(p) for p in ps], parts, len(texts))
    top = np.concatenate(found)  # corpus row i is document d<i>
    return {
        "build_s": build_s,
        **speed,
        "recall": recall_at_k(top, reference),
        "source_at_10": float(np.mean([s in set(r) for s, r in zip(sources, top)])),
        "build_mib": peak_rss_mib(),
        "search_mib": peak_rss_mib(),
    }


# ------------------------------------------------------------------------------ the parent run
def child(args, *extra: str) -> list[dict]:
    """Run this script in a fresh Python for one measurement; it prints its rows as JSON."""
    command = [sys.executable, __file__, "--cache", str(args.cache), "--queries", str(args.queries)]
    command += ["--batch-size", str(args.batch_size), *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000, 1000000])
    parser.add_argument("--kinds", nargs="+", default=["bm25", "dense", "sparse"], choices=sorted(MODELS))
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rayir-scale"))
    parser.add_argument("--model", default=None, help="dense seed model (default: all-MiniLM-L6-v2)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--force", action="store_true", help="measure again what scale-results.json holds")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown (for the README)")
    parser.add_argument("--child", nargs=3, metavar=("WHAT", "KIND", "DOCS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    if args.child:
        what, kind, documents = args.child[0], args.child[1], int(args.child[2])
        result = (
            run_rayir(kind, documents, args.shards, args)
            if what == "rayir"
            else [run_peer(kind, documents, what, args)]
        )
        print(json.dumps(result))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    results_file = args.cache / "scale-results.json"
    saved = json.loads(results_file.read_text()) if results_file.exists() else []
    for kind in args.kinds:
        for documents in args.sizes:
            systems = ["rayir"] + ([] if args.no_peers else PEERS[kind])
            for system in systems:
                key = (kind, documents, system)
                if any((r["kind"], r["documents"], r["system"]) == key for r in saved) and not args.force:
                    continue
                if system == "rayir":
                    import ray

                    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
                    prepare(kind, documents, args.queries, args.cache, args.model)
                    ray.shutdown()
                    extra = ["--shards", *map(str, args.shards)]
                else:
                    extra = []
                rows = child(args, *extra, "--child", system, kind, str(documents))
                saved = [r for r in saved if (r["kind"], r["documents"], r["system"]) != key] + rows
                results_file.write_text(json.dumps(saved, indent=1))
    wanted = [r for r in saved if r["kind"] in args.kinds and r["documents"] in args.sizes]
    print_tables(wanted, PEERS, args.markdown)
    if args.plot:
        plot(wanted, args.plot)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
