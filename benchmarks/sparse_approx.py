"""Approximate sparse search side by side with Seismic (``pyseismic-lsr``), same vectors, 1 search thread each.

Rows: rayir's exact inverted index (the reference top-10 and the exhaustive kernel's speed),
rayir's pruned index (``factory="pruned,postings=N"``) at several ``query_terms`` / ``heap_factor``
(0: bounded, the shard-invariant default; above 0: the estimated search),
and Seismic at several ``query_cut`` / ``heap_factor`` (its index built with its documented defaults
and ``n_postings`` as given). Per row: build seconds (both use both cores), index size on disk,
recall@10 against the exact top-10, nDCG@10 where qrels exist, queries per second (batches of 64
queries, one thread, the fastest of ``--repeat`` runs; Seismic searched in this process with
RAYON_NUM_THREADS=1, its index built in a child process on 2 threads). Every index is built and
loaded first; then every setting of every system is timed once per round, ``--repeat`` rounds in a
new shuffled order each, so a machine whose speed drifts during the run (this one's does, by up to
2x) slows all systems alike. The summary prints each system's best QPS at recall@10 >= 0.95 and
rayir's over Seismic's; ``--plot`` draws the recall-QPS curves.

    python benchmarks/sparse_approx.py --collection scifact --plot benchmarks/figures/sparse-scifact.png
    python benchmarks/sparse_approx.py --collection synthetic --documents 1000000 \\
        --plot benchmarks/figures/sparse-1m.png

``scifact``: SciFact encoded by splade-tiny (``../shared``), its 300 test queries; ``synthetic``:
the splade-tiny-shaped collection of ``benchmarks/scale.py`` (generated into ``--cache`` once) and
its 1,000 queries.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # 1 search thread each; builds ask for 2 themselves
# RAYON_NUM_THREADS: pyseismic's batch_search(num_threads=1) runs on rayon's global pool, which has a
# thread per core unless this says otherwise (measured: its QPS doubled on this 2-core machine). So
# Seismic's index is built in a child process with 2 threads and searched here with 1.

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic  # noqa: E402

from rayir.encode import read_manifest  # noqa: E402
from rayir.encode.formats import sparse_rows  # noqa: E402
from rayir.index import QueryBatch, build_index, load_shard, merge_hits  # noqa: E402
from rayir.index.manifest import read_index_manifest  # noqa: E402

logger = logging.getLogger("sparse_approx")
K = 10
BATCH = 64


def size_of(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def load_collection(args) -> tuple[Path, QueryBatch, list[str] | None, dict | None]:
    """The embeddings directory, the queries, and for SciFact the test query ids and qrels."""
    if args.collection == "scifact":
        from rayir.data import read_qrels, read_queries

        _, _, seed_queries = synthetic.real_encodings("sparse", str(synthetic.SPLADE_TINY), args.cache)
        test = list(read_queries(synthetic.SCIFACT, split="test"))
        first = len(list(read_queries(synthetic.SCIFACT, split="train")))
        lo, hi = int(seed_queries.indptr[first]), int(seed_queries.indptr[first + len(test)])
        batch = QueryBatch(
            indptr=seed_queries.indptr[first : first + len(test) + 1] - lo,
            terms=seed_queries.terms[lo:hi],
            weights=seed_queries.weights[lo:hi].astype(np.float32),
        )
        qrels = read_qrels(synthetic.SCIFACT, split="test")
        return args.cache / "seed-sparse", batch, [q.query_id for q in test], qrels
    import scale

    scale.prepare("sparse", args.documents, args.queries, args.cache, None)
    batch, _, _ = scale.load_queries("sparse", args.cache, args.documents, args.queries)
    return scale.embeddings_dir(args.cache, "sparse", args.documents), batch, None, None


def doc_ids_of(embeddings: Path) -> list[str]:
    manifest = read_manifest(embeddings)
    return [
        i
        for s in manifest["shards"]
        for i in pq.read_table(embeddings / s["file"], columns=["doc_id"]).column(0).to_pylist()
    ]


def ndcg(ranked: list[list[str]], query_ids: list[str] | None, qrels) -> float | None:
    if qrels is None:
        return None
    from rayir.evaluate import evaluate

    run = {qid: {doc: float(K - r) for r, doc in enumerate(docs)} for qid, docs in zip(query_ids, ranked)}
    return evaluate(run, qrels, ["nDCG@10"]).mean["nDCG@10"]


def timed_rounds(searches: list[Callable[[], Any]], repeat: int, seed: int = 0) -> list[float]:
    """The fastest of ``repeat`` runs of each search, timed in rounds: each round runs every search
    once, in a new shuffled order, so that drift in the machine's speed reaches every search alike."""
    best = [float("inf")] * len(searches)
    order = list(range(len(searches)))
    shuffle = random.Random(seed)
    for _ in range(repeat):
        shuffle.shuffle(order)
        for i in order:
            started = time.perf_counter()
            searches[i]()
            best[i] = min(best[i], time.perf_counter() - started)
    return best


