"""Configurations that decide how a backbone's contextual embeddings become a relevance score.

Both classes are Hugging Face configs, so a rayir checkpoint round-trips through
``save_pretrained`` / ``from_pretrained``. The backbone's own config (any ``AutoConfig`` model
type) is nested under ``encoder_config``; every other field is a scoring choice. Values are
checked when the config is built: an unknown field or an out-of-range choice is an error, never
silently ignored.
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar, Literal, get_args, get_origin

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

# Keys Hugging Face itself passes through config constructors (loading, saving, BC shims).
_HF_PASSTHROUGH_KEYS = {
    "name_or_path",
    "torch_dtype",
    "attn_implementation",
    "experts_implementation",
    "output_attentions",
    "num_labels",
    "per_layer_config",
    "model_type",
}


class _RayirConfig(PretrainedConfig):
    """Shared validation: unknown keys and invalid ``Literal`` values raise ``ValueError``."""

    sub_configs_defaults: ClassVar = {
        "encoder_config": SubConfigSpec(AutoConfig, model_type="bert"),
    }
    encoder_config: dict | PretrainedConfig | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        unknown = sorted(k for k in kwargs if k not in _HF_PASSTHROUGH_KEYS and not k.startswith("_"))
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown field(s) {unknown}")
        super().__post_init__(**kwargs)
        self._validate_choices()
        self.validate()

    def _validate_choices(self) -> None:
        for name, hint in _own_annotations(type(self)).items():
            allowed = _literal_values(hint)
            if allowed is None or not hasattr(self, name):
                continue
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{type(self).__name__}.{name}={value!r}; expected one of {sorted(map(str, allowed))}")

    def validate(self) -> None:
        """Cross-field checks; subclasses extend."""


def _own_annotations(cls: type) -> dict[str, Any]:
    """Type hints declared by rayir's config classes (not Hugging Face's base fields)."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if isinstance(klass, type) and issubclass(klass, _RayirConfig):
            for name, hint in klass.__dict__.get("__annotations__", {}).items():
                hints[name] = eval(hint, vars(typing), globals()) if isinstance(hint, str) else hint
    return hints


def _literal_values(hint: Any) -> tuple | None:
    if get_origin(hint) is Literal:
        return get_args(hint)
    if get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        values: list = []
        for arg in get_args(hint):
            if arg is type(None):
                values.append(None)
            elif get_origin(arg) is Literal:
                values.extend(get_args(arg))
            else:
                return None
        return tuple(values)
    return None


