"""Synthetic collections of any size whose statistics come from real data, in rayir's own formats.

Shared by ``scale.py`` and ``driver_memory.py``; everything is generated into a cache directory
given on the command line, never into the repository.

- **Texts (BM25)**: each document is 4-12 sentences drawn from the real sentences of SciFact and
  Vaswani, so term frequencies, document frequencies and lengths are those of real abstracts; each
  query is a 4-10-word span of a random document (its *source*, which should rank high).
- **Dense vectors**: a real MiniLM embedding of a SciFact document plus Gaussian noise
  (``noise`` = the noise vector's norm, 0.5 gives cosine ~0.9 to the source), renormalised: the
  collection keeps the real embeddings' cluster structure, with ~N/5,183 near-copies per real
  document, which makes exact top-k as hard to approximate as on real data. Queries are real
  MiniLM embeddings of SciFact queries with smaller noise.
- **SPLADE vectors**: a real splade-tiny encoding of a SciFact document, each term kept with
  probability ``keep``, weights scaled by log-normal noise, plus terms borrowed from a second
  random real document (probability ``borrow``, half weight): vocabulary ids, document lengths and
  hence posting-list lengths follow the real distribution. Queries are real splade-tiny query
  encodings with jittered weights.

Vectors are written as an embeddings directory (Parquet shards + ``manifest.json``) whose model
and settings are the real encoding's, so ``build_index`` and the query encoder treat it as theirs.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SCIFACT = SHARED / "data" / "scifact"
SPLADE_TINY = SHARED / "models" / "splade-tiny"


# ----------------------------------------------------------------------------------------- texts
def sentences() -> list[str]:
    """Every sentence of SciFact's and Vaswani's documents."""
    found: list[str] = []
    for line in (SCIFACT / "corpus.jsonl").read_text().splitlines():
        found += [s.strip() for s in re.split(r"(?<=[.!?])\s+", json.loads(line)["text"]) if len(s.split()) > 3]
    vaswani = (SHARED / "data" / "vaswani" / "doc-text.trec").read_text()
    for doc in re.findall(r"<DOC>.*?</DOCNO>(.*?)</DOC>", vaswani, re.S):
        found.append(" ".join(doc.split()))
    return found


def write_corpus(path: Path, documents: int, seed: int = 0) -> None:
    """``documents`` JSONL documents ``{"_id": "d<i>", "text": ...}`` of 4-12 real sentences."""
    pool = sentences()
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(documents):
            picked = rng.integers(0, len(pool), rng.integers(4, 13))
            handle.write(json.dumps({"_id": f"d{i}", "text": " ".join(pool[j] for j in picked)}) + "\n")


def write_queries(corpus: Path, path: Path, queries: int, seed: int = 1, rare: bool = False) -> None:
    """JSONL queries ``{"_id", "text", "source"}``: spans of random documents among the first 20k.

    ``rare`` queries are instead the 3 rarest words of the document (fewest of those 20k documents
    hold them): short posting lists, so a million of them answer in minutes against a 1M-document
    index while every query still has hits (the driver-memory benchmark's query sets)."""
    rng = np.random.default_rng(seed)
    with corpus.open(encoding="utf-8") as docs:
        records = [json.loads(line) for _, line in zip(range(20000), docs)]
    frequency: Counter[str] = Counter()
    if rare:
        for record in records:
            frequency.update(set(record["text"].lower().split()))
    with path.open("w", encoding="utf-8") as handle:
        for i in range(queries):
            record = records[int(rng.integers(len(records)))]
            words = record["text"].split()
            if rare:
                alphabetic = {w for w in words if w.isalpha()}
                chosen = sorted(alphabetic, key=lambda w: (frequency[w.lower()], w))[:3] or words[:3]
            else:
                length = int(rng.integers(4, 11))
                start = int(rng.integers(0, max(1, len(words) - length)))
                chosen = words[start : start + length]
            query = {"_id": f"q{i}", "text": " ".join(chosen), "source": record["_id"]}
            handle.write(json.dumps(query) + "\n")


def cached_texts(cache: Path, documents: int, queries: int) -> tuple[Path, Path]:
    """The corpus and query files of these sizes in ``cache`` (generated on first use)."""
    cache.mkdir(parents=True, exist_ok=True)
    corpus, query_file = cache / f"corpus-{documents}.jsonl", cache / f"queries-{documents}-{queries}.jsonl"
    if not corpus.exists():
        write_corpus(corpus.with_suffix(".tmp"), documents)
        corpus.with_suffix(".tmp").rename(corpus)
    if not query_file.exists():
        write_queries(corpus, query_file, queries)
    return corpus, query_file


# --------------------------------------------------------------------------------------- vectors
@dataclass
class Csr:
    """Sparse rows: row ``i`` is ``terms[indptr[i]:indptr[i + 1]]`` (ascending) with ``weights``."""

    indptr: np.ndarray
    terms: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``(row number in rows, position in terms)`` of every entry of ``rows``, in order."""
        lengths = self.indptr[rows + 1] - self.indptr[rows]
        owner = np.repeat(np.arange(len(rows)), lengths)
        starts = np.repeat(self.indptr[rows] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        return owner, starts + np.arange(int(lengths.sum()))


def perturbed_dense(seed: np.ndarray, count: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``count`` unit vectors: random rows of ``seed`` plus noise of norm ~``noise``."""
    base = seed[rng.integers(len(seed), size=count)]
    jitter = rng.standard_normal(base.shape, dtype=np.float32) * np.float32(noise / np.sqrt(seed.shape[1]))
    vectors = base + jitter
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def perturbed_sparse(
    seed: Csr, count: int, rng: np.random.Generator, keep: float = 0.8, jitter: float = 0.2, borrow: float = 0.2
) -> Csr:
    """``count`` sparse rows from random ``seed`` rows (see the module docstring); never empty."""
    owner, position = seed.gather(rng.integers(len(seed), size=count))
    first = np.ones(len(owner), bool)
    first[1:] = owner[1:] != owner[:-1]
    kept = (rng.random(len(owner)) < keep) | first  # the first term always stays: no empty row
    rows, terms = owner[kept], seed.terms[position[kept]].astype(np.int64)
    weights = seed.weights[position[kept]] * np.exp(rng.normal(0.0, jitter, kept.sum())).astype(np.float32)
    if borrow > 0:
        extra_owner, extra_position = seed.gather(rng.integers(len(seed), size=count))
        taken = rng.random(len(extra_owner)) < borrow
        rows = np.concatenate([rows, extra_owner[taken]])
        terms = np.concatenate([terms, seed.terms[extra_position[taken]].astype(np.int64)])
        weights = np.concatenate([weights, 0.5 * seed.weights[extra_position[taken]]])
    key = rows * (int(seed.terms.max()) + 1) + terms
    order = np.argsort(key, kind="stable")
    key, weights = key[order], weights[order]
    starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))  # a term twice: keep the larger
    weights = np.maximum.reduceat(weights, starts).astype(np.float32)
    rows, terms = rows[order][starts], terms[order][starts]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=count))]).astype(np.int64)
    return Csr(indptr, terms.astype(np.int32), weights)


