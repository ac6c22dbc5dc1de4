"""The plain files every index shard directory shares.

A shard directory holds ``meta.json`` (backend type and settings), ``doc_ids.parquet`` (its
documents in internal order, for people and verification) and ``ordinals.npy`` (each document's
int64 ordinal: its position in the index's doc-id-sorted ``doc_ids.parquet``), beside the backend's
own files (Faiss index files, ``.npy`` arrays). Nothing is pickled: loading an index from an
untrusted source runs no code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_json, write_with


def save_doc_ids(directory: Path, doc_ids: list[str] | pa.Array) -> None:
    table = pa.table({"doc_id": pa.array(doc_ids, pa.string())})
    write_with(directory / "doc_ids.parquet", lambda tmp: pq.write_table(table, tmp))


def save_meta(directory: Path, meta: dict[str, Any]) -> None:
    write_json(directory / "meta.json", meta)


def finish_shard(directory: Path, doc_ids: list[str], ordinals: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
    """The files every backend writes after its own: doc ids, ordinals, then ``meta.json``."""
    save_doc_ids(directory, doc_ids)
    save_ordinals(directory, ordinals)
    save_meta(directory, meta)
    return meta


def load_meta(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "meta.json").read_text())


def save_array(path: Path, array: np.ndarray) -> None:
    write_with(path, lambda tmp: np.save(tmp.open("wb"), array, allow_pickle=False))


def load_array(path: Path, mmap: bool = False) -> np.ndarray:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def save_ordinals(directory: Path, ordinals: np.ndarray) -> None:
    save_array(directory / "ordinals.npy", np.asarray(ordinals, np.int64))


def load_ordinals(directory: Path) -> np.ndarray:
    path = directory / "ordinals.npy"
    if not path.exists():
        raise FileNotFoundError(f"{directory}: no ordinals.npy; the index was built by an older rayir, rebuild it")
    return load_array(path)
