"""Lightning modules wrapping a model and its tokenizer: the scoring API and the training steps.

``BiEncoderModule("<dir>").score(query, docs).scores`` and the cross-encoder equivalent work on
raw text, in batches, on whatever device the module sits on. ``configure_training(losses, ...)``
readies a module for ``lightning.Trainer.fit`` (which ``rayir.train.fit`` runs under Ray Train):
it trains on the weighted sum of its losses and validates by re-ranking a run with ``ir_measures``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning
import torch
from transformers import PreTrainedTokenizerBase

from .data.datamodule import RankBatch
from .losses import Loss, LossInputs, total_loss
from .models import adapters, scoring
from .models.bi_encoder import BiEncoderModel, Embeddings
from .models.cross_encoder import CrossEncoderModel
from .models.gather import gather_embeddings, gather_objects
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
    """Concatenate embedding batches, right-padding multi-vector (and COIL) token dimensions."""
    if parts[0].mask is None:
        return Embeddings(torch.cat([p.vectors for p in parts]))
    length = max(p.vectors.shape[1] for p in parts)
    vectors = [torch.nn.functional.pad(p.vectors, (0, 0, 0, length - p.vectors.shape[1])) for p in parts]
    masks = [torch.nn.functional.pad(p.mask, (0, length - p.mask.shape[1])) for p in parts]
    if parts[0].token_ids is None:
        return Embeddings(torch.cat(vectors), torch.cat(masks))
    ids = [torch.nn.functional.pad(p.token_ids, (0, length - p.token_ids.shape[1])) for p in parts]
    return Embeddings(torch.cat(vectors), torch.cat(masks), torch.cat(ids), torch.cat([p.first for p in parts]))


# The learning rate's factor after warm-up, as a function of the share of the remaining steps done.
LR_SCHEDULES = {
    "linear": lambda done: max(0.0, 1.0 - done),
    "cosine": lambda done: 0.5 * (1.0 + math.cos(math.pi * done)),
    "constant": lambda done: 1.0,
}


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

    def save_pretrained(self, directory: str | Path) -> Path:
        """Model + tokenizer as a Hugging Face directory that this class (and every stage) loads;
        a model with a LoRA adapter saves the adapter and its heads only (:mod:`rayir.models.adapters`)."""
        if adapters.has_adapter(self.model):
            return adapters.save(self.model, self.tokenizer.tokenizer, directory)
        self.model.save_pretrained(directory)
        self.tokenizer.tokenizer.save_pretrained(directory)
        return Path(directory)

    # ------------------------------------------------------------------------------- training

    def configure_training(
        self,
        losses: Sequence[Loss],
        lr: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        measures: Sequence[str] = ("nDCG@10",),
        lr_schedule: str = "linear",
    ) -> _ScoringModule:
        """Set the objective (weighted sum of ``losses``), AdamW settings and validation measures.

        ``lr_schedule`` after ``warmup_steps`` of linear warm-up: ``linear`` decay to 0 at the last
        step, ``cosine`` decay to 0, or ``constant``."""
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={lr_schedule!r}; expected one of {sorted(LR_SCHEDULES)}")
        self.lr_schedule = lr_schedule
        names = [loss.name for loss in losses]
        if not losses or len(set(names)) != len(names):
            raise ValueError(f"give each loss once (got {names})")
        self._check_losses(losses)
        self.losses, self.lr, self.weight_decay, self.warmup_steps = list(losses), lr, weight_decay, warmup_steps
        self.validation_measures = list(measures)
        self.model.train()  # loaded in eval mode for scoring; Lightning keeps each submodule's mode
        return self

    def _check_losses(self, losses: Sequence[Loss]) -> None:
        raise NotImplementedError

    def loss_inputs(self, batch: RankBatch) -> LossInputs:
        raise NotImplementedError

    def training_step(self, batch: RankBatch, batch_idx: int) -> torch.Tensor:
        if batch.targets is None:
            raise ValueError("training samples need targets")
        total, terms = total_loss(self.losses, self.loss_inputs(batch), self.global_step)
        self.log("train_loss", total.detach(), batch_size=len(batch), prog_bar=True)
        for name, value in terms.items():
            self.log(f"train_{name}", value.detach(), batch_size=len(batch))
        return total

    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
        )
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        schedule = LR_SCHEDULES[getattr(self, "lr_schedule", "linear")]
        warmup = self.warmup_steps

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return schedule(min(1.0, (step - warmup) / max(1, total - warmup)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_validation_epoch_start(self) -> None:
        self._validation_run: dict[str, dict[str, float]] = {}
        self._validation_qrels: dict[str, dict[str, int]] = {}

    def validation_step(self, batch: RankBatch, batch_idx: int) -> None:
        doc_lists, start = [], 0
        for count in batch.num_docs:
            doc_lists.append(batch.docs[start : start + count])
            start += count
        scores = self.score(batch.queries, doc_lists).per_query()
        for query_id, doc_ids, query_scores, qrels in zip(batch.query_ids, batch.doc_ids, scores, batch.qrels):
            self._validation_run[query_id] = dict(zip(doc_ids, query_scores.float().tolist()))
            if qrels:
                self._validation_qrels[query_id] = qrels

    def on_validation_epoch_end(self) -> None:
        from .evaluate import evaluate

        run, qrels = {}, {}
        for worker_run, worker_qrels in gather_objects((self._validation_run, self._validation_qrels)):
            run.update(worker_run)
            qrels.update(worker_qrels)
        if not qrels:
            return
        for name, value in evaluate(run, qrels, self.validation_measures).mean.items():
            self.log(f"val_{name}", value, batch_size=len(run))


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

    def _check_losses(self, losses: Sequence[Loss]) -> None:
        for loss in losses:
            if loss.needs_sparse and self.config.mode != "sparse":
                raise ValueError(f"{loss.name} needs a sparse model; this one is {self.config.mode}")
            if loss.needs_token_similarity and self.config.mode != "multi_vector":
                raise ValueError(f"{loss.name} needs a multi-vector model; this one is {self.config.mode}")

    def loss_inputs(self, batch: RankBatch) -> LossInputs:

        targets = batch.targets.to(self.device)
        size, per_query = targets.shape
        queries = self.model.encode(self.tokenizer.queries(batch.queries), is_query=True)
        docs = self.model.encode(self.tokenizer.docs(batch.docs), is_query=False)
        scores = self.model.score(queries, docs).view(size, per_query)
        in_batch_scores = in_batch_targets = None
        if any(loss.needs_in_batch for loss in self.losses):
            all_docs, offset = gather_embeddings(docs)  # every worker's documents, with gradients
            in_batch_scores = self.model.score_matrix(queries, all_docs)
            in_batch_targets = offset + torch.arange(size, device=self.device) * per_query + targets.argmax(dim=1)
        sparse = self.config.mode == "sparse"
        vectors = sparse or any(loss.needs_vectors for loss in self.losses)
        token_similarity = query_token_mask = None
        if any(loss.needs_token_similarity for loss in self.losses):
            paired = queries.select(torch.arange(size, device=self.device).repeat_interleave(per_query))
            token_similarity = scoring.token_similarity(paired.vectors, docs.vectors, docs.mask, self.config.similarity)
            query_token_mask = paired.mask
        return LossInputs(
            scores,
            targets,
            in_batch_scores,
            in_batch_targets,
            queries.vectors if vectors else None,
            docs.vectors if vectors else None,
            sparse,
            token_similarity,
            query_token_mask,
        )


class CrossEncoderModule(_ScoringModule):
    """A cross-encoder with its tokenizer: score (query, document) pairs."""

    model: CrossEncoderModel
    _load = staticmethod(load_cross_encoder)
    _tokenizer_cls = CrossEncoderTokenizer

    @torch.no_grad()
    def score(self, queries: str | Sequence[str], docs: Sequence[str] | Sequence[Sequence[str]]) -> ScoringOutput:
        query_list, doc_lists = _normalise_inputs(queries, docs)
        num_docs = [len(d) for d in doc_lists]
        if self.config.scores_lists:
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

    def _check_losses(self, losses: Sequence[Loss]) -> None:
        for loss in losses:
            if loss.needs_in_batch or loss.needs_sparse or loss.needs_vectors or loss.needs_token_similarity:
                raise ValueError(f"{loss.name} applies to bi-encoders only")

    def loss_inputs(self, batch: RankBatch) -> LossInputs:
        targets = batch.targets.to(self.device)
        queries = [q for q, count in zip(batch.queries, batch.num_docs) for _ in range(count)]
        num_docs = batch.num_docs if self.config.scores_lists else None
        scores = self.model(self.tokenizer.pairs(queries, batch.docs), num_docs=num_docs)
        return LossInputs(scores.view(targets.shape), targets)