def _list_column(offsets: np.ndarray, values: np.ndarray, value_type: pa.DataType) -> pa.Array:
    return pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), pa.array(values, value_type)).cast(
        pa.list_(value_type)
    )


def dense_table(doc_ids: list[str], vectors: np.ndarray) -> pa.Table:
    offsets = np.arange(len(vectors) + 1, dtype=np.int64) * vectors.shape[1]
    column = _list_column(offsets, vectors.reshape(-1), pa.float32())
    return pa.table({"doc_id": pa.array(doc_ids), "embedding": column})


def sparse_table(doc_ids: list[str], rows: Csr) -> pa.Table:
    return pa.table(
        {
            "doc_id": pa.array(doc_ids),
            "terms": _list_column(rows.indptr, rows.terms, pa.int32()),
            "weights": _list_column(rows.indptr, rows.weights, pa.float32()),
        }
    )


def write_embeddings(directory: Path, template: dict, tables: Iterator[pa.Table]) -> dict:
    """An embeddings directory of the given shard tables, described like the ``template`` manifest
    (a real encoding's: same model, settings and model config)."""
    from rayir.atomic import sha256_file

    (directory / "embeddings").mkdir(parents=True, exist_ok=True)
    shards = []
    for number, table in enumerate(tables):
        path = directory / "embeddings" / f"part-{number:05d}.parquet"
        pq.write_table(table, path)
        shards.append({"file": f"embeddings/{path.name}", "rows": table.num_rows, "sha256": sha256_file(path)})
    manifest = {**template, "shards": shards, "documents": sum(s["rows"] for s in shards)}
    manifest["settings"] = {**template["settings"], "corpus": f"synthetic:{directory.name}"}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def synthetic_embeddings(
    directory: Path,
    template: dict,
    seed_docs: np.ndarray | Csr,
    documents: int,
    docs_per_shard: int = 65536,
    seed: int = 0,
    noise: float = 0.5,
) -> dict:
    """Write ``documents`` synthetic dense or sparse documents (ids ``d0``...) derived from the seed rows."""
    rng = np.random.default_rng(seed)

    def tables() -> Iterator[pa.Table]:
        for start in range(0, documents, docs_per_shard):
            count = min(docs_per_shard, documents - start)
            ids = [f"d{i}" for i in range(start, start + count)]
            if isinstance(seed_docs, Csr):
                yield sparse_table(ids, perturbed_sparse(seed_docs, count, rng))
            else:
                yield dense_table(ids, perturbed_dense(seed_docs, count, noise, rng))

    return write_embeddings(directory, template, tables())


