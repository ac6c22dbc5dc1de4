"""Samples, streaming readers for every input format, TREC IO and datasets.

Names load lazily: reading queries or a run does not import torch (only the datasets do).
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "DataFormatError": "errors",
    "DuplicateIdError": "errors",
    "DatasetUnavailableError": "irds",
    "DocDataset": "datasets",
    "DocStore": "datasets",
    "QrelsDataset": "datasets",
    "QueryDataset": "datasets",
    "RunDataset": "datasets",
    "TupleDataset": "datasets",
    "DocSample": "samples",
    "QuerySample": "samples",
    "RankSample": "samples",
    "read_docs": "readers",
    "read_queries": "readers",
    "Qrels": "trec",
    "Run": "trec",
    "read_qrels": "trec",
    "read_run": "trec",
    "register_dataset": "registry",
    "write_run": "trec",
    "qrels_to_frame": "frames",
    "run_from_frame": "frames",
    "run_to_frame": "frames",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
