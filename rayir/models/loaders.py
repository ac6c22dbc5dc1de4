"""Load any supported checkpoint directory as a rayir model plus tokenizer.

Recognised layouts, checked in this order:

- **rayir** (``config.json`` with ``model_type`` ``rayir-bi-encoder`` / ``rayir-cross-encoder``).
- **sentence-transformers** (``modules.json``): ``Transformer`` → ``Pooling`` → optional
  ``Dense`` → optional ``Normalize``; or ``Transformer`` (MLM) → ``SpladePooling`` for sparse
  encoders. ``max_seq_length`` becomes both maximum lengths.
- **ColBERT** (``architectures: ["HF_ColBERT"]`` or an ``artifact.metadata`` file): a BERT backbone
  saved under ``bert.*`` plus a bias-free ``linear`` projection; ``artifact.metadata`` gives
  lengths, dimension, similarity and markers.
- **Hugging Face heads**: ``*ForMaskedLM`` loads as SPLADE; ``*ForSequenceClassification`` loads
  as a ``sequence_classification`` cross-encoder; T5 checkpoints load as monoT5 (or RankT5 with
  ``mode="rank_t5"``).
- **Lightning IR** (``config.json`` with ``backbone_model_type`` and a Lightning IR ``model_type``:
  ``lir-dpr``, ``col``, ``splade``, ``mvr``, ``unicoil``, ``mono``, ``set-encoder``): see
  :mod:`rayir.models.lightning_ir`.
- **Adapter checkpoints** (an ``adapter/`` directory beside a rayir ``config.json``): the base
  model they name, with the LoRA adapter on its backbone (:mod:`rayir.models.adapters`).
- A **rayir bi-encoder** loaded as a cross-encoder gives its backbone a fresh scoring head (start a
  re-ranker from a bi-encoder fine-tuned on the domain).
- Anything else is a plain backbone with the default config (plus your overrides).

Keyword overrides are applied to the config the layout implies; unknown keys are errors.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)

from ..checkpoints import FRESH_HEAD_WARNING, cross_encoder_head_is_fresh, lightning_ir_kind, resolve_model_dir
from . import adapters, lightning_ir
from .bi_encoder import BiEncoderModel, uses_mlm_head
from .config import BiEncoderConfig, CrossEncoderConfig
from .cross_encoder import CrossEncoderModel
from .weights import load_state, read_json

logger = logging.getLogger(__name__)

ST_POOLING_MODES = {
    "pooling_mode_cls_token": "first",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
}

ST_POOLING_NAMES = {"cls": "first", "mean": "mean", "max": "max"}


def _config(path: Path) -> dict[str, Any]:
    config = path / "config.json"
    return read_json(config) if config.exists() else {}


def _model_type(path: Path) -> str | None:
    return _config(path).get("model_type")


def _architectures(path: Path) -> list[str]:
    return _config(path).get("architectures") or []


def load_tokenizer(path: str | Path, backbone_config: Any = None) -> PreTrainedTokenizerBase:
    """The directory's tokenizer; rayir checkpoints pass their backbone config (their own
    ``config.json`` describes the wrapper, not the tokenizer's model type)."""
    if backbone_config is not None:
        return AutoTokenizer.from_pretrained(str(path), config=backbone_config)
    return AutoTokenizer.from_pretrained(str(path))


# ----------------------------------------------------------------------------- bi-encoders