def synthetic_queries(seed_queries: np.ndarray | Csr, count: int, seed: int = 1) -> np.ndarray | Csr:
    """``count`` queries resampled from real query encodings (small noise; sparse: weights only)."""
    rng = np.random.default_rng(seed)
    if isinstance(seed_queries, Csr):
        return perturbed_sparse(seed_queries, count, rng, keep=1.0, jitter=0.1, borrow=0.0)
    return perturbed_dense(seed_queries, count, 0.2, rng)


# ----------------------------------------------------------------------------- real seed vectors
def real_encodings(kind: str, model: str, cache: Path) -> tuple[dict, np.ndarray | Csr, np.ndarray | Csr]:
    """Real encodings of SciFact's documents and of its train + test queries by ``model`` (cached):
    the template manifest, the documents and the queries."""
    from rayir import BiEncoderModule
    from rayir.data import read_queries
    from rayir.encode import encode_corpus, read_manifest
    from rayir.encode.formats import dense_matrix, sparse_rows

    directory = cache / f"seed-{kind}"
    if not (directory / "manifest.json").exists():
        config = {"doc_max_length": 256, "query_max_length": 64} if kind == "sparse" else None
        encode_corpus(model, SCIFACT, directory, docs_per_shard=1024, num_encoders=2, model_config=config)
    manifest = read_manifest(directory)
    table = pa.concat_tables([pq.read_table(directory / s["file"]) for s in manifest["shards"]])
    queries_file = directory / "queries.npz"
    if not queries_file.exists():
        texts = [q.text for split in ("train", "test") for q in read_queries(SCIFACT, split=split)]
        module = BiEncoderModule(model, **({"query_max_length": 64} if kind == "sparse" else {}))
        vectors = module.encode_queries(texts).vectors.float().numpy()
        if kind == "sparse":
            rows, terms = np.nonzero(vectors > 0)
            indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(vectors)))])
            np.savez(queries_file, indptr=indptr, terms=terms.astype(np.int32), weights=vectors[rows, terms])
        else:
            np.savez(queries_file, vectors=vectors)
    saved = np.load(queries_file)
    template = {key: value for key, value in manifest.items() if key != "shards"}
    if kind == "sparse":
        docs = Csr(*sparse_rows(table))
        return template, docs, Csr(saved["indptr"].astype(np.int64), saved["terms"], saved["weights"])
    return template, dense_matrix(table), saved["vectors"].astype(np.float32)