def rayir_searcher(shards: list, queries: QueryBatch) -> Callable[[], list[list[int]]]:
    """A search of all queries over loaded shards (batches of ``BATCH``, hits merged) that returns
    the ranked ordinals (= rows of the doc-id-sorted table)."""
    parts = [queries.rows(s, s + BATCH) for s in range(0, len(queries), BATCH)]

    def search() -> list[list[int]]:
        found = [merge_hits([s.search(part, K) for s in shards], K) for part in parts]
        return [row[: int(n)].tolist() for hits in found for row, n in zip(hits.ordinals, hits.counts)]

    return search


def load_shards(index_dir: Path) -> list:
    """Every shard of an index, loaded with its default options."""
    return [load_shard(index_dir / s["dir"]) for s in read_index_manifest(index_dir)["shards"]]


def build_seismic(embeddings: Path, postings: int, target: Path) -> None:
    """Seismic's index of the embeddings (doc ids = embedding rows), built with its defaults and
    ``n_postings`` on 2 threads and saved to ``target``; the build seconds go to ``target.json``.
    Runs in a child process (see RAYON_NUM_THREADS above)."""
    import seismic

    manifest = read_manifest(embeddings)
    dataset = seismic.SeismicDataset(manifest["dim"])
    added = 0
    for shard in manifest["shards"]:
        indptr, terms, weights = sparse_rows(pq.read_table(embeddings / shard["file"]))
        documents = len(indptr) - 1
        dataset.add_documents_by_id([str(added + i) for i in range(documents)], terms.astype(np.int64), weights, indptr)
        added += documents
    started = time.perf_counter()
    index = seismic.SeismicIndex.build_from_dataset(dataset, n_postings=postings, num_threads=2)
    Path(f"{target}.json").write_text(json.dumps({"build_s": time.perf_counter() - started}))
    index.save(str(target))


def seismic_searches(embeddings: Path, queries: QueryBatch, args, row_of: np.ndarray, scratch: Path) -> list[dict]:
    """Seismic built on the same vectors (in a child process, 2 threads) and loaded here: one row
    per setting of the grid, each with its search (1 thread) under ``search``."""
    import seismic

    target = scratch / "seismic"
    command = [sys.executable, __file__, "--seismic-build", str(embeddings), str(target), str(args.seismic_postings)]
    subprocess.run(command, check=True, env={**os.environ, "RAYON_NUM_THREADS": "2"})
    build = json.loads(Path(f"{target}.json").read_text())["build_s"]
    size = Path(f"{target}.index.seismic").stat().st_size / 2**20
    index = seismic.SeismicIndex.load(f"{target}.index.seismic")
    string = seismic.get_seismic_string()
    ids = np.array([str(i) for i in range(len(queries))], dtype=string)
    components = [
        np.array([str(t) for t in queries.terms[queries.indptr[r] : queries.indptr[r + 1]]], dtype=string)
        for r in range(len(queries))
    ]
    values = [
        queries.weights[queries.indptr[r] : queries.indptr[r + 1]].astype(np.float32) for r in range(len(queries))
    ]

    def searcher(query_cut: int, heap_factor: float) -> Callable[[], list[list[int]]]:
        def search() -> list[list[int]]:
            found = index.batch_search(
                ids, components, values, k=K, query_cut=query_cut, heap_factor=heap_factor, num_threads=1
            )
            ranked = [[] for _ in range(len(queries))]
            for hits in found:  # lists may come in any order: each names its query
                if hits:
                    ranked[int(hits[0][0])] = [row_of[int(doc)] for _, _, doc in hits][:K]
            return ranked

        return search

    rows = []
    for query_cut in args.seismic_query_cut:
        for heap_factor in args.seismic_heap_factor:
            rows.append(
                {
                    "system": "seismic",
                    "setting": f"query_cut {query_cut}, heap_factor {heap_factor}",
                    "build_s": build,
                    "size_mib": size,
                    "search": searcher(query_cut, heap_factor),
                }
            )
            build = size = None
    return rows


