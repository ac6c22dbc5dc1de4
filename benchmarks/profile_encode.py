"""Where an encoder's time goes: one rayir document encoder on one chunk, by operation kind.

Runs the document encoder the index job's workers run (:class:`rayir.encoders.neural.
NeuralDocumentEncoder`, all-MiniLM-L6-v2 at length 256) on the first ``--docs`` SciFact documents
under ``torch.profiler`` and sorts the time into matrix multiplications, attention, layer norms,
activations, other tensor ops, tokenisation, the Arrow table and the Python rest. It also reports
the padding the length-sorted batches leave (padded tokens / real tokens) and, for scale, the same
chunk through sentence-transformers ``encode`` (its wall time only). Float32 and bfloat16.

    python benchmarks/profile_encode.py --corpus data/scifact --docs 512
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections import defaultdict

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from rayir.data import read_docs
from rayir.encoders.neural import NeuralDocumentEncoder
from rayir.representation import EncoderSpec, Runtime
from rayir.resources import default_model_path

# Operation name -> kind; the first matching fragment wins (``aten::linear`` holds its addmm).
KINDS = [
    ("matmul (GEMM)", ("aten::addmm", "aten::mm", "aten::matmul", "mkldnn", "aten::linear")),
    ("attention", ("scaled_dot_product", "attention", "aten::bmm", "aten::baddbmm", "softmax")),
    ("layer norm", ("layer_norm",)),
    ("activation", ("gelu", "tanh", "relu")),
]
TOKENISE = "tokenise"


def kind_of(name: str) -> str:
    for kind, fragments in KINDS:
        if any(f in name for f in fragments):
            return kind
    return "other tensor ops"


def top_level_times(events) -> dict[str, float]:
    """Self-inclusive time of each top-level operator, in seconds, by kind: nested calls (a linear's
    addmm) count once, under their outermost operator."""
    totals: dict[str, float] = defaultdict(float)
    spans = sorted((e for e in events if e.device_type.name == "CPU"), key=lambda e: e.time_range.start)
    end = -1.0
    for event in spans:
        if event.time_range.start < end:  # nested in the previous top-level event
            continue
        end = event.time_range.end
        name = event.name
        if name.startswith("ProfilerStep") or name == "[memory]":
            continue
        totals[TOKENISE if name == TOKENISE else kind_of(name)] += (event.time_range.end - event.time_range.start) / 1e6
    return totals


def attention_rate(dtype: torch.dtype, heads: int, head_dim: int, batch: int = 32, length: int = 256) -> float:
    """GFLOP/s of PyTorch's scaled-dot-product attention (the kernel the encoder calls) at the
    model's shape, to set beside the matmul peak: attention does not get bf16's matmul speed-up
    on every CPU."""
    q, k, v = (torch.randn(batch, heads, length, head_dim).to(dtype) for _ in range(3))
    mask = torch.ones(batch, 1, 1, length, dtype=torch.bool)
    torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    started = time.perf_counter()
    for _ in range(5):
        torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return 4 * batch * heads * length**2 * head_dim * 5 / (time.perf_counter() - started) / 1e9


def padding_ratio(encoder: NeuralDocumentEncoder, texts: list[str]) -> float:
    lengths = np.asarray(encoder.module.tokenizer.doc_lengths(texts))
    _, batches = encoder._batches(texts)
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    return padded / lengths.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="data/scifact")
    parser.add_argument("--docs", type=int, default=512)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()

    threads = os.cpu_count() or 1
    docs = list(itertools.islice(read_docs(args.corpus), args.docs))
    ids, texts = [d.doc_id for d in docs], [d.text for d in docs]
    overrides = {"doc_max_length": args.max_length, "query_max_length": args.max_length}
    rows, unprofiled = [], {}
    for precision in ("float32", "bfloat16"):
        spec = EncoderSpec(str(default_model_path()), overrides, precision)
        encoder = NeuralDocumentEncoder(spec, Runtime(threads=threads, batch_size=32))
        tokenizer = encoder.module.tokenizer
        original = tokenizer.docs

        def timed_docs(batch_texts, original=original):
            with torch.profiler.record_function(TOKENISE):
                return original(batch_texts)

        tokenizer.docs = timed_docs
        encoder.encode_chunk(ids[:32], texts[:32])  # warm-up: oneDNN kernels chosen and packed
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            started = time.perf_counter()
            encoder.encode_chunk(ids, texts)
            wall = time.perf_counter() - started
        totals = top_level_times(prof.events())
        totals["Python, Arrow and the rest"] = max(wall - sum(totals.values()), 0.0)
        rows.append((precision, wall, totals, padding_ratio(encoder, texts)))
        started = time.perf_counter()
        encoder.encode_chunk(ids, texts)  # again without the profiler, to compare with the peer
        unprofiled[precision] = time.perf_counter() - started
    config = encoder.module.model.encoder.config
    heads = config.num_attention_heads
    attention = {p: attention_rate(p, heads, config.hidden_size // heads) for p in (torch.float32, torch.bfloat16)}

    from sentence_transformers import SentenceTransformer

    peer = SentenceTransformer(str(default_model_path()), device="cpu")
    peer.max_seq_length = args.max_length
    torch.set_num_threads(threads)
    peer.encode(texts[:32], batch_size=32)
    started = time.perf_counter()
    peer.encode(texts, batch_size=32)
    peer_wall = time.perf_counter() - started

    kinds = [k for k, _ in KINDS] + ["other tensor ops", TOKENISE, "Python, Arrow and the rest"]
    print(f"\n{len(texts)} SciFact documents, max length {args.max_length}, {threads} threads; one encoder, one chunk")
    print(f"{'where the time goes':<28}" + "".join(f"{p:>20}" for p, *_ in rows))
    for kind in kinds:
        cells = "".join(f"{t.get(kind, 0.0):>12.2f} s {100 * t.get(kind, 0.0) / w:>4.0f}%" for _, w, t, _ in rows)
        print(f"{kind:<28}{cells}")
    print(f"{'wall (encode_chunk)':<28}" + "".join(f"{w:>12.2f} s {100:>4.0f}%" for _, w, _, _ in rows))
    print(f"{'padded / real tokens':<28}" + "".join(f"{r:>20.3f}" for *_, r in rows))
    print(f"{'attention kernel GFLOP/s':<28}" + "".join(f"{attention[p]:>20.0f}" for p in attention))
    print(f"{'wall without the profiler':<28}" + "".join(f"{unprofiled[p]:>12.2f} s {'':>5}" for p, *_ in rows))
    rates = ", ".join(f"{p} {len(texts) / w:.1f} docs/s ({peer_wall / w:.2f}x)" for p, w in unprofiled.items())
    print(f"sentence-transformers encode (float32), same texts: {len(texts) / peer_wall:.1f} docs/s; rayir {rates}")
    print("Times are top-level operators (a linear's inner addmm counts once, as matmul); 'tokenise' is the")
    print("tokenizer call per mini-batch; the rest is the wall time outside profiled operators.")


if __name__ == "__main__":
    main()