def load_bi_encoder(name_or_path: str | Path, **overrides: Any) -> tuple[BiEncoderModel, PreTrainedTokenizerBase]:
    """Load a bi-encoder from any supported layout (see module docstring)."""
    path = resolve_model_dir(name_or_path)
    if adapters.is_adapter_checkpoint(path):
        return adapters.load(path, "bi", overrides, load_bi_encoder)
    if _model_type(path) == BiEncoderConfig.model_type:
        config = BiEncoderConfig.from_pretrained(str(path), **overrides)
        model = BiEncoderModel.from_pretrained(str(path), config=config)
        return model, load_tokenizer(path, config.encoder_config)
    if lightning_ir_kind(_config(path)):
        return lightning_ir.load_bi_encoder(path, overrides)
    if (path / "modules.json").exists():
        return _load_sentence_transformers(path, overrides)
    if "HF_ColBERT" in _architectures(path) or (path / "artifact.metadata").exists():
        return _load_colbert(path, overrides)
    if any(a.endswith("ForMaskedLM") for a in _architectures(path)) and overrides.get("mode", "sparse") == "sparse":
        settings = {"mode": "sparse", "pooling": None, **overrides}
        loader = AutoModelForMaskedLM if uses_mlm_head("sparse", settings.get("sparse_weighting")) else AutoModel
        return _wrap_bi_encoder(path, settings, loader)
    settings = dict(overrides)
    loader = (
        AutoModelForMaskedLM if uses_mlm_head(settings.get("mode"), settings.get("sparse_weighting")) else AutoModel
    )
    if settings.get("mode") in ("multi_vector", "sparse", "coil"):
        settings.setdefault("pooling", None)
    return _wrap_bi_encoder(path, settings, loader)


def _wrap_bi_encoder(path: Path, settings: dict[str, Any], loader: type, backbone_path: Path | None = None):
    backbone_path = backbone_path or path
    encoder = loader.from_pretrained(str(backbone_path))
    settings = {**_checkpoint_lengths(path, encoder.config, settings), **settings}
    config = BiEncoderConfig(encoder_config=encoder.config, **settings)
    tokenizer = load_tokenizer(path)
    add_viewer_tokens(encoder, tokenizer, config)
    model = BiEncoderModel(config, encoder=encoder)
    model.eval()
    return model, tokenizer


