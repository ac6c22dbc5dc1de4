"""Staging a one-record-per-line corpus file (JSONL, BEIR ``corpus.jsonl``, TSV) by parallel tasks.

The driver only plans and adds up counts; the records never pass through it:

1. **Ranges.** The file is cut into byte ranges; a range owns every line that *starts* inside it.
   One task per range parses its lines (the same line parsers as the streaming readers) into a
   range table plus the sorted 64-bit hashes of its ids, and reports its record and line counts.
2. **Duplicates.** One task merges the hash files and resolves any repeated hash against the real
   ids: a repeated id fails staging, naming it, before anything is encoded.
3. **Chunks.** Chunk *i* holds records ``[i * per_chunk, (i + 1) * per_chunk)`` in file order,
   exactly as sequential staging numbers them; one task per chunk copies its slices of the range
   tables. Then ``plan.json`` is written, and the range files are removed.

A malformed line is reported as ``file:line`` with the line counted across ranges. Compressed
files, TREC SGML, Parquet and ``ir_datasets`` ids keep the single streaming reader.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_json, write_with
from ..data.errors import DataFormatError
from ..data.readers import duplicate_id_error, is_tsv_header, line_format, parse_jsonl_line, parse_tsv_line
from .staging import TEXT_SCHEMA, Chunk, chunk_name, id_hash, load_plan, stage_corpus

BYTES_PER_RANGE = 64 << 20
PARSERS = {"jsonl": parse_jsonl_line, "tsv": parse_tsv_line}


def _range_name(index: int) -> str:
    return f"range-{index:05d}.parquet"


def parse_range(path: str, fmt: str, start: int, end: int, out: str) -> dict[str, Any]:
    """Parse the lines starting in ``[start, end)``; write their records and sorted id hashes."""
    parse = PARSERS[fmt]
    ids: list[str] = []
    texts: list[str] = []
    lines = 0
    with open(path, "rb") as handle:
        if start:
            handle.seek(start - 1)
            handle.readline()  # the line that began before ``start`` belongs to the previous range
        while handle.tell() < end:
            raw = handle.readline()
            if not raw:
                break
            lines += 1
            first_line = start == 0 and lines == 1
            try:
                # A byte-order mark opens the file, not its first id (as ``open_text`` reads it).
                text = raw.decode("utf-8-sig" if first_line else "utf-8")
                if first_line and fmt == "tsv" and is_tsv_header(text):
                    continue
                record = parse(Path(path), lines, text, "doc")
            except DataFormatError as err:
                return {"error": err.problem, "line": lines}
            except UnicodeDecodeError as err:
                return {"error": f"not UTF-8 ({err.reason})", "line": lines}
            if record is not None:
                ids.append(record.doc_id)
                texts.append(record.text)
    table = pa.Table.from_arrays([pa.array(ids, pa.string()), pa.array(texts, pa.string())], schema=TEXT_SCHEMA)
    write_with(Path(out), lambda tmp: pq.write_table(table, tmp))
    hashes = np.sort(np.fromiter((id_hash(i) for i in ids), np.uint64, len(ids)))
    np.save(Path(out).with_suffix(".hashes.npy"), hashes)
    return {"rows": len(ids), "lines": lines}


def find_duplicate(range_files: list[str]) -> str | None:
    """The first id (in file order) that appears twice across all ranges, or ``None``."""
    hashes = np.concatenate([np.load(Path(f).with_suffix(".hashes.npy")) for f in range_files])
    hashes.sort()
    repeated = set(hashes[1:][hashes[1:] == hashes[:-1]].tolist())
    if not repeated:
        return None
    seen: set[str] = set()
    for file in range_files:  # only ids whose hash repeats are kept as strings
        for value in pq.read_table(file, columns=["doc_id"]).column(0).to_pylist():
            if id_hash(value) in repeated:
                if value in seen:
                    return value
                seen.add(value)
    return None  # hash collisions only


def write_chunk(out: str, slices: list[tuple[str, int, int]]) -> int:
    """Chunk file from ``(range table, offset, length)`` slices, in order; returns its rows."""
    table = pa.concat_tables([pq.read_table(f).slice(offset, length) for f, offset, length in slices])
    write_with(Path(out), lambda tmp: pq.write_table(table, tmp))
    return table.num_rows


def stage_lines_in_parallel(
    path: Path,
    fmt: str,
    staging_dir: Path,
    per_chunk: int,
    settings: dict[str, Any],
    run: Any,
    bytes_per_range: int | None = None,
) -> list[Chunk]:
    """Stage ``path`` (``fmt`` ``jsonl`` or ``tsv``) into numbered chunks on ``run``'s tasks."""
    if per_chunk < 1:
        raise ValueError("documents per chunk must be >= 1")
    plan_path = staging_dir / "plan.json"
    if plan_path.exists():
        return load_plan(plan_path, settings)
    ranges_dir = staging_dir / "ranges"
    ranges_dir.mkdir(parents=True, exist_ok=True)
    size = path.stat().st_size
    bounds = list(range(0, size, max(1, bytes_per_range or BYTES_PER_RANGE))) + [size]
    files = [str(ranges_dir / _range_name(i)) for i in range(len(bounds) - 1)]
    parsed = run.map_tasks(parse_range, [(str(path), fmt, a, b, f) for a, b, f in zip(bounds[:-1], bounds[1:], files)])
    lines_before = 0
    for result in parsed:
        if "error" in result:
            raise DataFormatError(path, lines_before + result["line"], result["error"])
        lines_before += result["lines"]
    [duplicate] = run.map_tasks(find_duplicate, [(files,)])
    if duplicate is not None:
        raise duplicate_id_error(path, "doc", duplicate)
    counts = [r["rows"] for r in parsed]
    total = sum(counts)
    if not total:
        raise ValueError(f"{path}: no documents")
    starts = np.concatenate([[0], np.cumsum(counts)])
    jobs, chunks = [], []
    for index, first in enumerate(range(0, total, per_chunk)):
        last = min(first + per_chunk, total)
        slices = []
        for r, file in enumerate(files):
            lo, hi = max(first, starts[r]), min(last, starts[r + 1])
            if lo < hi:
                slices.append((file, int(lo - starts[r]), int(hi - lo)))
        jobs.append((str(staging_dir / chunk_name(index)), slices))
        chunks.append(Chunk(index, chunk_name(index), last - first))
    written = run.map_tasks(write_chunk, jobs)
    if written != [c.rows for c in chunks]:
        raise RuntimeError(f"{path}: chunk row counts {written} differ from the plan")
    write_json(plan_path, {"settings": settings, "chunks": [c.__dict__ for c in chunks], "documents": total})
    shutil.rmtree(ranges_dir, ignore_errors=True)
    return chunks


def stage_documents(
    corpus: str | Path, staging_dir: Path, per_chunk: int, settings: dict[str, Any], run: Any
) -> list[Chunk]:
    """Stage ``corpus`` into numbered chunks: by parallel tasks on Ray when it is a one-record-per-line
    file larger than one byte range, else by the streaming reader (:func:`.staging.stage_corpus`)."""
    lines = None if run.in_process else line_format(corpus)
    if lines is not None and lines[0].stat().st_size > BYTES_PER_RANGE:
        return stage_lines_in_parallel(*lines, staging_dir, per_chunk, settings, run)
    return stage_corpus(corpus, staging_dir, per_chunk, settings)
