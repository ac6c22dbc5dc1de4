"""Option groups shared by the Python API and the command line (one definition, one docstring).

A leaf module without torch: the CLI builds its parser from these before any stage runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .errors import ConfigError

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


@dataclass
class ServingOptions:
    """How index shards are served (see ``rayir.Searcher``).

    Args:
        shard_options: Backend search options (``nprobe``, ``ef_search``, ``candidates_per_token``,
            ``ndocs``; pruned sparse: ``query_terms``, ``heap_factor``).
        cpus_per_shard: CPUs reserved per shard actor (0: no reservation, so any number of shards
            fits a small machine).
        threads_per_shard: Faiss / torch threads per shard worker (default: the libraries' own).
        shard_resources: Custom Ray resources per shard actor, e.g. ``{index_shard: 1}`` to place
            shards on the memory-heavy nodes of ``cluster/`` that advertise it.
        device: Device for the query encoder.
        max_retries: Re-sends of a batch to a failed shard (and Ray restarts per shard actor).
        verify: Check every index file against the manifest's checksums when it loads (one
            streaming SHA-256 pass per file, on each shard's node); off only for trusted storage.
    """

    shard_options: dict[str, Any] | None = None
    cpus_per_shard: float = 0
    threads_per_shard: int | None = None
    shard_resources: dict[str, float] | None = None
    device: str = "cpu"
    max_retries: int = 3
    verify: bool = True


@dataclass
class ScoringOptions:
    """How re-rank scorers run (see ``rayir.rerank``).

    Args:
        batch_size: Pairs per forward pass.
        num_scorers: Scoring actors (each loads the model once).
        threads_per_scorer: CPU threads per scorer (default: the cluster's CPUs split evenly, at
            most one node's).
        gpus_per_scorer: GPUs per scoring actor (0 = CPU).
        precision: ``bfloat16`` scores in bf16 (see :mod:`rayir.models.precision`).
    """

    batch_size: int = 32
    num_scorers: int = 1
    threads_per_scorer: int | None = None
    gpus_per_scorer: float = 0
    precision: Precision = "float32"


@dataclass
class LoraSettings:
    """LoRA on the backbone's linear layers.

    Args:
        r: Rank of the low-rank update (0: no adapter, the whole model trains).
        alpha: Scaling numerator (the update is ``alpha / r * B @ A``).
        dropout: Dropout on the adapter's input.
        target_modules: Backbone layer names to adapt (``peft`` matches name suffixes), e.g.
            ``[query, value]`` for BERT; empty: ``peft``'s default for the backbone type.
    """

    r: int = 0
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.r < 0 or self.alpha < 1 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"adapter: r >= 0, alpha >= 1 and 0 <= dropout < 1 (got {asdict(self)})")
        if self.r:
            from importlib.util import find_spec

            if find_spec("peft") is None:
                raise ConfigError("adapter.r > 0 needs peft: pip install 'rayir[adapters]'")
