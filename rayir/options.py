"""Option groups shared by the Python API and the command line (one definition, one docstring).

A leaf module without torch: the CLI builds its parser from these before any stage runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Precision = Literal["float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {PRECISIONS}")


@dataclass
class EncodingOptions:
    """How documents are encoded on Ray Data (see ``rayir.encode_corpus``).

    Args:
        docs_per_shard: Documents per embedding shard (the unit of work and of resumption).
        batch_size: Texts per forward pass.
        num_encoders: Encoder actors (each loads the model once).
        threads_per_encoder: CPU threads per encoder (default: the cluster's CPUs split evenly,
            at most one node's).
        gpus_per_encoder: GPUs per encoder actor (0 = CPU).
        precision: ``bfloat16`` runs the encoder in bf16 (see :mod:`rayir.models.precision`; vectors are
            stored as float32).
        retries: Re-runs of unfinished shards after a failure within this job.
    """

    docs_per_shard: int = 4096
    batch_size: int = 32
    num_encoders: int = 1
    threads_per_encoder: int | None = None
    gpus_per_encoder: float = 0
    precision: Precision = "float32"
    retries: int = 1
