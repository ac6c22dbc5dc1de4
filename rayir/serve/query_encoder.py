"""Encode queries the way an index's documents were encoded (same model, config and precision)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..index.base import QueryBatch


class QueryEncoder:
    """Built from an index manifest's ``query_encoder`` entry: a bi-encoder or BM25."""

    def __init__(self, index_manifest: dict[str, Any], device: str = "cpu", batch_size: int = 32) -> None:
        spec = index_manifest["query_encoder"]
        self.mode = index_manifest["type"]
        self.bm25 = None
        self.module = None
        if spec["model"] == "bm25":
            from ..models.bm25 import BM25Model

            embeddings_dir = Path(index_manifest["embeddings"]["dir"])
            self.bm25 = BM25Model(embeddings_dir / "bm25")
        else:
            from ..models.precision import prepare_for_inference
            from ..modules import BiEncoderModule

            self.module = BiEncoderModule(spec["model"], batch_size=batch_size, **spec["config_overrides"]).to(device)
            self.module.eval()
            self.precision_context = prepare_for_inference(self.module.model, spec["precision"], device)

    def __call__(self, texts: list[str]) -> QueryBatch:
        if self.bm25 is not None:
            indptr, terms, weights = self.bm25.encode_queries(texts)
            return QueryBatch(indptr=indptr, terms=terms, weights=weights)
        with self.precision_context():
            embeddings = self.module.encode_queries(texts)
        return QueryBatch.from_embeddings(embeddings, self.mode)
