"""Export a dense rayir bi-encoder as a sentence-transformers directory; merge a LoRA adapter
checkpoint into a plain rayir checkpoint.

A model fine-tuned with ``rayir fit`` is saved in rayir's own layout (``model_type:
rayir-bi-encoder``), which sentence-transformers cannot read. The export builds the equivalent
sentence-transformers pipeline with that library's own modules — Transformer (the backbone and
tokenizer), Pooling, an identity-activation Dense for a projection, Normalize — so that
``SentenceTransformer(directory).encode(texts)`` gives rayir's document vectors. The directory is
what the Hub's ``upload_folder`` takes (see the README).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import ConfigError
from .loaders import load_bi_encoder, load_cross_encoder

# rayir pooling -> sentence-transformers pooling mode
_POOLING = {"first": "cls", "mean": "mean", "max": "max"}


def export_sentence_transformers(checkpoint: str | Path, output: str | Path) -> Path:
    """Write ``checkpoint`` (any layout rayir loads as a dense bi-encoder) to ``output`` as a
    sentence-transformers model; its ``max_seq_length`` is the document length (queries cut at
    ``query_max_length`` in rayir are cut at this longer length there)."""
    try:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
    except ImportError:
        raise ConfigError("exporting needs sentence-transformers: pip install 'rayir[export]'") from None
    import torch

    model, tokenizer = load_bi_encoder(checkpoint)
    config = model.config
    if config.mode != "dense":
        raise ConfigError(f"{checkpoint}: a {config.mode} bi-encoder has no sentence-transformers dense equivalent")
    if config.pooling not in _POOLING:
        raise ConfigError(f"{checkpoint}: pooling={config.pooling!r} has no sentence-transformers equivalent")
    with tempfile.TemporaryDirectory(prefix="rayir-export-") as backbone_dir:
        model.encoder.save_pretrained(backbone_dir)
        tokenizer.save_pretrained(backbone_dir)
        transformer = Transformer(backbone_dir, max_seq_length=config.doc_max_length)
        hidden = config.encoder_config.hidden_size
        modules = [transformer, Pooling(hidden, pooling_mode=_POOLING[config.pooling])]
        if model.projection is not None:
            dense = Dense(
                hidden,
                config.embedding_dim,
                bias=config.projection_bias,
                activation_function=torch.nn.Identity(),
                init_weight=model.projection.weight.detach().clone(),
                init_bias=None if model.projection.bias is None else model.projection.bias.detach().clone(),
            )
            modules.append(dense)
        if config.normalize:
            modules.append(Normalize())
        similarity = "cosine" if config.similarity == "cosine" else "dot"
        exported = SentenceTransformer(modules=modules, similarity_fn_name=similarity, device="cpu")
        exported.save(str(output))
    return Path(output)


def merge_adapter(checkpoint: str | Path, output: str | Path, kind: str = "bi") -> Path:
    """Write ``checkpoint`` (a LoRA adapter checkpoint, :mod:`rayir.models.adapters`) as a plain
    rayir checkpoint in ``output``, the adapter folded into the backbone's weights: it runs without
    the adapter's extra matmuls and no longer needs its base model."""
    model, tokenizer = (load_bi_encoder if kind == "bi" else load_cross_encoder)(checkpoint)
    model.encoder = model.encoder.merge_and_unload()
    output = Path(output)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    return output
