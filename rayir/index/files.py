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
from ..errors import IntegrityError
from .checks import check_array, check_range


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
    path = directory / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise IntegrityError(f"{path}: missing; the shard is incomplete, rebuild the index") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IntegrityError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("documents"), int) or meta["documents"] < 0:
        raise IntegrityError(f"{path}: not a shard's meta.json (no document count)")
    return meta


def save_array(path: Path, array: np.ndarray) -> None:
    write_with(path, lambda tmp: np.save(tmp.open("wb"), array, allow_pickle=False))


def load_array(path: Path, mmap: bool = False) -> np.ndarray:
    """A ``.npy`` array; a bad header, a truncated body or a pickled object names the file."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise IntegrityError(f"{path}: missing; the shard is incomplete, rebuild the index") from None
    except (ValueError, OSError, EOFError) as err:
        raise IntegrityError(f"{path}: not a readable .npy array ({err})") from None


def load_faiss(path: Path) -> Any:
    """A Faiss index file; Faiss's own error for a corrupt file names the file here."""
    import faiss

    if not path.is_file():
        raise IntegrityError(f"{path}: missing; the shard is incomplete, rebuild the index")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as err:
        raise IntegrityError(f"{path}: not a readable Faiss index ({str(err).splitlines()[0]})") from None


def save_ordinals(directory: Path, ordinals: np.ndarray) -> None:
    save_array(directory / "ordinals.npy", np.asarray(ordinals, np.int64))


def load_ordinals(directory: Path, documents: int) -> np.ndarray:
    """The shard's ordinals: ``documents`` distinct non-negative int64 values (their upper bound,
    the index's document count, is checked by :func:`rayir.index.load_shard`)."""
    path = directory / "ordinals.npy"
    ordinals = check_array(path, load_array(path), np.int64, 1, documents)
    check_range(path, ordinals, 0, np.iinfo(np.int64).max, "ordinals")
    return ordinals
