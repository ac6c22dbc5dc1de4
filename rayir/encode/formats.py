"""The Parquet layout of embedding shards, one schema per representation.

============  ===========================================================================
dense         ``doc_id`` string, ``embedding`` list<float32> (``dim`` values)
multi_vector  ``doc_id`` string, ``num_tokens`` int32, ``token_embeddings`` list<float32>
              (``num_tokens * dim`` values, token-major: token 0's vector first)
sparse        ``doc_id`` string, ``terms`` list<int32> (vocabulary ids, ascending),
              ``weights`` list<float32> (same length, all > 0)
coil          ``doc_id`` string, ``first`` list<float32> (the first token's vector),
              ``num_tokens`` int32, ``token_ids`` list<int32> (``num_tokens`` vocabulary ids),
              ``token_embeddings`` list<float32> (``num_tokens * dim`` values, token-major)
============  ===========================================================================

Multi-vector and COIL shards keep only the tokens that take part in scoring (padding and, when configured,
punctuation are dropped). A shard's schema metadata ``rayir.truncated`` counts its documents cut at
``doc_max_length`` (absent: none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from ..models.bi_encoder import Embeddings

SCHEMAS = {
    "dense": pa.schema([("doc_id", pa.string()), ("embedding", pa.list_(pa.float32()))]),
    "multi_vector": pa.schema(
        [("doc_id", pa.string()), ("num_tokens", pa.int32()), ("token_embeddings", pa.list_(pa.float32()))]
    ),
    "sparse": pa.schema(
        [("doc_id", pa.string()), ("terms", pa.list_(pa.int32())), ("weights", pa.list_(pa.float32()))]
    ),
    "coil": pa.schema(
        [
            ("doc_id", pa.string()),
            ("first", pa.list_(pa.float32())),
            ("num_tokens", pa.int32()),
            ("token_ids", pa.list_(pa.int32())),
            ("token_embeddings", pa.list_(pa.float32())),
        ]
    ),
}


TRUNCATED = b"rayir.truncated"


def with_truncated(table: pa.Table, count: int) -> pa.Table:
    """``table`` carrying the number of its documents that were cut at the model's length limit."""
    return table.replace_schema_metadata({**(table.schema.metadata or {}), TRUNCATED: str(count).encode()})


def truncated_in(path: str) -> int:
    """The truncated-document count a shard file carries (its Parquet footer only is read)."""
    import pyarrow.parquet as pq

    return int((pq.read_schema(path).metadata or {}).get(TRUNCATED, b"0"))


def _list_array(flat: np.ndarray, lengths: np.ndarray, value_type: pa.DataType) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=value_type))


def embeddings_to_table(mode: str, doc_ids: Sequence[str], embeddings: Embeddings) -> pa.Table:
    """Arrow table (see module docstring) for ``embeddings`` of ``doc_ids`` in the same order."""
    import torch

    vectors = embeddings.vectors.detach().to("cpu", torch.float32)
    ids = pa.array(list(doc_ids), type=pa.string())
    if mode == "dense":
        dim = vectors.shape[1]
        flat = vectors.numpy().reshape(-1)
        column = _list_array(flat, np.full(len(doc_ids), dim), pa.float32())
        return pa.Table.from_arrays([ids, column], schema=SCHEMAS["dense"])
    if mode == "multi_vector":
        mask = embeddings.mask.to("cpu").bool()
        counts = mask.sum(dim=1).numpy().astype(np.int32)
        flat = vectors[mask].numpy().reshape(-1)  # row-major: doc 0's tokens, then doc 1's...
        column = _list_array(flat, counts * vectors.shape[2], pa.float32())
        return pa.Table.from_arrays([ids, pa.array(counts, pa.int32()), column], schema=SCHEMAS["multi_vector"])
    if mode == "sparse":
        rows, terms = torch.nonzero(vectors > 0, as_tuple=True)  # row-major, terms ascending per row
        weights = vectors[rows, terms].numpy()
        counts = np.bincount(rows.numpy(), minlength=len(doc_ids))
        return pa.Table.from_arrays(
            [
                ids,
                _list_array(terms.numpy().astype(np.int32), counts, pa.int32()),
                _list_array(weights, counts, pa.float32()),
            ],
            schema=SCHEMAS["sparse"],
        )
    if mode == "coil":
        mask = embeddings.mask.to("cpu").bool()
        counts = mask.sum(dim=1).numpy().astype(np.int32)
        first = embeddings.first.detach().to("cpu", torch.float32)
        token_ids = embeddings.token_ids.to("cpu")[mask].numpy().astype(np.int32)
        return pa.Table.from_arrays(
            [
                ids,
                _list_array(first.numpy().reshape(-1), np.full(len(doc_ids), first.shape[1]), pa.float32()),
                pa.array(counts, pa.int32()),
                _list_array(token_ids, counts, pa.int32()),
                _list_array(vectors[mask].numpy().reshape(-1), counts * vectors.shape[2], pa.float32()),
            ],
            schema=SCHEMAS["coil"],
        )
    raise ValueError(f"unknown mode {mode!r}")


def coil_arrays(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A COIL shard's first-token matrix ``(rows, C)``, per-doc token counts, every token's vocabulary
    id ``(total,)`` and vector ``(total, dim)``."""
    first = table.column("first").combine_chunks()
    flat_first = first.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    first_matrix = flat_first.reshape(len(first), -1) if len(first) else np.zeros((0, 0), np.float32)
    token_ids = table.column("token_ids").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    tokens, counts = token_matrix(table)
    return first_matrix, counts, token_ids.astype(np.int32, copy=False), tokens


def dense_matrix(table: pa.Table) -> np.ndarray:
    """``(rows, dim)`` float32 matrix of a dense shard table."""
    column = table.column("embedding").combine_chunks()
    if len(column) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(column), -1)


def token_matrix(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """All token vectors of a multi-vector shard ``(total_tokens, dim)`` and per-doc counts."""
    counts = table.column("num_tokens").to_numpy().astype(np.int64)
    flat = table.column("token_embeddings").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    total = int(counts.sum())
    return flat.astype(np.float32, copy=False).reshape(total, -1) if total else flat.reshape(0, 0), counts


def sparse_rows(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR pieces of a sparse shard: ``indptr`` (rows + 1), ``terms``, ``weights``."""
    terms = table.column("terms").combine_chunks()
    weights = table.column("weights").combine_chunks()
    indptr = terms.offsets.to_numpy().astype(np.int64)
    indptr = indptr - indptr[0]
    return (
        indptr,
        terms.flatten().to_numpy(zero_copy_only=False).astype(np.int32, copy=False),
        weights.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False),
    )
