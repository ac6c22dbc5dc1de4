"""Bi-encoder model: any Hugging Face backbone plus the scoring head its config describes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AutoModel, AutoModelForMaskedLM, PreTrainedModel

from . import scoring
from .backbone import ensure_attention_implementation
from .config import BiEncoderConfig


@dataclass
class Embeddings:
    """Representations of a batch of texts.

    ``vectors`` is ``(B, D)`` for dense, ``(B, L, D)`` for multi-vector (with ``mask`` ``(B, L)``
    marking the token vectors that take part in scoring) and ``(B, V)`` for sparse. COIL adds
    ``token_ids`` ``(B, L)`` (each token vector's vocabulary id) and ``first`` ``(B, C)`` (the
    first token's vector; ``vectors`` then hold the later tokens).
    """

    vectors: torch.Tensor
    mask: torch.Tensor | None = None
    token_ids: torch.Tensor | None = None
    first: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def float(self) -> Embeddings:
        first = None if self.first is None else self.first.float()
        return Embeddings(self.vectors.float(), self.mask, self.token_ids, first)

    def select(self, index: torch.Tensor | slice) -> Embeddings:
        def pick(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor[index]

        return Embeddings(self.vectors[index], pick(self.mask), pick(self.token_ids), pick(self.first))


def build_backbone(config: BiEncoderConfig) -> torch.nn.Module:
    """A randomly initialised backbone of the right kind for ``config.mode``."""
    if uses_mlm_head(config.mode, config.sparse_weighting):
        return AutoModelForMaskedLM.from_config(config.encoder_config)
    return AutoModel.from_config(config.encoder_config)


def uses_mlm_head(mode: str | None, sparse_weighting: str | None = None) -> bool:
    """SPLADE reads the backbone's MLM head; every other bi-encoder (UniCOIL's ``token`` weighting
    included) the plain backbone. Takes the settings, so loaders can ask before a config exists."""
    return mode == "sparse" and (sparse_weighting or "mlm") == "mlm"


class BiEncoderModel(PreTrainedModel):
    """Encodes queries and documents independently and scores them per :class:`BiEncoderConfig`."""

    config_class = BiEncoderConfig
    base_model_prefix = "encoder"

    def __init__(self, config: BiEncoderConfig, encoder: torch.nn.Module | None = None) -> None:
        super().__init__(config)
        self.encoder = encoder if encoder is not None else build_backbone(config)
        ensure_attention_implementation(self.encoder)
        hidden = config.encoder_config.hidden_size
        # UniCOIL's projection gives each token one weight; the others project to embedding_dim.
        out = 1 if config.sparse_weighting == "token" else config.embedding_dim
        self.projection = torch.nn.Linear(hidden, out, bias=config.projection_bias) if out is not None else None
        self.cls_projection = (
            torch.nn.Linear(hidden, config.cls_embedding_dim, bias=config.projection_bias)
            if config.cls_embedding_dim is not None
            else None
        )
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        if module is self.projection or module is self.cls_projection:
            # Seeded: the same backbone + settings always yields the same fresh head.
            torch.nn.init.normal_(module.weight, std=0.02, generator=torch.Generator().manual_seed(0))
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)

    @property
    def embedding_dim(self) -> int:
        cfg = self.config
        if cfg.mode == "sparse":
            return cfg.encoder_config.vocab_size
        return cfg.embedding_dim or cfg.encoder_config.hidden_size

    def _backbone_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        keys = ("input_ids", "attention_mask", "token_type_ids")
        return {k: batch[k].to(self.device) for k in keys if k in batch}

    def _token_embeddings(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        encoder = self.encoder.get_encoder() if self.config.encoder_config.is_encoder_decoder else self.encoder
        return encoder(**self._backbone_inputs(batch)).last_hidden_state

    def _project(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.projection(vectors) if self.projection is not None else vectors

    def encode(self, batch: dict[str, torch.Tensor], is_query: bool) -> Embeddings:
        """Representations of a tokenised batch (see :class:`~rayir.models.BiEncoderTokenizer`)."""
        cfg = self.config
        attention = batch["attention_mask"].to(self.device)
        scoring_mask = batch.get("scoring_mask", attention).to(self.device)
        if cfg.mode == "sparse":
            if is_query and cfg.query_inference_free:
                return Embeddings(self._bag_of_tokens(batch["input_ids"].to(self.device), scoring_mask))
            if cfg.sparse_weighting == "token":
                weights = self.projection(self._token_embeddings(batch)).squeeze(-1)
                ids = batch["input_ids"].to(self.device)
                return Embeddings(scoring.token_weights_to_vocabulary(weights, ids, scoring_mask, self.embedding_dim))
            logits = self.encoder(**self._backbone_inputs(batch)).logits
            return Embeddings(scoring.splade_activation(logits, scoring_mask, cfg.sparse_pooling))
        tokens = self._token_embeddings(batch)
        if cfg.mode == "coil":
            ids = batch["input_ids"].to(self.device)
            return Embeddings(
                self._project(tokens[:, 1:]), scoring_mask[:, 1:].bool(), ids[:, 1:], self.cls_projection(tokens[:, 0])
            )
        if cfg.mode == "dense":
            # Pool first, then project (the sentence-transformers Dense order; it matters for max).
            vectors = self._project(scoring.pool(tokens, attention, cfg.pooling))
            if cfg.normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
            return Embeddings(vectors)
        tokens = self._project(tokens)
        if cfg.normalize:
            tokens = torch.nn.functional.normalize(tokens, dim=-1)
        return Embeddings(tokens, scoring_mask.bool())

    def _bag_of_tokens(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Inference-free query side: weight 1.0 for every query token in ``mask`` (no specials)."""
        vocab = self.config.encoder_config.vocab_size
        keep = mask.bool()
        vectors = torch.zeros(input_ids.shape[0], vocab, device=input_ids.device)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device).unsqueeze(1).expand_as(input_ids)
        vectors[rows[keep], input_ids[keep]] = 1.0
        return vectors

    def score(self, queries: Embeddings, docs: Embeddings, num_docs: list[int] | None = None) -> torch.Tensor:
        """Scores of each query against its own documents.

        ``num_docs[i]`` documents (consecutive in ``docs``) belong to query ``i``; by default every
        query has the same number. Returns a flat ``(sum(num_docs),)`` tensor.
        """
        if num_docs is None:
            if len(docs) % len(queries):
                raise ValueError(f"{len(docs)} documents do not split evenly over {len(queries)} queries")
            num_docs = [len(docs) // len(queries)] * len(queries)
        if sum(num_docs) != len(docs):
            raise ValueError(f"num_docs sums to {sum(num_docs)} but there are {len(docs)} documents")
        if self.training and self.config.xtr_k_train is not None:
            return scoring.xtr_grouped(
                queries.vectors,
                queries.mask,
                docs.vectors,
                docs.mask,
                num_docs,
                self.config.similarity,
                self.config.xtr_k_train,
            )
        index = torch.repeat_interleave(
            torch.arange(len(queries), device=queries.vectors.device),
            torch.tensor(num_docs, device=queries.vectors.device),
        )
        return self.score_pairs(queries.select(index), docs)

    def score_pairs(self, queries: Embeddings, docs: Embeddings) -> torch.Tensor:
        """Scores of aligned (query i, doc i) pairs."""
        cfg = self.config
        if cfg.mode == "coil":
            return scoring.coil(queries, docs)
        if cfg.mode == "multi_vector":
            return scoring.maxsim(
                queries.vectors, queries.mask, docs.vectors, docs.mask, cfg.similarity, cfg.query_aggregation
            )
        similarity = "dot" if cfg.mode == "sparse" else cfg.similarity
        return scoring.vector_similarity(queries.vectors, docs.vectors, similarity)

    def score_matrix(self, queries: Embeddings, docs: Embeddings) -> torch.Tensor:
        """All query x document scores ``(Nq, Nd)`` (in-batch negatives)."""
        cfg = self.config
        if self.training and cfg.xtr_k_train is not None:
            return scoring.xtr_matrix(
                queries.vectors, queries.mask, docs.vectors, docs.mask, cfg.similarity, cfg.xtr_k_train
            )
        if cfg.mode == "coil":
            rows = torch.arange(len(queries), device=queries.vectors.device).repeat_interleave(len(docs))
            cols = torch.arange(len(docs), device=docs.vectors.device).repeat(len(queries))
            return scoring.coil(queries.select(rows), docs.select(cols)).view(len(queries), len(docs))
        if cfg.mode == "multi_vector":
            return scoring.maxsim_matrix(
                queries.vectors, queries.mask, docs.vectors, docs.mask, cfg.similarity, cfg.query_aggregation
            )
        similarity = "dot" if cfg.mode == "sparse" else cfg.similarity
        return scoring.vector_similarity_matrix(queries.vectors, docs.vectors, similarity)
