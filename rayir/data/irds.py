"""Adapter from ``ir_datasets`` ids to rayir samples.

An unknown id fails at once; a dataset whose files are not in ``IR_DATASETS_HOME`` and cannot be
downloaded fails with one clear error instead of a stack of download retries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..errors import UserError
from .samples import DocSample, QuerySample
from .sources import join_title


class DatasetUnavailableError(UserError, RuntimeError):
    """A path that does not exist, an unknown ``ir_datasets`` id, or one whose files are neither local
    nor downloadable."""


def load_irds(dataset_id: str) -> Any:
    """The ir_datasets dataset (nothing is downloaded yet). A source without the ``irds:`` prefix
    that ir_datasets does not know is reported as the missing path it most likely is."""
    import ir_datasets

    from .registry import ensure_registered

    name = dataset_id.removeprefix("irds:")
    ensure_registered(name)  # a local collection registered under this name (see registry.py)
    try:
        return ir_datasets.load(name)
    except KeyError:
        if dataset_id.startswith("irds:"):
            raise DatasetUnavailableError(f"{name!r} is not an ir_datasets id (see ir-datasets.com)") from None
        raise DatasetUnavailableError(
            f"{dataset_id}: no such file or directory (nor is it an ir_datasets id; write irds:<id> for one)"
        ) from None


def _guarded(dataset_id: str, what: str, iterator_factory) -> Iterator:
    try:
        iterator = iterator_factory()
        first = next(iterator, None)
    except (RuntimeError, OSError, ConnectionError) as err:
        raise DatasetUnavailableError(
            f"ir_datasets {dataset_id!r}: the {what} are not in IR_DATASETS_HOME and could not be downloaded "
            f"({type(err).__name__}: {str(err)[:200]}). Fetch them on a machine with network access, or use a "
            "local file instead."
        ) from None
    if first is None:
        return
    yield first
    yield from iterator


def _text_of(record: Any) -> str:
    if hasattr(record, "default_text"):
        return record.default_text()
    return join_title(getattr(record, "title", None), getattr(record, "text", None))


def irds_docs(dataset_id: str) -> Iterator[DocSample]:
    dataset = load_irds(dataset_id)
    if not dataset.has_docs():
        raise DatasetUnavailableError(f"ir_datasets {dataset_id!r} has no documents")
    for doc in _guarded(dataset_id, "documents", lambda: iter(dataset.docs_iter())):
        yield DocSample(str(doc.doc_id), _text_of(doc))


def irds_queries(dataset_id: str) -> Iterator[QuerySample]:
    dataset = load_irds(dataset_id)
    if not dataset.has_queries():
        raise DatasetUnavailableError(f"ir_datasets {dataset_id!r} has no queries")
    for query in _guarded(dataset_id, "queries", lambda: iter(dataset.queries_iter())):
        yield QuerySample(str(query.query_id), _text_of(query))


def irds_qrels(dataset_id: str) -> dict[str, dict[str, int]]:
    dataset = load_irds(dataset_id)
    if not dataset.has_qrels():
        raise DatasetUnavailableError(f"ir_datasets {dataset_id!r} has no qrels")
    qrels: dict[str, dict[str, int]] = {}
    for qrel in _guarded(dataset_id, "qrels", lambda: iter(dataset.qrels_iter())):
        qrels.setdefault(str(qrel.query_id), {})[str(qrel.doc_id)] = int(qrel.relevance)
    return qrels


def irds_scoreddocs(dataset_id: str) -> dict[str, dict[str, float]]:
    """The dataset's scored documents (a run, e.g. the official BM25 top-1000) as ``{qid: {docid: score}}``."""
    dataset = load_irds(dataset_id)
    if not dataset.has_scoreddocs():
        raise DatasetUnavailableError(f"ir_datasets {dataset_id!r} has no scoreddocs (a run)")
    run: dict[str, dict[str, float]] = {}
    for scored in _guarded(dataset_id, "scoreddocs", lambda: iter(dataset.scoreddocs_iter())):
        run.setdefault(str(scored.query_id), {})[str(scored.doc_id)] = float(scored.score)
    return run


def irds_docpairs(dataset_id: str) -> Iterator[tuple[str, str, str]]:
    """``(query id, positive doc id, negative doc id)`` of the dataset's document pairs, streamed."""
    dataset = load_irds(dataset_id)
    if not dataset.has_docpairs():
        raise DatasetUnavailableError(f"ir_datasets {dataset_id!r} has no docpairs (training pairs)")
    for pair in _guarded(dataset_id, "docpairs", lambda: iter(dataset.docpairs_iter())):
        yield str(pair.query_id), str(pair.doc_id_a), str(pair.doc_id_b)


def irds_doc_lookup(dataset_id: str) -> Callable[[str], str | None] | None:
    """Random access to the dataset's document texts through ``ir_datasets``' own document store
    (kept in ``IR_DATASETS_HOME``), or ``None`` where there is none to use: a collection registered
    from local files (its store would be written beside the user's files) or one without a store."""
    from .registry import is_registered_locally

    if is_registered_locally(dataset_id):
        return None
    dataset = load_irds(dataset_id)
    if not dataset.has_docs() or not hasattr(dataset, "docs_store"):
        return None
    store = dataset.docs_store()

    def text(doc_id: str) -> str | None:
        try:
            return _text_of(store.get(doc_id))
        except KeyError:
            return None

    return text