class BiEncoderConfig(_RayirConfig):
    """Queries and documents are encoded separately; the score compares their representations.

    ``mode`` picks the representation:

    - ``dense``: one vector per text (SBERT/DPR). ``pooling`` reduces token embeddings, an optional
      linear ``embedding_dim`` projection follows, then optional L2 ``normalize``.
    - ``multi_vector``: one vector per token (ColBERT). Scores are MaxSim: for each query token the
      best ``doc_aggregation`` match over document tokens, combined by ``query_aggregation``.
      ``query_expansion`` pads queries with ``[MASK]`` up to ``query_max_length``;
      ``mask_punctuation`` drops punctuation tokens from documents; ``query_marker`` /
      ``doc_marker`` are tokens inserted after ``[CLS]`` (``[unused0]`` / ``[unused1]`` in ColBERT).
    - ``sparse``: one vocabulary-sized vector (SPLADE) from the MLM head: ``log(1 + relu(logits))``
      pooled over tokens (``sparse_pooling``). With ``query_inference_free`` the query side skips
      the encoder and weighs each query token 1.0 (a bag of its vocabulary ids).
      ``sparse_weighting="token"`` is UniCOIL instead: a linear layer gives each input token one
      weight, ``relu``-ed, placed at its vocabulary id (the largest where a token repeats); no MLM
      head, no expansion.
    - ``coil``: COIL, exact lexical match with contextual vectors. A text is its first token's
      vector (projected to ``cls_embedding_dim``) plus one ``embedding_dim`` vector per later token,
      kept with its vocabulary id. The score is the first-token dot product plus, for every query
      token, its best dot product with a document token *of the same id*, floored at 0 (no match
      adds nothing; Lightning IR's rule). Dot similarity, no normalisation.

    Model families built on these modes:

    - **MVR** (multi-view): ``multi_vector`` with ``viewer_tokens=n``: documents carry ``n`` viewer
      tokens ``[VIE0]``... after ``[CLS]`` and are represented by those ``n`` vectors only; a query
      by its first-token vector. MaxSim over one query vector is then the best view's score.
    - **XTR**: ``multi_vector`` with ``xtr_k_train=k``: in training, each query keeps only its
      ``k`` most similar (query token, document token) pairs over all documents it is scored
      against, and normalises by the query tokens that kept one (in-batch token retrieval).
      Search and re-ranking use plain MaxSim.
    """

    model_type: ClassVar[str] = "rayir-bi-encoder"

    mode: Literal["dense", "multi_vector", "sparse", "coil"] = "dense"
    query_max_length: int = 32
    doc_max_length: int = 512
    pooling: Literal["first", "mean", "max", "sum"] | None = "mean"
    embedding_dim: int | None = None
    projection_bias: bool = True
    normalize: bool = False
    similarity: Literal["dot", "cosine"] = "dot"
    # multi-vector (late interaction)
    query_aggregation: Literal["sum", "mean"] = "sum"
    doc_aggregation: Literal["max"] = "max"
    query_expansion: bool = False
    attend_to_query_expansion: bool = False
    mask_punctuation: bool = False
    query_marker: str | None = None
    doc_marker: str | None = None
    # sparse (learned sparse retrieval)
    sparse_pooling: Literal["max", "sum"] = "max"
    sparse_weighting: Literal["mlm", "token"] = "mlm"
    query_inference_free: bool = False
    # COIL
    cls_embedding_dim: int | None = None
    # model families
    viewer_tokens: int | None = None
    xtr_k_train: int | None = None

    def validate(self) -> None:
        super().validate()
        if self.query_max_length < 1 or self.doc_max_length < 1:
            raise ValueError("BiEncoderConfig: query_max_length and doc_max_length must be positive")
        if self.mode == "dense" and self.pooling is None:
            raise ValueError("BiEncoderConfig: mode='dense' needs a pooling strategy")
        if self.mode != "dense" and self.pooling is not None:
            raise ValueError(f"BiEncoderConfig: mode={self.mode!r} pools internally; set pooling=None")
        if self.mode == "sparse" and (self.embedding_dim is not None or self.normalize):
            raise ValueError("BiEncoderConfig: sparse vectors live in vocabulary space (no projection/normalize)")
        if self.mode != "multi_vector" and (
            self.query_expansion or self.mask_punctuation or self.query_marker or self.doc_marker
        ):
            raise ValueError("BiEncoderConfig: query_expansion/mask_punctuation/markers need mode='multi_vector'")
        if self.mode != "sparse" and self.query_inference_free:
            raise ValueError("BiEncoderConfig: query_inference_free needs mode='sparse'")
        if self.embedding_dim is not None and self.embedding_dim < 1:
            raise ValueError("BiEncoderConfig: embedding_dim must be positive")
        if self.sparse_weighting == "token" and (self.mode != "sparse" or self.query_inference_free):
            raise ValueError(
                "BiEncoderConfig: sparse_weighting='token' (UniCOIL) needs mode='sparse', both sides encoded"
            )
        if self.viewer_tokens is not None:
            if self.mode != "multi_vector" or self.viewer_tokens < 1:
                raise ValueError("BiEncoderConfig: viewer_tokens (MVR) needs mode='multi_vector' and a count >= 1")
            if self.query_expansion or self.mask_punctuation or self.query_marker or self.doc_marker:
                raise ValueError("BiEncoderConfig: viewer_tokens (MVR) does not combine with expansion/markers/masking")
            if self.viewer_tokens + 2 > self.doc_max_length:
                raise ValueError("BiEncoderConfig: doc_max_length leaves no room for the viewer tokens")
        if (self.mode == "coil") != (self.cls_embedding_dim is not None):
            raise ValueError(
                "BiEncoderConfig: cls_embedding_dim is COIL's first-token size: set it with mode='coil' only"
            )
        if self.mode == "coil" and (
            self.embedding_dim is None or self.cls_embedding_dim < 1 or self.normalize or self.similarity != "dot"
        ):
            raise ValueError(
                "BiEncoderConfig: mode='coil' needs embedding_dim and cls_embedding_dim, dot similarity, no normalize"
            )
        if self.xtr_k_train is not None and (self.mode != "multi_vector" or self.xtr_k_train < 1):
            raise ValueError("BiEncoderConfig: xtr_k_train (XTR) needs mode='multi_vector' and k >= 1")

    def viewer_token_names(self) -> list[str]:
        """The MVR viewer tokens, in the order they follow ``[CLS]``."""
        return [f"[VIE{i}]" for i in range(self.viewer_tokens or 0)]


