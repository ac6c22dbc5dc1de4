"""Local collections under an ``ir_datasets`` id, so configs name local data the way they name public data.

``register_dataset("local/scifact-cut", docs=..., queries=..., qrels=..., scoreddocs=..., docpairs=...)``
records the files in ``$IR_DATASETS_HOME/rayir-datasets.json`` (default ``~/.ir_datasets``); every
process that later reads ``irds:local/scifact-cut`` — the driver, a Ray worker, another job on
storage that shares the directory — registers it with ``ir_datasets`` from that file on first use.
Files are in the formats ``ir_datasets`` reads: documents and queries as TSV (``id<TAB>text``) or
TREC SGML, qrels as TREC qrels, scored documents as a TREC run, document pairs as
``query<TAB>doc_a<TAB>doc_b`` TSV.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..errors import ConfigError
from ..locks import output_lock

REGISTRY_FILE = "rayir-datasets.json"
_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)*")
PARTS = ("docs", "queries", "qrels", "scoreddocs", "docpairs")


def registry_path() -> Path:
    home = os.environ.get("IR_DATASETS_HOME") or str(Path.home() / ".ir_datasets")
    return Path(home) / REGISTRY_FILE


def register_dataset(name: str, **files: str | Path | None) -> str:
    """Record ``files`` (any of ``docs, queries, qrels, scoreddocs, docpairs``) under ``name``;
    returns the source id, ``irds:<name>``. Registering a name again replaces its entry."""
    name = name.removeprefix("irds:")
    if not _NAME.fullmatch(name):
        raise ConfigError(f"dataset name {name!r}: letters, digits, '.', '-', '_' in '/'-separated parts")
    unknown = sorted(set(files) - set(PARTS))
    if unknown:
        raise ConfigError(f"register_dataset: unknown part(s) {unknown}; expected {', '.join(PARTS)}")
    entry = {}
    for part, path in files.items():
        if path is None:
            continue
        if not Path(path).is_file():
            raise FileNotFoundError(f"{part}={path}: no such file")
        _format(part, Path(path))  # refuse a format ir_datasets cannot read now, not at first use
        entry[part] = str(Path(path).resolve())
    if not entry:
        raise ConfigError(f"register_dataset({name!r}) names no files")
    path = registry_path()
    with output_lock(path):
        registry = _read(path)
        registry[name] = entry
        write_json(path, registry)
    return f"irds:{name}"


def is_registered_locally(name: str) -> bool:
    """Whether ``name`` is a local collection recorded by :func:`register_dataset`."""
    return name.removeprefix("irds:") in _read(registry_path())


def ensure_registered(name: str) -> bool:
    """Register ``name`` with ``ir_datasets`` in this process from the registry file; ``False`` if
    the file does not list it (then it is ``ir_datasets``' own id or unknown)."""
    import ir_datasets
    from ir_datasets.util import LocalDownload

    if name in ir_datasets.registry:
        return True
    entry = _read(registry_path()).get(name)
    if entry is None:
        return False
    parts = [_format(part, Path(file))(LocalDownload(Path(file))) for part, file in entry.items()]
    ir_datasets.registry.register(name, ir_datasets.Dataset(*parts))
    return True


def _format(part: str, path: Path) -> Any:
    """The ``ir_datasets`` format class for one file of a registered dataset."""
    from ir_datasets import formats

    suffix = path.suffix.lower()
    tsv = suffix in (".tsv", ".txt")
    choices = {
        "docs": formats.TsvDocs if tsv else formats.TrecDocs if suffix in (".trec", ".sgml", ".xml") else None,
        "queries": formats.TsvQueries if tsv else formats.TrecQueries if suffix in (".trec", ".xml") else None,
        "qrels": _trec_qrels,
        "scoreddocs": formats.TrecScoredDocs,
        "docpairs": formats.TsvDocPairs if tsv else None,
    }
    chosen = choices[part]
    if chosen is None:
        raise ConfigError(f"{part}={path}: ir_datasets reads {part} as TSV or TREC files, not {suffix or 'this'}")
    return chosen


def _trec_qrels(download: Any) -> Any:
    from ir_datasets.formats import TrecQrels

    return TrecQrels(download, {})


def _read(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err.msg}); fix or remove it") from None
