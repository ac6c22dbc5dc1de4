"""Re-ranking throughput: rayir's re-rank job against sentence-transformers ``CrossEncoder.predict``
on the same (query, document) pairs, with this machine's matmul peak and model-FLOPs utilisation.

The cross-encoder is MiniLM (all-MiniLM-L6-v2's backbone) with a sequence-classification head
(fresh, seeded: speed and score equality do not need a trained head), saved once so that both
sides load the same directory. Pairs: each test query's BM25 top ``--depth`` on SciFact.

    python benchmarks/rerank.py --corpus data/scifact --queries 20 --depth 100

Rows per max length: the peer; rayir's job on Ray in float32 and bfloat16, end to end (staging,
scorer actor start, model load, join, scoring: all but Ray's own start, timed once and printed
apart) and its scorers alone (``scoring_pairs_per_second``: pairs over the scorer's busy time).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from encode import cpu_flags, matmul_peak  # noqa: E402 - the same peak measurement as the encode benchmark

from rayir import rerank  # noqa: E402
from rayir.cli.stages import index, search  # noqa: E402
from rayir.data import read_docs, read_queries, read_run  # noqa: E402
from rayir.ray_runtime import ensure_ray  # noqa: E402
from rayir.resources import default_model_path  # noqa: E402


def cross_encoder_dir(target: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(default_model_path(), num_labels=1)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(target)
    return target


def pair_flops(tokenizer, config, pairs: list[tuple[str, str]], max_length: int) -> float:
    """Model FLOPs of each pair's real tokens (truncated longest-first, no padding): per layer
    8nH^2 + 4n^2H + 4nHI, as for encoding."""
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    encoded = tokenizer([q for q, _ in pairs], [d for _, d in pairs], truncation="longest_first", max_length=max_length)
    return sum(
        layers * (8 * n * hidden**2 + 4 * n**2 * hidden + 4 * n * hidden * inner)
        for n in (len(ids) for ids in encoded["input_ids"])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="data/scifact")
    parser.add_argument("--queries", type=int, default=30, help="test queries re-ranked (their BM25 top depth)")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--max-lengths", type=int, nargs="+", default=[192, 256])
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    cpus = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="rayir-rerank-bench-"))
    model = cross_encoder_dir(work / "cross-encoder")
    queries = list(read_queries(args.corpus, split="test"))[: args.queries]
    (work / "queries.tsv").write_text("".join(f"{q.query_id}\t{q.text}\n" for q in queries))
    index(args.corpus, str(work / "bm25"), "bm25", in_process=True)
    run_file = work / "bm25.run"
    search(str(work / "bm25" / "index"), str(work / "queries.tsv"), str(run_file), k=args.depth, in_process=True)
    first = read_run(run_file)
    texts = {d.doc_id: d.text for d in read_docs(args.corpus)}
    query_text = {q.query_id: q.text for q in queries}
    pairs_ids = [(q, d) for q in sorted(first) for d in first[q]]
    pairs = [(query_text[q], texts[d]) for q, d in pairs_ids]

    from sentence_transformers import CrossEncoder
    from transformers import AutoConfig, AutoTokenizer

    peaks = {"float32": matmul_peak(torch.float32, cpus), "bfloat16": matmul_peak(torch.bfloat16, cpus)}
    tokenizer, config = AutoTokenizer.from_pretrained(model), AutoConfig.from_pretrained(model)
    started = time.perf_counter()
    ensure_ray()
    ray_start = time.perf_counter() - started
    rows = []
    for max_length in args.max_lengths:
        flops = pair_flops(tokenizer, config, pairs, max_length)
        torch.set_num_threads(cpus)
        peer = CrossEncoder(str(model), device="cpu", max_length=max_length)
        started = time.perf_counter()
        theirs = peer.predict(pairs, batch_size=args.batch_size, activation_fn=torch.nn.Identity())
        peer_seconds = time.perf_counter() - started
        peer_name = "sentence-transformers CrossEncoder.predict"
        rows.append((max_length, peer_name, "float32", len(pairs) / peer_seconds, flops))
        for precision in ("float32", "bfloat16"):
            started = time.perf_counter()
            ours = rerank(
                str(model),
                first,
                work / "queries.tsv",
                args.corpus,
                depth=args.depth,
                kind="cross",
                model_config={"max_length": max_length},
                precision=precision,
                batch_size=args.batch_size,
            )
            seconds = time.perf_counter() - started
            rows.append((max_length, "rayir re-rank job on Ray, end to end", precision, len(pairs) / seconds, flops))
            rows.append((max_length, "rayir scorer, excl. start-up", precision, ours.scoring_pairs_per_second, flops))
            if precision == "float32":
                diff = max(abs(ours[q][d] - float(s)) for (q, d), s in zip(pairs_ids, theirs))
                print(f"max length {max_length}: float32 scores differ from the peer's by at most {diff:.2e}")
        del peer

    print(f"\n{len(pairs)} pairs ({len(queries)} SciFact test queries x BM25 top {args.depth}), {cpus} CPUs")
    print(f"machine: {cpu_flags()}")
    fp32, bf16 = peaks["float32"] / 1e9, peaks["bfloat16"] / 1e9
    print(f"matmul peak: float32 {fp32:,.0f} GFLOP/s, bfloat16 {bf16:,.0f} GFLOP/s")
    print(f"{'max len':>7}  {'pipeline':<44} {'precision':<9} {'pairs/s':>8} {'vs ST':>6} {'MFU':>6}")
    baseline = {}
    for max_length, name, precision, rate, flops in rows:
        baseline.setdefault(max_length, rate)
        mfu = rate * flops / len(pairs) / peaks[precision]
        ratio = rate / baseline[max_length]
        print(f"{max_length:>7}  {name:<44} {precision:<9} {rate:>8.1f} {ratio:>5.2f}x {mfu:>6.2f}")
    print("End to end = the whole rerank call (corpus staging, scorer actor start, model load, join, scoring), not")
    print(f"Ray's own start ({ray_start:.1f} s here, once per job). 'Excl. start-up' = pairs / the scorer's busy time")
    print("(batches in to scores out). sentence-transformers' time is predict() alone (model already loaded).")
    print("MFU = model FLOPs of the real")
    print(f"tokens per second / the matmul peak at that precision ({cpus} threads).")


if __name__ == "__main__":
    main()
