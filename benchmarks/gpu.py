"""GPU encoding throughput and model-FLOPs utilisation: rayir's Ray Data job against a plain Hugging
Face loop on the same GPU, bf16, for MiniLM (all-MiniLM-L6-v2) and a BERT-base-sized model.

The peer is what a user writes by hand: documents sorted by length, ``AutoModel`` under bf16
autocast, fixed batches, mean pooling, vectors copied back to the host. rayir runs
``encode_corpus(gpus_per_encoder=1, precision="bfloat16")`` (Ray Data actor, token-budget batches,
Parquet shards, manifest). MFU = achieved model FLOPs / the GPU's dense bf16 peak (``--peak-tflops``;
989 for an H100/H200 SXM). Model FLOPs per document: 2 x non-embedding parameters x tokens plus
attention's 4 x layers x tokens^2 x hidden (real, unpadded tokens: padding is not useful work).

The BERT-base-sized model is randomly initialised from a ``BertConfig`` (nothing is downloaded);
throughput does not depend on the weights. One command, a few minutes on an H200:

    python benchmarks/gpu.py --corpus ../shared/data/scifact --docs 20000
    python benchmarks/gpu.py --device cpu --docs 200          # smoke run on a CPU machine
"""

from __future__ import annotations

import argparse
import itertools
import logging
import tempfile
import time
from pathlib import Path

import torch

from rayir.data import read_docs
from rayir.encode import encode_corpus
from rayir.resources import SAMPLE_COLLECTION, default_model_path


def documents(corpus: str | None, count: int) -> list[tuple[str, str]]:
    """``count`` documents cycling through ``corpus`` (default: the bundled sample)."""
    texts = [d.text for d in read_docs(corpus or SAMPLE_COLLECTION)]
    return [(f"d{i}", text) for i, text in zip(range(count), itertools.cycle(texts))]


def bert_base_dir(tokenizer_dir: str, out: Path) -> str:
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(), add_pooling_layer=False).save_pretrained(out)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out)
    return str(out)


def model_flops(model_dir: str, token_counts: list[int]) -> float:
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir)
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    dense = sum(p.numel() for p in model.parameters()) - embedding
    layers, hidden = config.num_hidden_layers, config.hidden_size
    return float(sum(2 * dense * t + 4 * layers * t * t * hidden for t in token_counts))


def hf_loop(model_dir: str, texts: list[str], device: str, batch_size: int, max_length: int) -> float:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).to(device).eval()
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    start = time.perf_counter()
    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16):
        for first in range(0, len(order), batch_size):
            batch = [texts[i] for i in order[first : first + batch_size]]
            inputs = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            inputs = {k: v.to(device) for k, v in inputs.items()}
            hidden = model(**inputs).last_hidden_state
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            (hidden * mask).sum(1).div(mask.sum(1)).float().cpu()
    synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=None, help="documents to cycle through (default: the bundled sample)")
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    docs = documents(args.corpus, args.docs)
    texts = [t for _, t in docs]
    gpus = 1 if args.device.startswith("cuda") else 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.tsv"
        corpus.write_text("".join(f"{i}\t{' '.join(t.split())}\n" for i, t in docs))
        models = {"MiniLM-L6 (22M)": str(default_model_path())}
        models["BERT-base size (110M)"] = bert_base_dir(models["MiniLM-L6 (22M)"], Path(tmp) / "bert-base")
        from transformers import AutoTokenizer

        for name, model_dir in models.items():
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]
            flops = model_flops(model_dir, lengths)
            hf_loop(model_dir, texts[: args.batch_size], args.device, args.batch_size, args.max_length)  # warm-up
            hf_seconds = hf_loop(model_dir, texts, args.device, args.batch_size, args.max_length)
            result = encode_corpus(
                model_dir,
                corpus,
                Path(tmp) / f"out-{len(rows)}",
                docs_per_shard=4096,
                batch_size=args.batch_size,
                gpus_per_encoder=gpus,
                precision="bfloat16",
                model_config={"doc_max_length": args.max_length},
            )
            # Encoder busy time: like the peer's loop, without Ray start-up and model loading.
            rayir_seconds = result.documents / result.encoder_docs_per_second
            rows.append((name, "HF loop (peer)", args.docs / hf_seconds, flops / hf_seconds, 1.0))
            rows.append(
                (name, "rayir encode job", args.docs / rayir_seconds, flops / rayir_seconds, hf_seconds / rayir_seconds)
            )
    print(f"{'model':24} {'system':18} {'docs/s':>10} {'MFU':>7} {'x peer':>7}")
    for name, system, rate, achieved, ratio in rows:
        mfu = achieved / 1e12 / args.peak_tflops
        print(f"{name:24} {system:18} {rate:>10.1f} {mfu:>7.2%} {ratio:>7.2f}")


if __name__ == "__main__":
    main()