class CrossEncoderConfig(_RayirConfig):
    """Query and document are encoded together; a head turns the joint encoding into a score.

    ``mode``:

    Query and document are tokenised as one pair, truncated longest-first to ``max_length`` tokens.
    ``query_max_length`` / ``doc_max_length``, when set, first cut each side to its own token count
    (Lightning IR's rule; its checkpoints load with them set).

    - ``sequence_classification``: the backbone is loaded as ``AutoModelForSequenceClassification``
      (the layout of the public MS MARCO cross-encoders and of sentence-transformers'
      ``CrossEncoder``); the score is the raw logit at ``label_index``.
    - ``pointwise``: backbone ``AutoModel``, ``pooling`` over the joint sequence (then, with
      ``pooler_dense``, a dense layer and ``tanh``: BERT's pooler), then a linear layer to one
      score (monoBERT / monoELECTRA style heads trained by rayir); ``score_head="two_class"``
      makes it two logits and the score the log-probability of the second (relevant) class.
    - ``mono_t5``: an encoder-decoder ranker reading ``"Query: q Document: d Relevant:"``; the score
      is the log-probability of ``true_token`` against ``false_token`` at the first decoder step.
    - ``rank_t5``: encoder-decoder; the score is the raw first-step logit of ``score_token``.
    - ``listwise``: each (query, doc) pair is pooled as in ``pointwise``, then
      ``listwise_layers`` transformer layers let the pooled vectors of one query's candidates
      attend to each other before the linear head. Scores therefore depend on the whole candidate
      list and are permutation-equivariant within it.
    - ``set_encoder``: listwise inside the backbone (Set-Encoder): every self-attention layer lets
      each pair's tokens also attend to the first-token states of the query's other candidates
      (keys and values from the same projections), then the ``pointwise`` head. BERT and ELECTRA
      backbones. Permutation-equivariant too; a list is never padded with sampled candidates.
    """

    model_type: ClassVar[str] = "rayir-cross-encoder"

    mode: Literal["sequence_classification", "pointwise", "mono_t5", "rank_t5", "listwise", "set_encoder"] = "pointwise"
    max_length: int = 512
    query_max_length: int | None = None
    doc_max_length: int | None = None
    pooling: Literal["first", "mean"] = "first"
    pooler_dense: bool = False
    score_head: Literal["linear", "two_class"] = "linear"
    label_index: int = 0
    true_token: str = "true"
    false_token: str = "false"
    score_token: str = "<extra_id_10>"
    listwise_layers: int = 1
    listwise_heads: int = 4

    def validate(self) -> None:
        super().validate()
        if self.max_length < 2:
            raise ValueError("CrossEncoderConfig: max_length must be >= 2")
        for name in ("query_max_length", "doc_max_length"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"CrossEncoderConfig: {name} must be positive (or None)")
        if (self.pooler_dense or self.score_head != "linear") and self.mode not in (
            "pointwise",
            "listwise",
            "set_encoder",
        ):
            raise ValueError("CrossEncoderConfig: pooler_dense / score_head shape the pointwise head only")
        if self.mode == "listwise" and self.listwise_layers < 1:
            raise ValueError("CrossEncoderConfig: listwise_layers must be >= 1")

    @property
    def scores_lists(self) -> bool:
        """Whether a query's candidates must be scored together (their scores depend on each other)."""
        return self.mode in ("listwise", "set_encoder")
