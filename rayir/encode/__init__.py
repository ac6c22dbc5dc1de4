"""Distributed corpus encoding on Ray Data into Parquet embedding shards."""

from .formats import SCHEMAS, dense_matrix, embeddings_to_table, sparse_rows, token_matrix
from .manifest import read_manifest, verify_manifest
from .pipeline import EncodeResult, encode_corpus
from .worker import ChunkEncoder

__all__ = [
    "SCHEMAS",
    "ChunkEncoder",
    "EncodeResult",
    "dense_matrix",
    "embeddings_to_table",
    "encode_corpus",
    "read_manifest",
    "sparse_rows",
    "token_matrix",
    "verify_manifest",
]
