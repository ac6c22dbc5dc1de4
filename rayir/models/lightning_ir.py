"""Lightning IR checkpoints loaded as the equivalent rayir models.

Lightning IR (0.0.6) saves a model as its backbone's weights at the top level (``embeddings.*``,
``encoder.*``) plus its own layers (``projection.*`` for DPR, Col and SPLADE; ``linear.*`` for
mono), and one ``config.json`` holding the backbone's settings, ``backbone_model_type`` and its
own ``model_type``:

============  =====================================================================
``lir-dpr``   dense bi-encoder: pooling, optional linear projection, dot or cosine
``col``       multi-vector (ColBERT-style): projection, MaxSim, ``[MASK]`` query expansion,
              ``[QUE]``/``[DOC]`` markers, punctuation masked in documents
``splade``    learned sparse: the backbone's MLM head, ``log(1 + relu)``, max or sum pooling
``mvr``       multi-view (MVR): ``[VIE0..n]`` viewer tokens after ``[CLS]`` in documents, the
              query's first-token vector, MaxSim over the views
``unicoil``   learned sparse with one ``relu`` weight per input token (``token_projection``)
``coil``      COIL: ``cls_projection`` of the first token plus ``token_projection`` token vectors
              matched by vocabulary id
``mono``      pointwise cross-encoder with a linear head (``scoring_strategy="rank"``) or a
              two-class log-softmax head (``"mono"``), optionally BERT's pooler (``bert_pool``)
``set-encoder``  the ``mono`` head over a backbone whose attention also reads the other
              candidates' first tokens (rayir's ``set_encoder`` mode)
============  =====================================================================

Settings rayir cannot reproduce exactly (an encoder-decoder ``mono`` model, static SPLADE weights,
document expansion, a Set-Encoder's ``[INT]`` token...) are refused by name rather than
approximated. A Set-Encoder's ``depth``/``sample_missing_docs`` pad short candidate lists with
randomly sampled states in Lightning IR; rayir scores the real candidates only (deterministic; the
same scores whenever a list holds ``depth`` candidates).
``k_train`` (XTR's in-batch token retrieval) only changes training and is not read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import CONFIG_MAPPING, AutoModel, AutoModelForMaskedLM, PreTrainedTokenizerBase

from ..checkpoints import LIGHTNING_IR_BI_ENCODERS, LIGHTNING_IR_CROSS_ENCODERS, lightning_ir_type
from ..errors import ConfigError
from .bi_encoder import BiEncoderModel, uses_mlm_head
from .config import BiEncoderConfig, CrossEncoderConfig
from .cross_encoder import CrossEncoderModel
from .weights import load_state, read_json

MARKERS = ("[QUE]", "[DOC]")
# Lightning IR's own layers beside the backbone's weights
LIGHTNING_IR_HEADS = ("projection.", "token_projection.", "cls_projection.", "linear.", "bert_pool.")


def bi_encoder_settings(path: Path, config: dict[str, Any], state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """rayir :class:`~rayir.models.config.BiEncoderConfig` settings for a Lightning IR bi-encoder."""
    model_type = _supported(path, config, LIGHTNING_IR_BI_ENCODERS)
    similarity = config.get("similarity_function", "dot")
    if similarity not in ("dot", "cosine"):
        _refuse(path, f"similarity_function={similarity!r}")
    lengths = _lengths(path, config)
    if model_type == "lir-dpr":
        if config.get("sparsification_strategy") or config.get("sparsification"):
            _refuse(path, "a sparsified DPR model")
        if config.get("add_marker_tokens"):
            _refuse(path, "marker tokens on a single-vector model")
        projection = config.get("projection")
        return {
            "mode": "dense",
            "pooling": config.get("pooling_strategy", "mean"),
            "embedding_dim": _projection_dim(path, state) if projection else None,
            "projection_bias": projection != "linear_no_bias",
            "normalize": bool(config.get("normalize")) or config.get("normalization_strategy") == "l2",
            "similarity": similarity,
            **lengths,
        }
    if model_type == "mvr":
        if config.get("add_marker_tokens"):
            _refuse(path, "marker tokens on an MVR model")
        projection = config.get("projection")
        return {
            "mode": "multi_vector",
            "pooling": None,
            "embedding_dim": _projection_dim(path, state) if projection else None,
            "projection_bias": projection != "linear_no_bias",
            "normalize": config.get("normalization_strategy") == "l2",
            "similarity": similarity,
            "viewer_tokens": int(config.get("num_viewer_tokens") or 0) or _refuse(path, "no viewer tokens"),
            **lengths,
        }
    if model_type == "coil":
        if config.get("add_marker_tokens"):
            _refuse(path, "marker tokens on a COIL model")
        if similarity != "dot":
            _refuse(path, f"similarity_function={similarity!r} on a COIL model")
        if config.get("query_aggregation_function", "sum") != "sum":
            _refuse(path, f"query_aggregation_function={config.get('query_aggregation_function')!r}")
        if config.get("doc_aggregation_function", "max") != "max":
            _refuse(path, f"doc_aggregation_function={config.get('doc_aggregation_function')!r}")
        return {
            "mode": "coil",
            "pooling": None,
            "embedding_dim": _projection_dim(path, state, "token_projection"),
            "cls_embedding_dim": _projection_dim(path, state, "cls_projection"),
            "projection_bias": config.get("projection", "linear") != "linear_no_bias",
            **lengths,
        }
    if model_type == "unicoil":
        return {
            "mode": "sparse",
            "pooling": None,
            "sparse_weighting": "token",
            "projection_bias": config.get("projection", "linear") != "linear_no_bias",
            **lengths,
        }
    if model_type == "col":
        if config.get("query_mask_scoring_tokens") is not None:
            _refuse(path, f"query_mask_scoring_tokens={config['query_mask_scoring_tokens']!r}")
        if config.get("doc_mask_scoring_tokens") not in (None, "punctuation"):
            _refuse(path, f"doc_mask_scoring_tokens={config['doc_mask_scoring_tokens']!r}")
        if config.get("doc_expansion"):
            _refuse(path, "doc_expansion")
        if config.get("query_aggregation_function", "sum") not in ("sum", "mean"):
            _refuse(path, f"query_aggregation_function={config.get('query_aggregation_function')!r}")
        if config.get("doc_aggregation_function", "max") != "max":
            _refuse(path, f"doc_aggregation_function={config.get('doc_aggregation_function')!r}")
        markers = dict(zip(("query_marker", "doc_marker"), MARKERS)) if config.get("add_marker_tokens") else {}
        return {
            "mode": "multi_vector",
            "pooling": None,
            "embedding_dim": _projection_dim(path, state),
            "projection_bias": config.get("projection", "linear") != "linear_no_bias",
            "normalize": config.get("normalization_strategy") == "l2",
            "similarity": similarity,
            "query_aggregation": config.get("query_aggregation_function", "sum"),
            "query_expansion": bool(config.get("query_expansion")),
            "attend_to_query_expansion": bool(config.get("attend_to_query_expanded_tokens")),
            "mask_punctuation": config.get("doc_mask_scoring_tokens") == "punctuation",
            **markers,
            **lengths,
        }
    # splade
    if config.get("sparsification_strategy", "relu_log") != "relu_log":
        _refuse(path, f"sparsification_strategy={config.get('sparsification_strategy')!r}")
    if config.get("doc_weighting", "contextualized") != "contextualized" or not config.get("doc_expansion", True):
        _refuse(path, "documents without contextualized weights and expansion")
    query_free = config.get("query_weighting", "contextualized") is None
    if not query_free and (config.get("query_weighting") != "contextualized" or not config.get("query_expansion")):
        _refuse(path, f"query_weighting={config.get('query_weighting')!r} without query expansion")
    if config.get("add_marker_tokens"):
        _refuse(path, "marker tokens on a SPLADE model")
    return {
        "mode": "sparse",
        "pooling": None,
        "sparse_pooling": config.get("pooling_strategy", "max"),
        "query_inference_free": query_free,
        **lengths,
    }


def cross_encoder_settings(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """rayir :class:`~rayir.models.config.CrossEncoderConfig` settings for a Lightning IR ``mono`` or
    ``set-encoder`` model."""
    model_type = _supported(path, config, LIGHTNING_IR_CROSS_ENCODERS)
    if model_type == "set-encoder" and config.get("add_extra_token"):
        _refuse(path, "add_extra_token (an [INT] token)")
    scoring = config.get("scoring_strategy", "rank")
    if scoring not in ("rank", "mono"):
        _refuse(path, f"scoring_strategy={scoring!r}")
    pooling = config.get("pooling_strategy", "first")
    pooling = "first" if pooling == "bert_pool" else pooling
    if pooling not in ("first", "mean"):
        _refuse(path, f"pooling_strategy={pooling!r}")
    if config.get("backbone_model_type") == "t5" or config.get("is_encoder_decoder"):
        _refuse(path, "an encoder-decoder mono model")
    lengths = _lengths(path, config)
    return {
        "mode": "set_encoder" if model_type == "set-encoder" else "pointwise",
        "pooling": pooling,
        # "mono": two logits, log-softmax; bert_pool: BERT's dense + tanh pooler after first-token pooling
        "score_head": "two_class" if scoring == "mono" else "linear",
        "pooler_dense": bool(config.get("_bert_pool")) or config.get("pooling_strategy") == "bert_pool",
        # Lightning IR cuts the query and the document to their own lengths, then pairs them.
        **lengths,
        "max_length": lengths["query_max_length"] + lengths["doc_max_length"] + 3,  # [CLS], 2 x [SEP]
    }


def load_bi_encoder(path: Path, overrides: dict[str, Any]) -> tuple[BiEncoderModel, PreTrainedTokenizerBase]:
    """A Lightning IR ``lir-dpr`` / ``col`` / ``splade`` / ``mvr`` / ``unicoil`` / ``coil`` checkpoint as a
    rayir bi-encoder."""
    config, state = read_json(path / "config.json"), load_state(path)
    settings = {**bi_encoder_settings(path, config, state), **overrides}
    masked_lm = uses_mlm_head(settings["mode"], settings.get("sparse_weighting"))
    encoder = _backbone(path, config, state, masked_lm=masked_lm)
    model = BiEncoderModel(BiEncoderConfig(encoder_config=encoder.config, **settings), encoder=encoder)
    if model.projection is not None:
        # UniCOIL and COIL keep their per-token layer as ``token_projection``.
        token_layer = settings.get("sparse_weighting") == "token" or settings["mode"] == "coil"
        model.projection.load_state_dict(_layer(state, "token_projection" if token_layer else "projection"))
    if model.cls_projection is not None:
        model.cls_projection.load_state_dict(_layer(state, "cls_projection"))
    return model.eval(), _tokenizer(path)


def load_cross_encoder(path: Path, overrides: dict[str, Any]) -> tuple[CrossEncoderModel, PreTrainedTokenizerBase]:
    """A Lightning IR ``mono`` (``set-encoder``) checkpoint as a rayir pointwise (``set_encoder``) cross-encoder."""
    config, state = read_json(path / "config.json"), load_state(path)
    settings = {**cross_encoder_settings(path, config), **overrides}
    encoder = _backbone(path, config, state)
    model = CrossEncoderModel(CrossEncoderConfig(encoder_config=encoder.config, **settings), encoder=encoder)
    head = _layer(state, "linear")
    head.setdefault("bias", torch.zeros(head["weight"].shape[0]))  # no bias unless linear_bias
    model.head.load_state_dict(head)
    if model.pooler is not None:
        model.pooler[0].load_state_dict(_layer(state, "bert_pool.0"))
    return model.eval(), _tokenizer(path)


def _backbone(
    path: Path, config: dict[str, Any], state: dict[str, torch.Tensor], masked_lm: bool = False
) -> torch.nn.Module:
    """The backbone with Lightning IR's weights (for SPLADE: with its MLM head)."""
    backbone_type = config["backbone_model_type"]
    if backbone_type not in CONFIG_MAPPING:
        raise ConfigError(f"{path}: unknown backbone_model_type {backbone_type!r}")
    settings = {k: v for k, v in config.items() if k not in ("model_type", "architectures", "auto_map")}
    backbone_config = CONFIG_MAPPING[backbone_type](**settings)
    if masked_lm:
        if backbone_type != "bert":
            _refuse(path, f"a SPLADE model on a {backbone_type!r} backbone (BERT only here)")
        encoder = AutoModelForMaskedLM.from_config(backbone_config)
        # Lightning IR keeps the MLM head as ``projection``; BertForMaskedLM calls it ``cls``.
        state = {
            ("cls." + k.removeprefix("projection.") if k.startswith("projection.") else "bert." + k): v
            for k, v in state.items()
        }
    else:
        options = {"add_pooling_layer": False} if backbone_type == "bert" else {}
        encoder = AutoModel.from_config(backbone_config, **options)
        state = {k: v for k, v in state.items() if not k.startswith(LIGHTNING_IR_HEADS)}
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    tied = set(getattr(encoder, "_tied_weights_keys", None) or ())  # the MLM decoder shares the embeddings
    missing = [k for k in missing if "position_ids" not in k and k not in tied and not k.endswith("decoder.weight")]
    unexpected = [k for k in unexpected if "position_ids" not in k and not k.startswith("pooler.")]
    if missing or unexpected:
        raise ConfigError(
            f"{path}: Lightning IR weights do not fit the backbone (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    if masked_lm:
        encoder.tie_weights()
    return encoder


def _tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """The saved tokenizer read with the backbone's own class (``backbone_tokenizer_class``; the saved
    ``tokenizer_class`` names a Lightning IR wrapper that ``transformers`` does not know)."""
    import transformers

    settings_file = path / "tokenizer_config.json"
    name = read_json(settings_file).get("backbone_tokenizer_class") if settings_file.exists() else None
    tokenizer_cls = getattr(transformers, name, None) if name else None
    if tokenizer_cls is None:
        raise ConfigError(f"{settings_file}: no backbone_tokenizer_class that transformers knows (found {name!r})")
    return tokenizer_cls.from_pretrained(str(path))


def _layer(state: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The weights of one Lightning IR layer (``projection`` or ``linear``), prefix removed."""
    return {k.removeprefix(f"{name}."): v for k, v in state.items() if k.startswith(f"{name}.")}


def _projection_dim(path: Path, state: dict[str, torch.Tensor], name: str = "projection") -> int:
    """The output size of the saved projection (Lightning IR does not always write ``embedding_dim``)."""
    weight = _layer(state, name).get("weight")
    if weight is None:
        _refuse(path, "a projection setting but no projection weights")
    return int(weight.shape[0])


def _lengths(path: Path, config: dict[str, Any]) -> dict[str, int]:
    lengths = {"query_max_length": config.get("query_length"), "doc_max_length": config.get("doc_length")}
    for name, value in lengths.items():
        if not isinstance(value, int) or value < 1:
            _refuse(path, f"{name.split('_')[0]} length {value!r} (rayir needs a maximum length)")
    return lengths


def _supported(path: Path, config: dict[str, Any], allowed: tuple[str, ...]) -> str:
    model_type = lightning_ir_type(config)
    if model_type not in allowed:
        bi, cross = ", ".join(LIGHTNING_IR_BI_ENCODERS), ", ".join(LIGHTNING_IR_CROSS_ENCODERS)
        raise ConfigError(
            f"{path}: a Lightning IR {model_type!r} model; rayir loads Lightning IR {bi} bi-encoders and {cross} "
            "cross-encoders"
        )
    return model_type


def _refuse(path: Path, what: str) -> None:
    raise ConfigError(f"{path}: Lightning IR checkpoint with {what}: rayir has no exact equivalent")
