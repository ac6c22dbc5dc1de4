"""Driver memory at scale: peak RSS of the driver process while it encodes a growing BM25 corpus
and while it batch-searches growing query sets, each in a fresh process on the same local Ray.

The claim under test: the driver stages and counts, it does not hold the corpus, the queries or the
run. So its peak RSS should barely move from the smallest to the largest size (the issue's target:
< 1.2x from 10k to 1M queries). The peer column is the interactive ``Searcher.search`` path (the
driver reads every query, encodes them all in its own process and holds the whole run), measured
on the same index and query sets in the same run.

Data: texts from ``synthetic.py`` (documents resampled from the real sentences of SciFact and
Vaswani; queries are spans of documents). Generated into ``--cache`` (never the repo).

    python benchmarks/driver_memory.py --docs 100000 --queries 10000 100000 --cache /tmp/rayir-scale

``--rare-queries`` makes each query the 3 rarest words of a document, so that 1M queries against a
1M-document index finish in minutes on two cores; the driver's work per query does not depend on
how long the posting lists are.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

from synthetic import write_corpus, write_queries


def measure(code: str) -> dict:
    """Run ``code`` in a fresh Python; it prints one JSON line; add the process's peak RSS (MiB)."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report this parent's peak.
    wrapped = code + "\nprint('RSS', [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    done = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    rss = [line for line in done.stdout.splitlines() if line.startswith("RSS ")][-1]
    return {"peak_rss_mib": int(rss.split()[1]) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--queries", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rayir-scale"))
    parser.add_argument(
        "--peer-queries", type=int, nargs="*", default=[1000, 10000], help="query set sizes for the Searcher peer"
    )
    parser.add_argument(
        "--rare-queries",
        action="store_true",
        help="queries of a document's 3 rarest words (short posting lists: 1M queries in minutes)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    init = "import ray; ray.init(num_cpus=2, include_dashboard=False, logging_level='ERROR')\n"
    for documents in args.docs:
        corpus = args.cache / f"corpus-{documents}.jsonl"
        if not corpus.exists():
            write_corpus(corpus, documents)
        out = args.cache / f"bm25-{documents}"
        code = (
            init
            + "from rayir.cli.stages import index\n"
            + f"index(corpus={str(corpus)!r}, output={str(out)!r}, model='bm25', overwrite=True, num_shards=2,"
            + " encoding=__import__('rayir.options', fromlist=['x'])"
            + f".EncodingOptions(docs_per_shard={max(1024, min(16384, documents // 16))}))"
        )
        rows.append({"what": "BM25 encode + index", "documents": documents, "queries": 0, **measure(code)})
        logging.warning("%s", rows[-1])
    index_dir = args.cache / f"bm25-{args.docs[-1]}" / "index"
    corpus = args.cache / f"corpus-{args.docs[-1]}.jsonl"
    for queries in args.queries:
        query_file = args.cache / f"queries-{'rare-' if args.rare_queries else ''}{queries}.jsonl"
        if not query_file.exists():
            write_queries(corpus, query_file, queries, rare=args.rare_queries)
        code = (
            init
            + "from rayir.serve.batch_search import search_to_file\n"
            + f"search_to_file({str(index_dir)!r}, {str(query_file)!r}, {str(args.cache / 'run.trec')!r}, k=100)"
        )
        rows.append(
            {"what": "batch search (search stage)", "documents": args.docs[-1], "queries": queries, **measure(code)}
        )
        logging.warning("%s", rows[-1])
        if queries in args.peer_queries:
            code = (
                init
                + "from rayir.data import read_queries\nfrom rayir.serve.coordinator import Searcher\n"
                + f"s = Searcher({str(index_dir)!r})\nrun = s.search(list(read_queries({str(query_file)!r})), k=100)\n"
            )
            rows.append(
                {
                    "what": "Searcher.search (peer: driver holds all)",
                    "documents": args.docs[-1],
                    "queries": queries,
                    **measure(code),
                }
            )
            logging.warning("%s", rows[-1])
    print(f"{'what':42} {'documents':>10} {'queries':>9} {'driver peak RSS MiB':>20} {'x smallest':>10}")
    for row in rows:
        same = [r for r in rows if r["what"] == row["what"]]
        print(
            f"{row['what']:42} {row['documents']:>10} {row['queries']:>9} {row['peak_rss_mib']:>20.0f}"
            f" {row['peak_rss_mib'] / same[0]['peak_rss_mib']:>10.2f}"
        )


if __name__ == "__main__":
    main()
