"""Streaming readers for documents and queries in every supported format.

A *source* is a path or an ``ir_datasets`` id:

==========================  ==========================================================
BEIR directory              ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``
``*.jsonl`` / ``*.jsonl.gz``  one object a line: id in ``_id``/``doc_id``/``query_id``/``id``,
                            text in ``text`` (documents also ``title``)
``*.tsv``                   ``id<TAB>text`` or ``id<TAB>title<TAB>text``; a first line of column
                            names (``qid<TAB>query``, ``docno<TAB>text``) is a header, skipped
``*.trec`` / TREC SGML      ``<DOC><DOCNO>id</DOCNO> text </DOC>``; topics ``<top><num>…``
``*.parquet``               columns ``doc_id``/``query_id``/``id`` and ``text`` (``title``)
``irds:<id>`` or ``<id>``   any ``ir_datasets`` id (``beir/scifact/test``, ``vaswani``)
==========================  ==========================================================

Document text is ``title + " " + text`` when a title exists (the BEIR/MTEB convention).
Readers yield one record at a time and never hold a collection in memory; malformed records raise
:class:`~rayir.data.errors.DataFormatError` naming the file and line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import DataFormatError, DuplicateIdError, checked_id
from .irds import irds_docs, irds_queries
from .samples import DocSample, QuerySample
from .sources import is_irds_id, join_title, numbered_lines, open_text
from .trec import read_qrels

ID_KEYS = {"doc": ("_id", "doc_id", "docno", "id"), "query": ("_id", "query_id", "qid", "id")}


# ----------------------------------------------------------------------------- dispatch


def read_docs(source: str | Path, check_duplicates: bool = True) -> Iterator[DocSample]:
    """Documents of ``source`` in file order.

    ``check_duplicates`` keeps the ids seen so far and raises :class:`DuplicateIdError` on a repeat
    (memory grows with the number of ids, not with the texts).
    """
    records = (record for _, record in _doc_records(source))
    yield from _unique(records, source, "doc") if check_duplicates else records


def _unique(records: Iterator, source: str | Path, kind: str) -> Iterator:
    """``records`` as they come; a repeated id raises :class:`DuplicateIdError` naming it."""
    seen: set[str] = set()
    for record in records:
        record_id = _id_of(record)
        if record_id in seen:
            raise duplicate_id_error(source, kind, record_id)
        seen.add(record_id)
        yield record


def duplicate_id_error(source: str | Path, kind: str, record_id: str) -> DuplicateIdError:
    """The error for ``record_id`` repeated in ``source``, naming the file and the first two lines
    (or Parquet rows) that hold it: found by reading the source again, so that no reader keeps a
    line number per id."""
    located = _doc_records(source) if kind == "doc" else _query_records(source, None)
    where = list(islice((line for line, record in located if _id_of(record) == record_id), 2))
    file = _file_of(source, kind)
    lines = ""
    if len(where) == 2 and None not in where:
        lines = f" (lines {where[0]} and {where[1]})" if isinstance(where[0], int) else f" ({where[0]} and {where[1]})"
    what = "document" if kind == "doc" else "query"
    return DuplicateIdError(f"{file}: {what} id {record_id!r} appears more than once{lines}")


def _id_of(record: DocSample | QuerySample) -> str:
    return record.doc_id if isinstance(record, DocSample) else record.query_id


def _file_of(source: str | Path, kind: str) -> str | Path:
    if is_irds_id(source) or not Path(source).is_dir():
        return source
    return beir_file(Path(source), "corpus.jsonl" if kind == "doc" else "queries.jsonl")


Located = Iterator[tuple[Any, Any]]  # (line number, "row N" or None; record)


def _doc_records(source: str | Path) -> Located:
    if is_irds_id(source):
        return ((None, doc) for doc in irds_docs(str(source)))
    path = Path(source)
    if path.is_dir():
        return _jsonl(beir_file(path, "corpus.jsonl"), "doc")
    return _by_suffix(path, "doc")


def read_queries(source: str | Path, split: str | None = None, check_duplicates: bool = True) -> Iterator[QuerySample]:
    """Queries of ``source``; for a BEIR directory, ``split`` keeps those judged in ``qrels/<split>.tsv``.

    A repeated query id is a :class:`DuplicateIdError` (which text would a run's query be?) unless
    ``check_duplicates`` is off for a caller that checks in bounded memory itself (batch search).
    """
    records = (record for _, record in _query_records(source, split))
    yield from _unique(records, source, "query") if check_duplicates else records


def _query_records(source: str | Path, split: str | None) -> Located:
    if is_irds_id(source):
        yield from ((None, query) for query in irds_queries(str(source)))
        return
    path = Path(source)
    if not path.is_dir():
        if split is not None:
            raise ValueError(f"{path}: split={split!r} only applies to BEIR directories")
        yield from _by_suffix(path, "query")
        return
    wanted = None
    if split is not None:
        wanted = set(read_qrels(beir_file(path, f"qrels/{split}.tsv")))
    for line, query in _jsonl(beir_file(path, "queries.jsonl"), "query"):
        if wanted is None or query.query_id in wanted:
            yield line, query


def beir_file(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{directory}: not a BEIR directory (no {name})")


def _by_suffix(path: Path, kind: str) -> Located:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    suffixes = [s for s in path.suffixes if s != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in (".jsonl", ".json"):
        return _jsonl(path, kind)
    if suffix in (".tsv", ".txt") and not _looks_like_trec(path):
        return _tsv(path, kind)
    if suffix == ".parquet":
        return _parquet(path, kind)
    if suffix in (".trec", ".sgml", ".xml", ".txt", "") or _looks_like_trec(path):
        return _trec_docs(path) if kind == "doc" else _trec_topics(path)
    raise ValueError(f"{path}: unknown format (expected .jsonl, .tsv, .trec or .parquet)")


def _looks_like_trec(path: Path) -> bool:
    with open_text(path) as handle:
        head = handle.read(512).lstrip().lower()
    return head.startswith("<doc>") or head.startswith("<top>")


def _make(kind: str, record_id: str, text: str):
    return DocSample(record_id, text) if kind == "doc" else QuerySample(record_id, text)


# ----------------------------------------------------------------------------- formats


def _jsonl(path: Path, kind: str) -> Located:
    for line_no, line in numbered_lines(path):
        record = parse_jsonl_line(path, line_no, line, kind)
        if record is not None:
            yield line_no, record


def parse_jsonl_line(path: Path, line_no: int, line: str, kind: str):
    """One JSONL line as a sample (``None`` for a blank line); bad lines name ``path:line_no``."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, line_no, f"invalid JSON ({err.msg})") from None
    if not isinstance(record, dict):
        raise DataFormatError(path, line_no, "expected a JSON object")
    record_id = next((record[k] for k in ID_KEYS[kind] if k in record), None)
    if record_id is None or "text" not in record:
        raise DataFormatError(path, line_no, f"needs an id ({'/'.join(ID_KEYS[kind])}) and 'text'")
    record_id = checked_id(path, line_no, record_id)
    title = record.get("title")
    for field, value in (("text", record["text"]), ("title", title)):
        if not isinstance(value, str) and not (field == "title" and value is None):
            raise DataFormatError(path, line_no, f"'{field}' must be a string, not {value!r}")
    text = join_title(title, record["text"]) if kind == "doc" else record["text"]
    return _make(kind, record_id, text)


_HEADER_IDS = {"_id", "id", "qid", "query_id", "queryid", "docno", "doc_id", "docid", "pid"}
_HEADER_TEXTS = {"text", "query", "title", "body", "passage", "contents", "content", "document", "doc"}


def is_tsv_header(line: str) -> bool:
    """A first line such as ``qid<TAB>query`` or ``docno<TAB>title<TAB>text``: column names, not a record."""
    fields = [f.strip().lower() for f in line.rstrip("\r\n").split("\t")]
    return len(fields) in (2, 3) and fields[0] in _HEADER_IDS and all(f in _HEADER_TEXTS for f in fields[1:])


def _tsv(path: Path, kind: str) -> Located:
    for line_no, line in numbered_lines(path):
        if line_no == 1 and is_tsv_header(line):
            continue
        record = parse_tsv_line(path, line_no, line, kind)
        if record is not None:
            yield line_no, record


def parse_tsv_line(path: Path, line_no: int, line: str, kind: str):
    """One TSV line as a sample (``None`` for a blank line); bad lines name ``path:line_no``."""
    line = line.rstrip("\n").rstrip("\r")
    if not line:
        return None
    fields = line.split("\t")
    if len(fields) == 2:
        record_id, text = fields
    elif len(fields) == 3 and kind == "doc":
        record_id, text = fields[0], join_title(fields[1], fields[2])
    else:
        expected = "id<TAB>text or id<TAB>title<TAB>text" if kind == "doc" else "id<TAB>text"
        raise DataFormatError(path, line_no, f"expected {expected}, found {len(fields)} fields")
    return _make(kind, checked_id(path, line_no, record_id.strip()), text)


def line_format(source: str | Path) -> tuple[Path, str] | None:
    """``(file, "jsonl" | "tsv")`` when ``source``'s documents are one per line of a plain
    (uncompressed) file, which can be split by byte range; else ``None``."""
    if is_irds_id(source):
        return None
    path = Path(source)
    if path.is_dir():
        path = path / "corpus.jsonl"
        return (path, "jsonl") if path.exists() else None
    if path.suffix == ".gz" or not path.exists():
        return None
    if path.suffix in (".jsonl", ".json"):
        return path, "jsonl"
    if path.suffix in (".tsv", ".txt") and not _looks_like_trec(path):
        return path, "tsv"
    return None


def _parquet(path: Path, kind: str) -> Located:
    try:
        yield from _parquet_rows(path, kind)
    except (pa.ArrowException, OSError) as err:  # not Parquet, truncated, a corrupt page
        raise DataFormatError(path, None, f"not a readable Parquet file ({err})") from None


def _parquet_rows(path: Path, kind: str) -> Located:
    parquet = pq.ParquetFile(path)
    columns = set(parquet.schema_arrow.names)
    id_column = next((k for k in (f"{kind}_id", *ID_KEYS[kind]) if k in columns), None)
    if id_column is None or "text" not in columns:
        raise DataFormatError(
            path, None, f"needs an id column ({kind}_id/id) and a 'text' column; has {sorted(columns)}"
        )
    wanted = [id_column, "text"] + (["title"] if kind == "doc" and "title" in columns else [])
    row = 0
    for batch in parquet.iter_batches(columns=wanted, batch_size=4096):
        data = batch.to_pydict()
        titles = data.get("title") or [None] * batch.num_rows
        for record_id, text, title in zip(data[id_column], data["text"], titles):
            row += 1
            if record_id is None or not isinstance(text, str) or not isinstance(title, str | None):
                raise DataFormatError(path, None, f"row {row}: null id, or text/title not a string")
            record_id = checked_id(path, None, record_id, f"row {row}: id")
            yield f"row {row}", _make(kind, record_id, join_title(title, text) if kind == "doc" else text)


_TAG = re.compile(r"<(/?)([A-Za-z]+)>")


def _trec_records(path: Path, record_tag: str) -> Iterator[tuple[int, str]]:
    """Yield ``(start line, body)`` of each ``<record_tag>…</record_tag>`` block, streaming.

    Tags may stand anywhere on a line: one record per line, several records on a line and records
    over many lines all read alike."""
    open_tag, close_tag = f"<{record_tag}>", f"</{record_tag}>"
    tags = re.compile(rf"<(/?){record_tag}>", re.IGNORECASE)
    body: list[str] | None = None
    start = 0
    for line_no, line in numbered_lines(path):
        position = 0
        for match in tags.finditer(line):
            piece, closing = line[position : match.start()], match.group(1) == "/"
            if body is None:
                if piece.strip():
                    raise DataFormatError(path, line_no, f"text outside a {open_tag} record")
                if closing:
                    raise DataFormatError(path, line_no, f"{close_tag} without a {open_tag}")
                body, start = [], line_no
            elif closing:
                yield start, "".join([*body, piece])
                body = None
            else:
                raise DataFormatError(path, line_no, f"{open_tag} opened before the record at line {start} closed")
            position = match.end()
        rest = line[position:]
        if body is not None:
            body.append(rest)
        elif rest.strip():
            raise DataFormatError(path, line_no, f"text outside a {open_tag} record")
    if body is not None:
        raise DataFormatError(path, start, f"record not closed by {close_tag}")


def _trec_docs(path: Path) -> Located:
    for line_no, body in _trec_records(path, "doc"):
        match = re.search(r"<DOCNO>\s*(.*?)\s*</DOCNO>", body, flags=re.IGNORECASE | re.DOTALL)
        if match is None or not match.group(1):
            raise DataFormatError(path, line_no, "<DOC> without a <DOCNO>")
        text = body[: match.start()] + " " + body[match.end() :]
        text = " ".join(_TAG.sub(" ", text).split())
        yield line_no, DocSample(checked_id(path, line_no, match.group(1), "DOCNO"), text)


def _trec_topics(path: Path) -> Located:
    for line_no, body in _trec_records(path, "top"):
        fields: dict[str, str] = {}
        # Each field runs from its tag to the next tag (closing tags optional, as in classic topics).
        pieces = _TAG.split(body)
        for i in range(1, len(pieces) - 2, 3):
            closing, name, content = pieces[i], pieces[i + 1].lower(), pieces[i + 2]
            if not closing and content.strip():
                fields.setdefault(name, " ".join(content.split()))
        number = fields.get("num", "")
        number = re.sub(r"^number:\s*", "", number, flags=re.IGNORECASE).strip()
        if not number or "title" not in fields:
            raise DataFormatError(path, line_no, "<top> needs <num> and <title>")
        yield line_no, QuerySample(number, fields["title"])
