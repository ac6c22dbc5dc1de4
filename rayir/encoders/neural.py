"""Neural bi-encoders (dense, multi-vector, sparse) behind the representation seam."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..index.queries import QueryBatch
from ..representation import EncoderSpec, Runtime


class NeuralBiEncoder:
    """A bi-encoder checkpoint. Describing it loads the model once in the driver, for its mode,
    dimension, full config and fingerprint (SHA-256 of config and weights)."""

    files = None

    def __init__(self, model: str, overrides: dict[str, Any], precision: str) -> None:
        from ..encode.manifest import model_fingerprint
        from ..models.loaders import load_bi_encoder

        probe, _ = load_bi_encoder(model, **overrides)
        self.mode: str = probe.config.mode
        self.dim: int | None = probe.embedding_dim
        self.model_config: dict[str, Any] = json.loads(probe.config.to_json_string(use_diff=False))
        self.spec = EncoderSpec(model, overrides, precision, model_fingerprint(probe))

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


def _load(spec: EncoderSpec, runtime: Runtime, check_fingerprint: bool = False) -> tuple[Any, Any]:
    from ..models.inference import load_for_inference
    from ..modules import BiEncoderModule

    def same_model(module: Any) -> None:
        from ..encode.manifest import model_fingerprint

        if spec.model_fingerprint is not None and model_fingerprint(module.model) != spec.model_fingerprint:
            raise ValueError(
                f"model {spec.model!r} has changed since the index was built (its fingerprint "
                "differs): its query vectors would not match the documents; rebuild the index"
            )

    return load_for_inference(
        BiEncoderModule,
        spec.model,
        spec.config_overrides,
        batch_size=runtime.batch_size,
        device=runtime.device,
        precision=spec.precision,
        threads=runtime.threads,
        before_precision=same_model if check_fingerprint else None,
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
        """Length-sorted batches under a token budget of ``batch_size * doc_max_length``.

        Sorting by token count keeps padding small; the budget lets short documents form larger
        batches (better matmul efficiency) while long ones stay at ``batch_size``.
        """
        tokenizer = self.module.tokenizer.tokenizer
        max_length = self.module.config.doc_max_length
        lengths = np.asarray(
            [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
        )
        order = np.argsort(-lengths, kind="stable")
        budget = self.batch_size * max_length
        batches, start = [], 0
        while start < len(order):
            longest = max(int(lengths[order[start]]), 1)
            size = max(1, min(budget // longest, 4 * self.batch_size))
            batches.append(order[start : start + size])
            start += size
        return order, batches

    def encode_chunk(self, doc_ids: list[str], texts: list[str]) -> pa.Table:
        from ..encode.formats import embeddings_to_table

        order, batches = self._batches(texts)
        parts = []
        for picked in batches:
            embeddings = self.encode_batch([texts[i] for i in picked])
            parts.append(embeddings_to_table(self.mode, [doc_ids[i] for i in picked], embeddings))
        table = pa.concat_tables(parts)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return table.take(pa.array(inverse))

    def encode_staged(self, chunk: Path) -> pa.Table:
        source = pq.read_table(chunk)
        return self.encode_chunk(source.column("doc_id").to_pylist(), source.column("text").to_pylist())


class NeuralQueryEncoder:
    """Encodes queries with the model, config and precision the documents were encoded with;
    a checkpoint changed since (another fingerprint) is refused."""

    def __init__(self, spec: EncoderSpec, mode: str, runtime: Runtime) -> None:
        self.module, self.precision_context = _load(spec, runtime, check_fingerprint=True)
        self.mode = mode

    def __call__(self, texts: list[str]) -> QueryBatch:
        with self.precision_context():
            embeddings = self.module.encode_queries(texts)
        mask = embeddings.mask.cpu().numpy() if embeddings.mask is not None else None
        return QueryBatch.from_dense(embeddings.vectors.detach().float().cpu().numpy(), self.mode, mask)
