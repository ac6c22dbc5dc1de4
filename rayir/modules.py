"""Lightning modules wrapping a model and its tokenizer: the user-facing scoring API.

``BiEncoderModule("<dir>").score(query, docs).scores`` and the cross-encoder equivalent work on
raw text, in batches, on whatever device the module sits on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning
import torch
from transformers import PreTrainedTokenizerBase

from .models.bi_encoder import BiEncoderModel, Embeddings
from .models.cross_encoder import CrossEncoderModel
from .models.loaders import load_bi_encoder, load_cross_encoder
from .models.tokenization import BiEncoderTokenizer, CrossEncoderTokenizer


@dataclass
class ScoringOutput:
    """``scores`` is flat: for one query a ``(num_docs,)`` tensor; for several, all pairs in order."""

    scores: torch.Tensor
    num_docs: list[int]
    query_embeddings: Embeddings | None = None
    doc_embeddings: Embeddings | None = None

    def per_query(self) -> list[torch.Tensor]:
        return list(torch.split(self.scores, self.num_docs))


def _normalise_inputs(queries: str | Sequence[str], docs: Sequence[str] | Sequence[Sequence[str]]):
    """Accept ``(query, [docs])`` or ``([queries], [[docs per query]])``."""
    if isinstance(queries, str):
        if docs and not isinstance(docs[0], str):
            raise TypeError("one query takes a flat list of document texts")
        return [queries], [list(docs)]
    queries = list(queries)
    if len(docs) != len(queries) or any(isinstance(d, str) for d in docs):
        raise TypeError("several queries take one list of document texts per query")
    return queries, [list(d) for d in docs]


def _concat(parts: list[Embeddings]) -> Embeddings:
    """Concatenate embedding batches, right-padding multi-vector token dimensions."""
    if parts[0].mask is None:
        return Embeddings(torch.cat([p.vectors for p in parts]))
    length = max(p.vectors.shape[1] for p in parts)
    vectors = [torch.nn.functional.pad(p.vectors, (0, 0, 0, length - p.vectors.shape[1])) for p in parts]
    masks = [torch.nn.functional.pad(p.mask, (0, length - p.mask.shape[1])) for p in parts]
    return Embeddings(torch.cat(vectors), torch.cat(masks))


class _ScoringModule(lightning.LightningModule):
    """Shared set-up: load from a path (with config overrides) or wrap a model + tokenizer."""

    _load = staticmethod(load_bi_encoder)
    _tokenizer_cls: type = BiEncoderTokenizer

    def __init__(
        self,
        model_name_or_path: str | Path | None = None,
        model: torch.nn.Module | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        batch_size: int = 32,
        **config_overrides: Any,
    ) -> None:
        super().__init__()
        if model is None:
            if model_name_or_path is None:
                raise ValueError("give model_name_or_path or model + tokenizer")
            model, tokenizer = self._load(model_name_or_path, **config_overrides)
        elif config_overrides:
            raise ValueError(f"config overrides {sorted(config_overrides)} only apply when loading from a path")
        if tokenizer is None:
            raise ValueError("a model passed directly needs its tokenizer")
        self.model = model
        self.tokenizer = self._tokenizer_cls(tokenizer, model.config)
        self.batch_size = batch_size
        self.model.eval()

    @property
    def config(self):
        return self.model.config


class BiEncoderModule(_ScoringModule):
    """A bi-encoder with its tokenizer: encode queries/documents and score them."""

    model: BiEncoderModel

    @torch.no_grad()
    def encode_queries(self, texts: Sequence[str]) -> Embeddings:
        return self._encode(texts, is_query=True)

    @torch.no_grad()
    def encode_docs(self, texts: Sequence[str]) -> Embeddings:
        return self._encode(texts, is_query=False)

    def _encode(self, texts: Sequence[str], is_query: bool) -> Embeddings:
        texts = list(texts)
        if not texts:
            raise ValueError("nothing to encode")
        tokenize = self.tokenizer.queries if is_query else self.tokenizer.docs
        parts = [
            self.model.encode(tokenize(texts[i : i + self.batch_size]), is_query=is_query)
            for i in range(0, len(texts), self.batch_size)
        ]
        return _concat(parts)

    @torch.no_grad()
    def score(self, queries: str | Sequence[str], docs: Sequence[str] | Sequence[Sequence[str]]) -> ScoringOutput:
        query_list, doc_lists = _normalise_inputs(queries, docs)
        num_docs = [len(d) for d in doc_lists]
        q = self.encode_queries(query_list)
        d = self.encode_docs([text for group in doc_lists for text in group])
        scores = self.model.score(q, d, num_docs)
        return ScoringOutput(scores, num_docs, q, d)

    def forward(self, batch: dict[str, torch.Tensor], is_query: bool) -> Embeddings:
        return self.model.encode(batch, is_query=is_query)


class CrossEncoderModule(_ScoringModule):
    """A cross-encoder with its tokenizer: score (query, document) pairs."""

    model: CrossEncoderModel
    _load = staticmethod(load_cross_encoder)
    _tokenizer_cls = CrossEncoderTokenizer

    @torch.no_grad()
    def score(self, queries: str | Sequence[str], docs: Sequence[str] | Sequence[Sequence[str]]) -> ScoringOutput:
        query_list, doc_lists = _normalise_inputs(queries, docs)
        num_docs = [len(d) for d in doc_lists]
        if self.config.mode == "listwise":
            # A query's candidates must be scored together: batch whole lists.
            scores = [self._score_pairs([q] * len(d), d, [len(d)]) for q, d in zip(query_list, doc_lists)]
        else:
            pairs_q = [q for q, d in zip(query_list, doc_lists) for _ in d]
            pairs_d = [text for d in doc_lists for text in d]
            scores = [
                self._score_pairs(pairs_q[i : i + self.batch_size], pairs_d[i : i + self.batch_size], None)
                for i in range(0, len(pairs_q), self.batch_size)
            ]
        return ScoringOutput(torch.cat(scores) if scores else torch.empty(0), num_docs)

    def _score_pairs(self, queries: list[str], docs: list[str], num_docs: list[int] | None) -> torch.Tensor:
        return self.model(self.tokenizer.pairs(queries, docs), num_docs=num_docs)

    def forward(self, batch: dict[str, torch.Tensor], num_docs: list[int] | None = None) -> torch.Tensor:
        return self.model(batch, num_docs=num_docs)
