"""Multi-vector indexes side by side with colbert-ai's PLAID, on the same token vectors, 1 search thread each.

Rows: exact MaxSim over every document (the reference), rayir's multi-vector index (a Faiss token
index for candidates + exact MaxSim), rayir's compressed index (``factory="compressed,bits=b"``) at
several ``nprobe`` / ``ndocs``, and colbert-ai's PLAID at its own k-dependent defaults, for 2 and
4 bits. Per row: build seconds, size, bytes per token (all files; only the arrays that grow with
the tokens), recall@10 against exact MaxSim, nDCG@10
(the split's qrels), queries per second, and rayir's QPS over PLAID's best QPS at an nDCG@10 no
lower than rayir's minus 0.005. Builds use every CPU (both sides); searches one thread, one query
at a time.

    python benchmarks/multivector.py --embeddings <encode_corpus dir of a multi-vector model> \\
        --corpus ../shared/data/scifact --colbert-python /tmp/colbert-venv/bin/python

(``benchmarks/plaid_peer.py`` says how to make the colbert-ai environment.)
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_name] = "1"  # 1 thread each: set before numpy, torch and Faiss load

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from rayir import BiEncoderModule  # noqa: E402
from rayir.data import read_qrels, read_queries  # noqa: E402
from rayir.encode import read_manifest  # noqa: E402
from rayir.encode.formats import token_matrix  # noqa: E402
from rayir.evaluate import evaluate  # noqa: E402
from rayir.index import QueryBatch, build_index, load_shard, merge_hits  # noqa: E402
from rayir.index.manifest import read_doc_table  # noqa: E402

logger = logging.getLogger("multivector")
K = 100
# Files that grow with the token count (the rest: centroids, ids, offsets per document).
TOKEN_ARRAYS = {"codes.npy", "residuals.npy", "ivf_docs.npy", "tokens.npy", "index.faiss"}


def size_of(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def collection_tokens(embeddings: Path, manifest: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Doc ids, all token vectors (normalised as the index stores them) and tokens per document."""
    ids, parts, counts = [], [], []
    for shard in manifest["shards"]:
        table = pq.read_table(embeddings / shard["file"])
        tokens, per_doc = token_matrix(table)
        ids += table.column("doc_id").to_pylist()
        parts.append(tokens)
        counts.append(per_doc)
    tokens = np.concatenate(parts)
    if manifest["model_config"].get("similarity") == "cosine":
        tokens /= np.maximum(np.linalg.norm(tokens, axis=1, keepdims=True), 1e-12)
    return ids, tokens, np.concatenate(counts)


