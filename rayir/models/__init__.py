"""Model configs, models, tokenisation and checkpoint loaders."""

from .bi_encoder import BiEncoderModel, Embeddings
from .config import BiEncoderConfig, CrossEncoderConfig
from .cross_encoder import CrossEncoderModel
from .loaders import load_bi_encoder, load_cross_encoder
from .tokenization import BiEncoderTokenizer, CrossEncoderTokenizer

__all__ = [
    "BiEncoderConfig",
    "BiEncoderModel",
    "BiEncoderTokenizer",
    "CrossEncoderConfig",
    "CrossEncoderModel",
    "CrossEncoderTokenizer",
    "Embeddings",
    "load_bi_encoder",
    "load_cross_encoder",
]
