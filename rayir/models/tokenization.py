"""Turn query and document texts into model inputs, following a config's tokenisation rules.

Marker tokens, ``[MASK]`` query expansion and punctuation masking belong to the representation
(ColBERT), so they live here rather than in every caller.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from .config import BiEncoderConfig, CrossEncoderConfig


class BiEncoderTokenizer:
    """Tokenises queries and documents for a :class:`BiEncoderConfig`.

    Returns ``input_ids``, ``attention_mask`` and ``scoring_mask`` (which tokens form a
    multi-vector representation or a SPLADE vector). ``truncated["query"]`` / ``truncated["doc"]``
    count the texts cut at ``query_max_length`` / ``doc_max_length`` so far (stage summaries report
    them; a slow tokenizer, which does not say, counts none).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, config: BiEncoderConfig) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.truncated = {"query": 0, "doc": 0}
        # Tokens inserted right after [CLS]: a ColBERT marker, or MVR's viewer tokens (never both).
        self._query_inserted = [self._token_id(t) for t in (config.query_marker,) if t is not None]
        self._viewer_ids = [self._token_id(token) for token in config.viewer_token_names()]
        self._doc_inserted = [self._token_id(t) for t in (config.doc_marker,) if t is not None] + self._viewer_ids
        self._punctuation_ids = torch.tensor(
            sorted({i for c in string.punctuation for i in tokenizer.encode(c, add_special_tokens=False)}),
            dtype=torch.long,
        )
        if config.query_expansion and tokenizer.mask_token_id is None:
            raise ValueError("query_expansion needs a tokenizer with a [MASK] token")

    def _token_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"marker or viewer token {token!r} is not in the tokenizer's vocabulary")
        return token_id

    def queries(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        cfg = self.config
        batch = self._encode(texts, cfg.query_max_length, self._query_inserted, "query")
        if cfg.query_inference_free:
            batch["scoring_mask"] = batch["scoring_mask"] & ~batch.pop("special_tokens_mask").bool()
        batch.pop("special_tokens_mask", None)
        if cfg.query_expansion:
            batch = self._expand(batch, cfg.query_max_length)
        if self._viewer_ids:  # MVR: a query is its first-token vector
            batch["scoring_mask"] = _first_only(batch["scoring_mask"])
        return batch

    def docs(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        batch = self._encode(texts, self.config.doc_max_length, self._doc_inserted, "doc")
        batch.pop("special_tokens_mask", None)
        if self._viewer_ids:  # MVR: only the viewer tokens' vectors represent a document
            batch["scoring_mask"] = torch.zeros_like(batch["scoring_mask"])
            batch["scoring_mask"][:, 1 : 1 + len(self._viewer_ids)] = True
        if self.config.mask_punctuation:
            is_punct = torch.isin(batch["input_ids"], self._punctuation_ids)
            batch["scoring_mask"] = batch["scoring_mask"] & ~is_punct
        return batch

    def doc_lengths(self, texts: Sequence[str]) -> list[int]:
        """Token counts of ``texts`` as :meth:`docs` cuts them (inserted tokens included), without
        padding and without counting truncation: for sorting texts into batches."""
        marker = len(self._doc_inserted)
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.config.doc_max_length - marker)
        return [len(ids) + marker for ids in encoded["input_ids"]]

    def _encode(self, texts: Sequence[str], max_length: int, inserted: list[int], side: str) -> dict[str, torch.Tensor]:
        """Padded ids within ``max_length`` tokens, ``inserted`` placed right after ``[CLS]``."""
        texts = list(texts)
        room = max_length - len(inserted)
        enc = self.tokenizer(
            texts, truncation=True, max_length=room, padding=True, return_tensors="pt", return_special_tokens_mask=True
        )
        self.truncated[side] += count_truncated(enc)
        input_ids, attention_mask = enc["input_ids"], enc["attention_mask"]
        if inserted:
            extra = torch.tensor(inserted, dtype=input_ids.dtype).expand(input_ids.shape[0], -1)
            input_ids = torch.cat([input_ids[:, :1], extra, input_ids[:, 1:]], dim=1)
            attention_mask = torch.cat([attention_mask[:, :1], torch.ones_like(extra), attention_mask[:, 1:]], dim=1)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in enc:
            batch["token_type_ids"] = torch.zeros_like(input_ids)
        batch["scoring_mask"] = attention_mask.bool()
        if not inserted:
            batch["special_tokens_mask"] = enc["special_tokens_mask"] | (attention_mask == 0)
        return batch

    def _expand(self, batch: dict[str, torch.Tensor], length: int) -> dict[str, torch.Tensor]:
        """Pad to ``length`` with ``[MASK]``; every position then takes part in scoring."""
        ids, attn = batch["input_ids"], batch["attention_mask"]
        pad = length - ids.shape[1]
        if pad > 0:
            ids = torch.cat([ids, torch.full((ids.shape[0], pad), self.tokenizer.pad_token_id)], dim=1)
            attn = torch.cat([attn, torch.zeros((attn.shape[0], pad), dtype=attn.dtype)], dim=1)
        expansion = attn == 0
        ids = ids.masked_fill(expansion, self.tokenizer.mask_token_id)
        if self.config.attend_to_query_expansion:
            attn = torch.ones_like(attn)
        out = {"input_ids": ids, "attention_mask": attn, "scoring_mask": torch.ones_like(attn, dtype=torch.bool)}
        if "token_type_ids" in batch:
            out["token_type_ids"] = torch.zeros_like(ids)
        return out


def _first_only(mask: torch.Tensor) -> torch.Tensor:
    first = torch.zeros_like(mask, dtype=torch.bool)
    first[:, 0] = True
    return first


def count_truncated(encoding: Any) -> int:
    """Texts (or pairs) of a fast tokenizer's batch that lost tokens to truncation."""
    return sum(truncated_flags(encoding))


def truncated_flags(encoding: Any) -> list[bool]:
    """Which texts (or pairs) of a fast tokenizer's batch lost tokens (none for a slow tokenizer)."""
    encodings = getattr(encoding, "encodings", None) or []
    return [bool(item.overflowing) for item in encodings]


class CrossEncoderTokenizer:
    """Tokenises (query, document) pairs for a :class:`CrossEncoderConfig`; ``truncated`` counts
    the pairs cut at ``max_length`` so far."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, config: CrossEncoderConfig) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.truncated = 0

    def pairs(self, queries: Sequence[str], docs: Sequence[str]) -> dict[str, torch.Tensor]:
        enc, cut = self._tokenize(queries, docs, padding=True, return_tensors="pt")
        self.truncated += sum(cut)
        return dict(enc)

    def unpadded(self, queries: Sequence[str], docs: Sequence[str]) -> Any:
        """The pairs tokenised once, without padding (lists of ids), for a caller that sorts them
        by length and pads each mini-batch with :meth:`pad_rows`; counts the pairs cut."""
        enc, cut = self._tokenize(queries, docs)
        self.truncated += sum(cut)
        return enc

    def pad_rows(self, encoding: Any, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        """Rows ``rows`` of an :meth:`unpadded` encoding as one padded batch of tensors."""
        names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoding]
        return dict(self.tokenizer.pad({k: [encoding[k][i] for i in rows] for k in names}, return_tensors="pt"))

    def _tokenize(self, queries: Sequence[str], docs: Sequence[str], **options: Any) -> tuple[Any, list[bool]]:
        """The pairs' encoding and which pairs lost tokens (to a side's own length or to ``max_length``)."""
        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries but {len(docs)} documents")
        cfg = self.config
        (queries, query_cut), (docs, doc_cut) = (
            self._cut(queries, cfg.query_max_length),
            self._cut(docs, cfg.doc_max_length),
        )
        if cfg.mode in ("mono_t5", "rank_t5"):
            texts = [f"Query: {q} Document: {d} Relevant:" for q, d in zip(queries, docs)]
            enc = self.tokenizer(texts, truncation=True, max_length=cfg.max_length, **options)
        else:
            enc = self.tokenizer(
                list(queries), list(docs), truncation="longest_first", max_length=cfg.max_length, **options
            )
        pair_cut = truncated_flags(enc) or [False] * len(queries)
        return enc, [any(flags) for flags in zip(query_cut, doc_cut, pair_cut)]

    def _cut(self, texts: Sequence[str], length: int | None) -> tuple[Sequence[str], list[bool]]:
        """Texts cut to their first ``length`` tokens (decoded back to text, as Lightning IR does,
        so the pair is then tokenised as usual) and which were cut; unchanged when ``length`` is None."""
        if length is None:
            return texts, [False] * len(texts)
        enc = self.tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=length)
        cut = truncated_flags(enc) or [False] * len(texts)
        return [
            text if not was_cut else self.tokenizer.decode(ids)
            for text, ids, was_cut in zip(texts, enc["input_ids"], cut)
        ], cut