def main() -> None:
    if sys.argv[1:2] == ["--seismic-build"]:
        embeddings, target, postings = sys.argv[2:5]
        build_seismic(Path(embeddings), int(postings), Path(target))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", choices=["scifact", "synthetic"], default="scifact")
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rayir-scale"))
    parser.add_argument("--postings", type=int, nargs="+", default=[4000])
    parser.add_argument("--query-terms", type=int, nargs="+", default=[3, 5, 10, 20])
    parser.add_argument("--heap-factor", type=float, nargs="+", default=[0.0, 1.0, 0.8, 0.6])
    parser.add_argument("--seismic-postings", type=int, default=3500)
    parser.add_argument("--seismic-query-cut", type=int, nargs="+", default=[3, 5, 10, 20])
    parser.add_argument("--seismic-heap-factor", type=float, nargs="+", default=[0.6, 0.8, 1.0])
    parser.add_argument("--repeat", type=int, default=3, help="searches per setting; the fastest counts")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    embeddings, queries, query_ids, qrels = load_collection(args)
    ids = doc_ids_of(embeddings)
    order = sorted(range(len(ids)), key=ids.__getitem__)  # ordinal -> embedding row
    row_of = np.empty(len(ids), np.int64)
    row_of[order] = np.arange(len(ids))  # embedding row -> ordinal
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="sparse-approx-"))
    try:
        started = time.perf_counter()
        build_index(embeddings, work / "exact", factory="inverted", threads_per_shard=2, in_process=True)
        rows.append(
            {
                "system": "rayir exact",
                "setting": "inverted",
                "build_s": time.perf_counter() - started,
                "size_mib": size_of(work / "exact") / 2**20,
                "search": rayir_searcher(load_shards(work / "exact"), queries),
            }
        )
        for postings in args.postings:
            started = time.perf_counter()
            factory, target = f"pruned,postings={postings}", work / f"pruned-{postings}"
            build_index(embeddings, target, factory=factory, threads_per_shard=2, in_process=True)
            build, size = time.perf_counter() - started, size_of(target) / 2**20
            shards = load_shards(target)
            settings = [(t, h) for t in args.query_terms for h in args.heap_factor] + [(None, None)]
            for query_terms, heap_factor in settings:
                searched = shards if query_terms is None else [s.with_options(query_terms, heap_factor) for s in shards]
                label = "defaults" if query_terms is None else f"query_terms {query_terms}, heap_factor {heap_factor}"
                rows.append(
                    {
                        "system": "rayir pruned",
                        "setting": f"postings {postings}, {label}",
                        "build_s": build,
                        "size_mib": size,
                        "search": rayir_searcher(searched, queries),
                    }
                )
                build = size = None
        rows += seismic_searches(embeddings, queries, args, row_of, work)
        for row in rows:  # compiles and warms up; every search returns the same ranking each time
            row["ranked"] = row["search"]()
        reference = rows[0]["ranked"]
        for row, seconds in zip(rows, timed_rounds([row.pop("search") for row in rows], args.repeat)):
            row["qps"] = len(queries) / seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        row["recall"] = float(
            np.mean([len(set(a) & set(b)) / max(len(b), 1) for a, b in zip(row["ranked"], reference)])
        )
        row["ndcg"] = ndcg([[ids[order[o]] for o in r] for r in row.pop("ranked")], query_ids, qrels)
    report(rows, args)


def best_at(rows: list[dict], system: str, recall: float) -> dict | None:
    eligible = [r for r in rows if r["system"] == system and r["recall"] >= recall]
    return max(eligible, key=lambda r: r["qps"], default=None)


def report(rows: list[dict], args) -> None:
    exact_qps = rows[0]["qps"]
    name = (
        "SciFact (splade-tiny)" if args.collection == "scifact" else f"synthetic splade-tiny, {args.documents:,} docs"
    )
    print(f"\n{name}: {len(rows)} rows, k={K}, 1 search thread\n")
    print("| system | setting | build s | size MiB | recall@10 | nDCG@10 | QPS | x exact |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        build = "" if r["build_s"] is None else f"{r['build_s']:.1f}"
        size = "" if r["size_mib"] is None else f"{r['size_mib']:,.0f}"
        ndcg_ = "" if r["ndcg"] is None else f"{r['ndcg']:.4f}"
        print(
            f"| {r['system']} | {r['setting']} | {build} | {size} | {r['recall']:.3f} | {ndcg_} | "
            f"{r['qps']:,.1f} | {r['qps'] / exact_qps:.2f}x |"
        )
    print()
    for level in (0.95, 0.99):
        ours, theirs = best_at(rows, "rayir pruned", level), best_at(rows, "seismic", level)
        if ours and theirs:
            print(
                f"recall@10 >= {level}: rayir {ours['qps']:,.1f} QPS ({ours['setting']}) vs Seismic "
                f"{theirs['qps']:,.1f} ({theirs['setting']}): {ours['qps'] / theirs['qps']:.2f}x"
            )
        else:
            missing = [n for n, r in (("rayir", ours), ("Seismic", theirs)) if r is None]
            print(f"recall@10 >= {level}: no setting of {' or '.join(missing)} reaches it")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.plot:
        plot(rows, args.plot, name)


def plot(rows: list[dict], path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for system, style in (("rayir pruned", "o-"), ("seismic", "s--")):
        points = sorted((r["recall"], r["qps"]) for r in rows if r["system"] == system)
        frontier = [p for p in points if not any(q[0] >= p[0] and q[1] > p[1] for q in points)]
        axis.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            style[0],
            alpha=0.3,
            color="C0" if system == "seismic" else "C1",
        )
        axis.plot(
            [p[0] for p in frontier],
            [p[1] for p in frontier],
            style,
            label=system,
            color="C0" if system == "seismic" else "C1",
        )
    axis.axhline(rows[0]["qps"], color="grey", linestyle=":", label="rayir exact")
    axis.set_xlabel("recall@10 against exact")
    axis.set_ylabel("queries / second (1 thread)")
    axis.set_yscale("log")
    axis.set_title(name)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
