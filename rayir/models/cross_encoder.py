"""Cross-encoder model: a backbone reading (query, document) together, and a scoring head."""

from __future__ import annotations

import torch
from transformers import (
    AutoModel,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    PreTrainedModel,
)

from . import scoring, set_encoder
from .backbone import ensure_attention_implementation
from .config import CrossEncoderConfig


def build_backbone(config: CrossEncoderConfig) -> torch.nn.Module:
    """A randomly initialised backbone of the right kind for ``config.mode``."""
    if config.mode == "sequence_classification":
        return AutoModelForSequenceClassification.from_config(config.encoder_config)
    if config.mode in ("mono_t5", "rank_t5"):
        return AutoModelForSeq2SeqLM.from_config(config.encoder_config)
    return AutoModel.from_config(config.encoder_config)


class CrossEncoderModel(PreTrainedModel):
    """Scores tokenised (query, document) pairs per :class:`CrossEncoderConfig`."""

    config_class = CrossEncoderConfig
    base_model_prefix = "encoder"

    def __init__(self, config: CrossEncoderConfig, encoder: torch.nn.Module | None = None) -> None:
        super().__init__(config)
        self.encoder = encoder if encoder is not None else build_backbone(config)
        ensure_attention_implementation(self.encoder)
        hidden = config.encoder_config.hidden_size if hasattr(config.encoder_config, "hidden_size") else None
        pooled_head = config.mode in ("pointwise", "listwise", "set_encoder")
        outputs = 2 if config.score_head == "two_class" else 1
        self.head = torch.nn.Linear(hidden, outputs) if pooled_head else None
        self.pooler = (
            torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.Tanh()) if config.pooler_dense else None
        )
        self.list_encoder = None
        self.list_context = set_encoder.ListContext()
        if config.mode == "set_encoder":
            set_encoder.install(self.encoder, self.list_context)
        if config.mode == "listwise":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)  # a fresh list encoder is the same on every load
                layer = torch.nn.TransformerEncoderLayer(
                    hidden, config.listwise_heads, dim_feedforward=2 * hidden, dropout=0.0, batch_first=True
                )
                self.list_encoder = torch.nn.TransformerEncoder(
                    layer, config.listwise_layers, enable_nested_tensor=False
                )
        # Token ids the seq2seq heads read; filled in by the module once a tokenizer is known.
        self.register_buffer("head_token_ids", torch.zeros(2, dtype=torch.long), persistent=False)
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        if module is self.head or (self.pooler is not None and module is self.pooler[0]):
            # Seeded: the same backbone + settings always yields the same fresh head.
            torch.nn.init.normal_(module.weight, std=0.02, generator=torch.Generator().manual_seed(0))
            torch.nn.init.zeros_(module.bias)

    def set_head_tokens(self, token_ids: list[int]) -> None:
        self.head_token_ids = torch.tensor(token_ids, dtype=torch.long, device=self.device)

    def forward(self, batch: dict[str, torch.Tensor], num_docs: list[int] | None = None) -> torch.Tensor:
        """Flat scores, one per pair. ``num_docs`` groups consecutive pairs by query (listwise and
        Set-Encoder; one list of all pairs when not given)."""
        cfg = self.config
        inputs = {
            k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")
        }
        if cfg.mode == "sequence_classification":
            return self.encoder(**inputs).logits[:, cfg.label_index]
        if cfg.mode in ("mono_t5", "rank_t5"):
            return self._seq2seq_scores(inputs)
        if cfg.mode == "set_encoder":
            self.list_context.attention_mask = inputs["attention_mask"]
            self.list_context.num_docs = num_docs or [inputs["input_ids"].shape[0]]
        try:
            hidden = self.encoder(**inputs).last_hidden_state
        finally:
            self.list_context.attention_mask = self.list_context.num_docs = None
        pooled = scoring.pool(hidden, inputs["attention_mask"], cfg.pooling)
        if self.pooler is not None:
            pooled = self.pooler(pooled)
        if cfg.mode == "listwise":
            pooled = self._attend_within_lists(pooled, num_docs)
        logits = self.head(pooled)
        if cfg.score_head == "two_class":
            return torch.log_softmax(logits, dim=-1)[:, 1]
        return logits.squeeze(-1)

    def _seq2seq_scores(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        start = self.config.encoder_config.decoder_start_token_id
        decoder_ids = torch.full((inputs["input_ids"].shape[0], 1), start, dtype=torch.long, device=self.device)
        logits = self.encoder(**inputs, decoder_input_ids=decoder_ids).logits[:, 0]
        if self.config.mode == "rank_t5":
            return logits[:, self.head_token_ids[0]]
        true_false = logits[:, self.head_token_ids]  # (N, 2): [true, false]
        return torch.log_softmax(true_false, dim=-1)[:, 0]

    def _attend_within_lists(self, pooled: torch.Tensor, num_docs: list[int] | None) -> torch.Tensor:
        if num_docs is None:
            num_docs = [pooled.shape[0]]
        if sum(num_docs) != pooled.shape[0]:
            raise ValueError(f"num_docs sums to {sum(num_docs)} but there are {pooled.shape[0]} pairs")
        groups = list(torch.split(pooled, num_docs))
        padded = torch.nn.utils.rnn.pad_sequence(groups, batch_first=True)
        lengths = torch.tensor(num_docs, device=pooled.device)
        padding = torch.arange(padded.shape[1], device=pooled.device)[None, :] >= lengths[:, None]
        mixed = self.list_encoder(padded, src_key_padding_mask=padding)
        return mixed[~padding]