def exact_maxsim(tokens: np.ndarray, counts: np.ndarray, batch: QueryBatch, k: int) -> list[list[int]]:
    """Top-k document numbers by MaxSim over every document (ties by number), the reference."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)  # the reference only: not timed
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    matrix = torch.from_numpy(tokens)
    top = []
    for vectors, mask in zip(batch.vectors, batch.mask):
        sims = (torch.from_numpy(vectors[mask]) @ matrix.T).numpy()  # (Lq, T)
        scores = np.maximum.reduceat(sims, starts, axis=1).sum(axis=0)
        top.append(np.lexsort((np.arange(len(scores)), -scores))[:k].tolist())
    torch.set_num_threads(1)
    return top


def measure(
    name: str, setting: str, top: list[list[str]], seconds: float, exact: list[list[str]], queries, qrels
) -> dict:
    recall = float(np.mean([len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(top, exact)]))
    run = {q.query_id: {d: float(K - r) for r, d in enumerate(ids)} for q, ids in zip(queries, top)}
    ndcg = evaluate(run, qrels, ["nDCG@10"]).mean["nDCG@10"]
    return {"index": name, "setting": setting, "recall": recall, "ndcg": ndcg, "qps": len(top) / seconds}


def rayir_rows(
    name: str, index_dir: Path, manifest: dict, batch: QueryBatch, settings: list[dict], exact, queries, qrels, build_s
):
    rows = []
    table = read_doc_table(index_dir)
    for options in settings:
        shards = [load_shard(index_dir / s["dir"], **options) for s in manifest["shards"]]
        merge_hits([s.search(batch.rows(0, 1), K) for s in shards], K)  # warm-up: numba compiles once
        started = time.perf_counter()
        hits = [merge_hits([s.search(batch.rows(i, i + 1), K) for s in shards], K) for i in range(len(batch))]
        seconds = time.perf_counter() - started
        top = [[table[int(o)].as_py() for o in h.ordinals[0, : h.counts[0]]] for h in hits]
        setting = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
        rows.append(
            {
                **measure(name, setting, top, seconds, exact, queries, qrels),
                "build_s": build_s,
                "bytes": size_of(index_dir),
                "token_bytes": sum(f.stat().st_size for f in index_dir.rglob("*") if f.name in TOKEN_ARRAYS),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", required=True, type=Path)
    parser.add_argument("--corpus", default="../shared/data/scifact")
    parser.add_argument("--split", default="test")
    parser.add_argument("--colbert-python", help="python of an environment with colbert-ai (the PLAID peer)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--queries", type=int, default=None, help="only the first N queries")
    parser.add_argument("--quick", action="store_true", help="rayir's compressed 2-bit index at its defaults only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = args.work or Path(tempfile.mkdtemp(prefix="rayir-mv-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(args.embeddings)
    queries = list(read_queries(args.corpus, split=args.split))[: args.queries]
    qrels = read_qrels(args.corpus, args.split)
    module = BiEncoderModule(manifest["settings"]["model"], **manifest["settings"]["config_overrides"])
    encoded = module.encode_queries([q.text for q in queries])
    batch = QueryBatch.from_dense(encoded.vectors.numpy(), "multi_vector", encoded.mask.numpy())
    ids, tokens, counts = collection_tokens(args.embeddings, manifest)
    logger.info(
        "%d documents, %d token vectors of %d dimensions, %d queries",
        len(ids),
        len(tokens),
        tokens.shape[1],
        len(queries),
    )

    started = time.perf_counter()
    exact = [[ids[d] for d in row] for row in exact_maxsim(tokens, counts, batch, K)]
    rows = [
        {
            **measure("exact MaxSim (all documents)", "-", exact, time.perf_counter() - started, exact, queries, qrels),
            "qps": float("nan"),
            "build_s": 0.0,
            "bytes": tokens.nbytes,
        }
    ]

    builds = [] if args.quick else [("rayir multi-vector (Faiss Flat tokens)", "Flat", [{"candidates_per_token": 64}])]
    for bits in (2,) if args.quick else (2, 4):
        settings = [{}, {"ndocs": 32}, {"nprobe": 1, "ndocs": 64}, {"ndocs": 64}, {"nprobe": 4, "ndocs": 1024}]
        settings = settings[:1] if args.quick else settings
        builds.append((f"rayir compressed {bits}-bit", f"compressed,bits={bits}", settings))
    for name, factory, settings in builds:
        target = work / factory.replace(",", "_").replace("=", "")
        started = time.perf_counter()
        index_manifest = build_index(
            args.embeddings, target, factory=factory, in_process=True, overwrite=True, threads_per_shard=os.cpu_count()
        )
        build_s = time.perf_counter() - started
        faiss.omp_set_num_threads(1)
        rows += rayir_rows(name, target, index_manifest, batch, settings, exact, queries, qrels, build_s)
        logger.info("%s: built in %.1fs", name, build_s)

    if args.colbert_python:
        np.save(work / "doc_tokens.npy", tokens)
        np.save(work / "doc_lens.npy", counts)
        np.save(work / "queries.npy", batch.vectors * batch.mask[:, :, None])
        for bits in (2, 4):
            peer = Path(__file__).with_name("plaid_peer.py")
            subprocess.run(
                [args.colbert_python, str(peer), str(work), "--nbits", str(bits), "--k", str(K)],
                check=True,
                capture_output=True,
            )
            result = json.loads((work / f"plaid-{bits}.json").read_text())
            for search in result["searches"]:
                top = [[ids[p] for p in row] for row in search["top"]]
                rows.append(
                    {
                        **measure(
                            f"colbert-ai PLAID {bits}-bit",
                            f"ncells:threshold:ndocs={search['setting']}",
                            top,
                            search["seconds"],
                            exact,
                            queries,
                            qrels,
                        ),
                        "build_s": result["build_seconds"],
                        "bytes": result["index_bytes"],
                        "token_bytes": result["token_bytes"],
                    }
                )

    plaid = [r for r in rows if r["index"].startswith("colbert-ai")]
    print(
        f"\nMulti-vector search on {args.corpus} ({args.split}: {len(queries)} queries; {len(ids)} documents, "
        f"{len(tokens)} token vectors of {tokens.shape[1]} dims), 1 thread, top-{K}"
    )
    columns = ("index", "setting", "build s", "MiB", "B/token", "B/token arrays", "R@10 vs exact", "nDCG@10", "QPS")
    print(" | ".join(columns) + " | x PLAID")
    for r in rows:
        peers = [p["qps"] for p in plaid if p["ndcg"] >= r["ndcg"] - 0.005]
        ratio = r["qps"] / max(peers) if peers and not r["index"].startswith(("colbert", "exact")) else float("nan")
        values = (r["index"], r["setting"], f"{r['build_s']:.1f}", f"{r['bytes'] / 2**20:.1f}")
        values += (f"{r['bytes'] / len(tokens):.1f}", f"{r.get('token_bytes', r['bytes']) / len(tokens):.1f}")
        values += (f"{r['recall']:.3f}", f"{r['ndcg']:.4f}", f"{r['qps']:.1f}", f"{ratio:.2f}")
        print(" | ".join(values))
    (work / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
