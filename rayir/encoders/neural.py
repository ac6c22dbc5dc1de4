"""Neural bi-encoders (dense, multi-vector, sparse) behind the representation seam."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..checkpoints import checkpoint_fingerprint
from ..index.queries import QueryBatch
from ..representation import EncoderSpec, Runtime

if TYPE_CHECKING:
    from ..execution import Executor


class NeuralBiEncoder:
    """A bi-encoder checkpoint, described by a task on a worker (its mode, dimension and full
    config): the driver never loads the model, which on a cluster head has no GPU and often no CPU
    reservation. The fingerprint comes from the checkpoint's files (:mod:`rayir.checkpoints`)."""

    files = None

    def __init__(self, model: str, overrides: dict[str, Any], precision: str, run: Executor) -> None:
        [described] = run.map_tasks(describe_checkpoint, [(model, overrides)])
        self.mode: str = described["mode"]
        self.dim: int | None = described["dim"]
        self.model_config: dict[str, Any] = described["model_config"]
        self.spec = EncoderSpec(model, overrides, precision, described["fingerprint"])

    def fit(self, staging: Path, chunks: list, output_dir: Path, run: Any) -> None:
        """Nothing to learn from the collection."""

    @staticmethod
    def document_encoder(
        spec: EncoderSpec, files: Path | None, staging: Path, runtime: Runtime
    ) -> NeuralDocumentEncoder:
        return NeuralDocumentEncoder(spec, runtime)

    @staticmethod
    def query_encoder(spec: EncoderSpec, files: Path | None, mode: str, runtime: Runtime) -> NeuralQueryEncoder:
        return NeuralQueryEncoder(spec, mode, runtime)


def describe_checkpoint(model: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Mode, dimension, full config and file fingerprint of a bi-encoder checkpoint (run as a task)."""
    from ..models.loaders import load_bi_encoder

    probe, _ = load_bi_encoder(model, **overrides)
    return {
        "mode": probe.config.mode,
        "dim": probe.embedding_dim,
        "model_config": json.loads(probe.config.to_json_string(use_diff=False)),
        "fingerprint": checkpoint_fingerprint(model),
    }


def check_unchanged(spec: EncoderSpec) -> None:
    """Refuse a checkpoint whose files differ from the ones the documents were encoded with."""
    if spec.model_fingerprint is not None and checkpoint_fingerprint(spec.model) != spec.model_fingerprint:
        raise ValueError(
            f"model {spec.model!r} has changed since the index was built (the fingerprint of its files "
            "differs): its query vectors would not match the documents; rebuild the index"
        )


def _load(spec: EncoderSpec, runtime: Runtime) -> tuple[Any, Any]:
    from ..models.inference import load_for_inference
    from ..modules import BiEncoderModule

    return load_for_inference(
        BiEncoderModule,
        spec.model,
        spec.config_overrides,
        batch_size=runtime.batch_size,
        device=runtime.device,
        precision=spec.precision,
        threads=runtime.threads,
    )


class NeuralDocumentEncoder:
    """Encodes staged chunks. Within a chunk, texts are encoded in length-sorted mini-batches
    under a token budget (little padding), then put back in corpus order."""

    def __init__(self, spec: EncoderSpec, runtime: Runtime) -> None:
        self.module, self.precision_context = _load(spec, runtime)
        self.mode = self.module.config.mode
        self.batch_size = runtime.batch_size

    def encode_batch(self, texts: list[str]) -> Any:
        """Float32 :class:`~rayir.models.Embeddings` of one mini-batch of document texts."""
        import torch

        with torch.inference_mode(), self.precision_context():
            embeddings = self.module.model.encode(self.module.tokenizer.docs(texts), is_query=False)
        return embeddings.float()

    def _batches(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Length-sorted batches (:func:`~rayir.models.batching.length_sorted_batches`) by token count."""
        from ..models.batching import length_sorted_batches

        max_length = self.module.config.doc_max_length
        return length_sorted_batches(self.module.tokenizer.doc_lengths(texts), self.batch_size, max_length)

    def encode_chunk(
        self, doc_ids: list[str], texts: list[str], progress: Callable[[int], None] | None = None
    ) -> pa.Table:
        from ..encode.formats import embeddings_to_table, with_truncated
        from ..models.batching import restore_order

        truncated_before = self.module.tokenizer.truncated["doc"]
        order, batches = self._batches(texts)
        parts = []
        for picked in batches:
            embeddings = self.encode_batch([texts[i] for i in picked])
            parts.append(embeddings_to_table(self.mode, [doc_ids[i] for i in picked], embeddings))
            if progress is not None:
                progress(len(picked))
        table = pa.concat_tables(parts).take(pa.array(restore_order(order)))
        return with_truncated(table, self.module.tokenizer.truncated["doc"] - truncated_before)

    def encode_staged(self, chunk: Path, progress: Callable[[int], None] | None = None) -> pa.Table:
        source = pq.read_table(chunk)
        return self.encode_chunk(source.column("doc_id").to_pylist(), source.column("text").to_pylist(), progress)


class NeuralQueryEncoder:
    """Encodes queries with the model, config and precision the documents were encoded with;
    a checkpoint changed since (another fingerprint) is refused."""

    def __init__(self, spec: EncoderSpec, mode: str, runtime: Runtime) -> None:
        check_unchanged(spec)
        self.module, self.precision_context = _load(spec, runtime)
        self.mode = mode

    @property
    def truncated(self) -> int:
        """Queries cut at ``query_max_length`` so far."""
        return self.module.tokenizer.truncated["query"]

    def __call__(self, texts: list[str]) -> QueryBatch:
        with self.precision_context():
            embeddings = self.module.encode_queries(texts).float()

        def plain(tensor: Any) -> np.ndarray | None:
            return None if tensor is None else tensor.detach().cpu().numpy()

        vectors, mask, token_ids, first = map(
            plain, (embeddings.vectors, embeddings.mask, embeddings.token_ids, embeddings.first)
        )
        return QueryBatch.from_dense(vectors, self.mode, mask, token_ids, first)
