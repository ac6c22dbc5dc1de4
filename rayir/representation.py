"""The representation seam: how documents become stored representations and queries become
query batches, whatever the family (a neural bi-encoder, BM25).

A *spec* is what a manifest records about a representation: the model (a path, ``pkg:<module>``
or a lexical model's name), its config overrides, the precision and the fingerprint. A family
implements :class:`Representation`; :func:`rayir.encoders.load_representation` picks it from the
model name, and the spec alone rebuilds document and query encoders on any worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from .index.queries import QueryBatch

if TYPE_CHECKING:
    from .encode.staging import Chunk
    from .execution import Executor


@dataclass(frozen=True)
class EncoderSpec:
    """What a manifest records about a representation (see the module docstring)."""

    model: str
    config_overrides: dict[str, Any] = field(default_factory=dict)
    precision: str = "float32"
    model_fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Runtime:
    """Where and how an encoder runs on its worker."""

    device: str = "cpu"
    threads: int | None = None
    batch_size: int = 32


class DocumentEncoder(Protocol):
    def encode_staged(self, chunk: Path, progress: Callable[[int], None] | None = None) -> pa.Table:
        """The embedding shard (see :mod:`rayir.encode.formats`) of one staged chunk file;
        ``progress(n)`` is told of documents as they are encoded."""
        ...


class QueryEncoder(Protocol):
    def __call__(self, texts: list[str]) -> QueryBatch: ...


class Representation(Protocol):
    """One family's representation, described for the driver (cheap to pickle, holds no model).

    A family is constructed as ``cls(model, overrides, precision, run)``; ``run`` is the
    :class:`~rayir.execution.Executor` any probe of the checkpoint runs on.

    ``files`` names the directory (relative to the embeddings directory) that :meth:`fit`
    writes and the query encoder needs; the index copies it, so an index is self-contained.
    """

    spec: EncoderSpec
    mode: str
    dim: int | None
    model_config: dict[str, Any]
    files: str | None

    def fit(self, staging: Path, chunks: list[Chunk], output_dir: Path, run: Executor) -> None:
        """Collection statistics from the staged corpus (a no-op for neural models)."""
        ...

    @staticmethod
    def document_encoder(spec: EncoderSpec, files: Path | None, staging: Path, runtime: Runtime) -> DocumentEncoder: ...

    @staticmethod
    def query_encoder(spec: EncoderSpec, files: Path | None, mode: str, runtime: Runtime) -> QueryEncoder: ...
