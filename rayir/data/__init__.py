"""Samples, streaming readers for every input format, TREC IO and datasets."""

from .datasets import DocDataset, DocStore, QrelsDataset, QueryDataset, RunDataset, TupleDataset
from .errors import DataFormatError, DuplicateIdError
from .irds import DatasetUnavailableError
from .readers import read_docs, read_queries
from .samples import DocSample, QuerySample, RankSample
from .trec import Qrels, Run, read_qrels, read_run, write_run

__all__ = [
    "DataFormatError",
    "DatasetUnavailableError",
    "DocDataset",
    "DocSample",
    "DocStore",
    "DuplicateIdError",
    "QrelsDataset",
    "QueryDataset",
    "QuerySample",
    "Qrels",
    "RankSample",
    "Run",
    "RunDataset",
    "TupleDataset",
    "read_docs",
    "read_qrels",
    "read_queries",
    "read_run",
    "write_run",
]
