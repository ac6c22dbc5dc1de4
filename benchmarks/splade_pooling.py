"""SPLADE max pooling: rayir's row-wise ``MaskedTokenMax`` against the plain torch expression it
replaced (``logits.masked_fill(~mask, -inf).max(dim=1).values``), on a real SPLADE checkpoint.

Both run in the same process on the same batch, interleaved (the order alternates each round,
because this machine's speed drifts within minutes); the table prints the best round of each and
the ratio, for inference (``encode_docs``) and for a training step's forward + backward.

    python benchmarks/splade_pooling.py --model models/splade-tiny --corpus data/scifact
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from rayir import BiEncoderModule
from rayir.data import read_docs
from rayir.models import scoring
from rayir.tables import format_table

LOG = logging.getLogger("benchmarks.splade_pooling")


def torch_masked_max(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The expression rayir used before ``MaskedTokenMax`` (the peer)."""
    return logits.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=1).values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a SPLADE (MLM) checkpoint")
    parser.add_argument("--corpus", type=Path, required=True, help="documents to encode (the first --docs)")
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    texts = [doc.text for _, doc in zip(range(args.docs), read_docs(args.corpus))]
    module = BiEncoderModule(str(args.model), doc_max_length=args.max_length, batch_size=args.docs)
    batch = module.tokenizer.docs(texts)

    def infer() -> torch.Tensor:
        with torch.inference_mode():
            return module.model.encode(batch, is_query=False).vectors

    def train_step() -> torch.Tensor:
        vectors = module.model.encode(batch, is_query=False).vectors
        vectors.sum().backward()
        module.model.zero_grad(set_to_none=True)
        return vectors.detach()

    poolers: dict[str, Callable[..., torch.Tensor]] = {
        "rayir MaskedTokenMax": scoring.MaskedTokenMax.apply,
        "torch masked_fill + max": torch_masked_max,
    }
    best: dict[tuple[str, str], float] = {}
    vectors: dict[str, torch.Tensor] = {}
    try:
        for round_ in range(args.rounds):
            order = list(poolers) if round_ % 2 == 0 else list(reversed(poolers))
            for name in order:
                scoring.MaskedTokenMax.apply = poolers[name]
                for phase, step in (("inference", infer), ("forward + backward", train_step)):
                    start = time.perf_counter()
                    vectors[name] = step()
                    rate = len(texts) / (time.perf_counter() - start)
                    best[name, phase] = max(best.get((name, phase), 0.0), rate)
                    LOG.info("round %d %s %s: %.1f docs/s", round_, name, phase, rate)
    finally:
        scoring.MaskedTokenMax.apply = poolers["rayir MaskedTokenMax"]

    rayir_name, peer_name = poolers
    difference = (vectors[rayir_name] - vectors[peer_name]).abs().max().item()
    rows = [
        [
            phase,
            f"{best[rayir_name, phase]:.1f}",
            f"{best[peer_name, phase]:.1f}",
            f"{best[rayir_name, phase] / best[peer_name, phase]:.2f}x",
        ]
        for phase in ("inference", "forward + backward")
    ]
    LOG.info(
        "%s\n%d documents x %d tokens, %d threads, best of %d rounds; max |vector difference| %.2g",
        format_table(["docs/s", rayir_name, peer_name, "ratio"], rows),
        len(texts),
        batch["input_ids"].shape[1],
        args.threads,
        args.rounds,
        difference,
    )


if __name__ == "__main__":
    main()