def add_viewer_tokens(encoder: Any, tokenizer: PreTrainedTokenizerBase, config: BiEncoderConfig) -> None:
    """An MVR model started from a plain backbone: its viewer tokens join the vocabulary as special
    tokens, with new (randomly initialised) embedding rows."""
    missing = [t for t in config.viewer_token_names() if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
        encoder.resize_token_embeddings(len(tokenizer))
        config.encoder_config = encoder.config


def _checkpoint_lengths(path: Path, backbone_config: Any, settings: dict[str, Any]) -> dict[str, int]:
    """Default query and document lengths from the checkpoint's own limit: the tokenizer's
    ``model_max_length`` or the backbone's ``max_position_embeddings``, whichever is smaller (a SPLADE
    MLM directory then reads 256-token queries whole instead of cutting them at 32). ColBERT-style
    query expansion keeps its 32-token queries: there the length is the number of ``[MASK]`` pads."""
    limits = [getattr(backbone_config, "max_position_embeddings", None)]
    tokenizer_config = path / "tokenizer_config.json"
    if tokenizer_config.exists():
        limits.append(read_json(tokenizer_config).get("model_max_length"))
    known = [int(v) for v in limits if isinstance(v, int) and 0 < v < 100_000]
    if not known:
        return {}
    lengths = {"doc_max_length": min(known)}
    if not settings.get("query_expansion"):
        lengths["query_max_length"] = min(known)
    return lengths


def _load_sentence_transformers(path: Path, overrides: dict[str, Any]):
    modules = read_json(path / "modules.json")
    settings: dict[str, Any] = {}
    transformer_dir, dense_dirs = path, []
    is_sparse = False
    for module in sorted(modules, key=lambda m: m["idx"]):
        kind = module["type"].rsplit(".", 1)[-1]
        module_dir = path / module["path"]
        if kind in ("Transformer", "MLMTransformer"):
            transformer_dir = module_dir
            max_len = _st_max_seq_length(module_dir)
            if max_len:
                settings["query_max_length"] = settings["doc_max_length"] = max_len
        elif kind == "Pooling":
            settings["pooling"] = _st_pooling(module_dir)
        elif kind == "Dense":
            dense_dirs.append(module_dir)
        elif kind == "Normalize":
            settings["normalize"] = True
        elif kind == "SpladePooling":
            splade = read_json(module_dir / "config.json")
            if splade.get("activation_function", "relu") != "relu":
                raise ValueError(f"{module_dir}: only relu SPLADE activation is supported")
            settings["sparse_pooling"] = splade.get("pooling_strategy", "max")
            is_sparse = True
        else:
            raise ValueError(f"{path}/modules.json: unsupported sentence-transformers module {module['type']}")
    if is_sparse:
        settings.update(mode="sparse", pooling=None)
        return _wrap_bi_encoder(path, {**settings, **overrides}, AutoModelForMaskedLM, transformer_dir)
    if len(dense_dirs) > 1:
        raise ValueError(f"{path}: more than one Dense module is not supported")
    dense_state = None
    if dense_dirs:
        dense_config = read_json(dense_dirs[0] / "config.json")
        activation = dense_config.get("activation_function", "torch.nn.modules.linear.Identity")
        if not activation.endswith("Identity"):
            raise ValueError(f"{dense_dirs[0]}: Dense activation {activation} is not supported (identity only)")
        settings["embedding_dim"] = int(dense_config["out_features"])
        settings["projection_bias"] = bool(dense_config.get("bias", True))
        dense_state = {k.removeprefix("linear."): v for k, v in load_state(dense_dirs[0]).items()}
    model, tokenizer = _wrap_bi_encoder(path, {**settings, **overrides}, AutoModel, transformer_dir)
    if dense_state is not None:
        model.projection.load_state_dict(dense_state)
    return model, tokenizer


def _st_max_seq_length(module_dir: Path) -> int | None:
    """``max_seq_length``: in ``sentence_bert_config.json`` (v2-v5) or as the tokenizer's
    ``model_max_length`` (v6 writes it there)."""
    st_config = module_dir / "sentence_bert_config.json"
    if st_config.exists() and read_json(st_config).get("max_seq_length"):
        return int(read_json(st_config)["max_seq_length"])
    tokenizer_config = module_dir / "tokenizer_config.json"
    if tokenizer_config.exists():
        value = read_json(tokenizer_config).get("model_max_length")
        if isinstance(value, int) and value < 100_000:
            return value
    return None


def _st_pooling(module_dir: Path) -> str:
    """sentence-transformers pooling config, in both the v2-v5 flags and the v6 ``pooling_mode`` form."""
    pooling = read_json(module_dir / "config.json")
    if "pooling_mode" in pooling:
        modes = pooling["pooling_mode"]
        modes = [modes] if isinstance(modes, str) else list(modes)
        chosen = [ST_POOLING_NAMES.get(m) for m in modes]
    else:
        chosen = [mode for key, mode in ST_POOLING_MODES.items() if pooling.get(key)]
        chosen += [None for k, v in pooling.items() if k.startswith("pooling_mode") and v and k not in ST_POOLING_MODES]
    if len(chosen) != 1 or chosen[0] is None:
        raise ValueError(f"{module_dir}: pooling {pooling} is not supported (exactly one of cls, mean or max)")
    return chosen[0]


def _load_colbert(path: Path, overrides: dict[str, Any]):
    meta_path = path / "artifact.metadata"
    meta = read_json(meta_path) if meta_path.exists() else {}
    state = load_state(path)
    if "linear.weight" not in state:
        raise ValueError(f"{path}: ColBERT checkpoint without a 'linear.weight' projection")
    linear = state["linear.weight"]
    settings: dict[str, Any] = {
        "mode": "multi_vector",
        "pooling": None,
        "embedding_dim": int(meta.get("dim", linear.shape[0])),
        "projection_bias": False,
        "normalize": True,
        "similarity": "cosine" if meta.get("similarity", "cosine") == "cosine" else "dot",
        "query_max_length": int(meta.get("query_maxlen", 32)),
        "doc_max_length": int(meta.get("doc_maxlen", 180)),
        "query_expansion": True,
        "attend_to_query_expansion": bool(meta.get("attend_to_mask_tokens", False)),
        "mask_punctuation": bool(meta.get("mask_punctuation", True)),
        "query_marker": meta.get("query_token_id", "[unused0]"),
        "doc_marker": meta.get("doc_token_id", "[unused1]"),
    }
    encoder_state = {k.removeprefix("bert."): v for k, v in state.items() if k.startswith("bert.")}
    encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(path)), add_pooling_layer=False)
    missing, unexpected = encoder.load_state_dict(encoder_state, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing:
        raise ValueError(f"{path}: ColBERT backbone weights missing: {missing[:5]}")
    config = BiEncoderConfig(encoder_config=encoder.config, **{**settings, **overrides})
    model = BiEncoderModel(config, encoder=encoder)
    model.projection.load_state_dict({"weight": linear})
    model.eval()
    return model, load_tokenizer(path)


# ----------------------------------------------------------------------------- cross-encoders


def load_cross_encoder(name_or_path: str | Path, **overrides: Any) -> tuple[CrossEncoderModel, PreTrainedTokenizerBase]:
    """Load a cross-encoder from any supported layout (see module docstring)."""
    path = resolve_model_dir(name_or_path)
    if adapters.is_adapter_checkpoint(path):
        model, tokenizer = adapters.load(path, "cross", overrides, load_cross_encoder)
        _resolve_head_tokens(model, tokenizer)
        return model, tokenizer
    if _model_type(path) == CrossEncoderConfig.model_type:
        config = CrossEncoderConfig.from_pretrained(str(path), **overrides)
        model = CrossEncoderModel.from_pretrained(str(path), config=config)
        tokenizer = load_tokenizer(path, config.encoder_config)
    elif _model_type(path) == BiEncoderConfig.model_type:
        # A fine-tuned rayir bi-encoder: its backbone (which has learnt the domain) with a fresh head.
        bi_encoder, tokenizer = load_bi_encoder(path)
        if bi_encoder.config.mode == "sparse" or overrides.get("mode", "pointwise") not in (
            "pointwise",
            "listwise",
            "set_encoder",
        ):
            raise ValueError(
                f"{path}: a cross-encoder can start from a dense or multi-vector bi-encoder's "
                "backbone in pointwise, listwise or set_encoder mode only"
            )
        config = CrossEncoderConfig(encoder_config=bi_encoder.encoder.config, **overrides)
        model = CrossEncoderModel(config, encoder=bi_encoder.encoder)
    elif lightning_ir_kind(_config(path)):
        model, tokenizer = lightning_ir.load_cross_encoder(path, overrides)
    else:
        tokenizer = load_tokenizer(path)
        settings = dict(overrides)
        if (path / "modules.json").exists() and _st_max_seq_length(path):
            settings.setdefault("max_length", _st_max_seq_length(path))
        if _model_type(path) == "t5" or AutoConfig.from_pretrained(str(path)).is_encoder_decoder:
            settings.setdefault("mode", "mono_t5")
        elif any(a.endswith("ForSequenceClassification") for a in _architectures(path)):
            settings.setdefault("mode", "sequence_classification")
        loader = {
            "sequence_classification": AutoModelForSequenceClassification,
            "mono_t5": AutoModelForSeq2SeqLM,
            "rank_t5": AutoModelForSeq2SeqLM,
        }.get(settings.get("mode", "pointwise"), AutoModel)
        encoder = loader.from_pretrained(str(path))
        config = CrossEncoderConfig(encoder_config=encoder.config, **settings)
        model = CrossEncoderModel(config, encoder=encoder)
    _resolve_head_tokens(model, tokenizer)
    config_file = path / "config.json"
    if cross_encoder_head_is_fresh(read_json(config_file) if config_file.exists() else {}, overrides.get("mode")):
        logger.warning(FRESH_HEAD_WARNING, name_or_path, model.config.mode)
    model.eval()
    return model, tokenizer


def _resolve_head_tokens(model: CrossEncoderModel, tokenizer: PreTrainedTokenizerBase) -> None:
    cfg = model.config
    if cfg.mode == "mono_t5":
        tokens = [cfg.true_token, cfg.false_token]
    elif cfg.mode == "rank_t5":
        tokens = [cfg.score_token]
    else:
        return
    ids = []
    for token in tokens:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            pieces = tokenizer.encode(token, add_special_tokens=False)
            if len(pieces) != 1:
                raise ValueError(f"{cfg.mode}: {token!r} is not a single token of this tokenizer")
            token_id = pieces[0]
        ids.append(token_id)
    model.set_head_tokens(ids)
