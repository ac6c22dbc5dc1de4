"""An approximate sparse index (SPLADE, BM25) after Seismic (Bruch et al. 2024): pruned posting
lists cut into blocks of similar documents, each with a summary vector; a forward index scores.

- **Build**: every term's posting list keeps only the documents with the term's ``postings``
  largest weights *in the whole index* (one cut-off weight per term, computed once over every
  embedding file before any shard is built: :func:`term_cutoffs`; documents tied with the cut-off
  are kept too). Each list's documents are grouped by similarity (one round of random k-means
  over hashed 64-d sketches, as Seismic groups a list) and cut into blocks of at most ``block``
  documents of one group. A block's
  summary is the coordinate-wise maximum of its documents' ``summary`` largest coordinates, cut to
  its ``summary`` largest, plus the largest coordinate of any member that the summary leaves out.
  Beside the blocks the shard keeps a *forward index*: every document's whole vector.
- **Search**, per query: the blocks of the lists of the query's ``query_terms`` heaviest terms get
  an upper bound on their documents' scores from the summary (``q . summary`` plus the cut-away
  coordinate times the query weight the summary does not cover); blocks are read best bound first,
  every document of a block scored exactly from the forward index, until a bound falls below the
  k-th best score found.

Unlike Seismic's summaries (which keep a share of the summary's mass and can underestimate), these
bounds never fall below a member's score, so at the default ``bound_scale=1`` no block that could
hold a top-k document is skipped: the answer is the exact top-k of the documents in the chosen
lists. That set depends only on the document, the query and the index-wide cut-offs, not on the
shard, so 1, 2 or N shards give the same run at every ``query_terms`` (the blocks differ by shard;
the answer does not). ``bound_scale`` below 1 skips more blocks (faster, approximate, and then the
run may change with the shard count). At ``postings=0`` (keep every posting) and ``query_terms=0``
(all) the search is rank-safe: the exact index's run, scores bit for bit (the forward sums run in
the exact kernel's term-id order).

Files: ``cutoffs.npy`` (``(V,)`` float32, 0 = nothing cut), ``block_indptr.npy`` (term -> its
blocks), ``block_starts.npy`` (block -> its postings in ``list_docs.npy``), ``summary_indptr.npy``
/ ``summary_terms.npy`` / ``summary_values.npy`` / ``summary_rest.npy`` (block summaries, CSR by
block), ``doc_indptr.npy`` / ``doc_terms.npy`` / ``doc_weights.npy`` (the forward index, CSR by
document, terms ascending). Nothing pickled.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp

from ..errors import ConfigError, IntegrityError
from .checks import check_array, check_finite, check_offsets, check_range
from .factory import integer_settings
from .files import finish_shard, load_array, load_meta, load_ordinals, save_array
from .hits import HitMatrix
from .queries import QueryBatch

logger = logging.getLogger(__name__)

CUTOFFS_DIR = "cutoffs"  # beside the shards while the index is built; each shard keeps a copy
CUTOFFS_FILE = "cutoffs.npy"
DEFAULT_QUERY_TERMS = 10
SKETCH_DIM = 64  # hashed sketch the documents are grouped by
MAX_GROUPS = 1024  # per list: a longer list's groups hold more than ``block`` documents, cut in blocks


@dataclass(frozen=True)
class PruningSettings:
    """Build knobs of a pruned sparse index: ``factory="pruned[,name=value…]"``. ``postings``: each
    term's list keeps its ``postings`` highest-weight documents index-wide (0: every posting);
    ``block``: documents per block at most; ``summary``: coordinates a block summary keeps;
    ``seed``: the clustering's seed."""

    postings: int = 4000
    block: int = 16
    summary: int = 32
    seed: int = 0

    @classmethod
    def parse(cls, factory: str) -> PruningSettings:
        values = integer_settings(factory, "pruned", cls.__dataclass_fields__)
        settings = cls(**values)
        if settings.block < 1 or settings.summary < 1:
            raise ConfigError(f"factory {factory!r}: block and summary must be >= 1")
        return settings


def term_cutoffs(embeddings_dir: str, files: list[dict[str, Any]], target: str, factory: str, vocab: int) -> dict:
    """Each term's cut-off weight over the whole collection: its ``postings``-th largest weight (0 for
    terms in fewer documents, and for every term at ``postings=0``). Reads one embedding file at a
    time, keeping at most ``postings`` weights per term. Runs as one task before the shard builds;
    writes ``<target>/cutoffs.npy`` and returns the manifest's ``pruning`` entry."""
    from ..encode.formats import sparse_rows
    from .pruned_kernel import merge_top_weights

    settings = PruningSettings.parse(factory)
    cutoffs = np.zeros(vocab, np.float32)
    if settings.postings > 0:
        kept_indptr, kept = np.zeros(vocab + 1, np.int64), np.zeros(0, np.float32)
        for entry in files:
            indptr, terms, weights = sparse_rows(pq.read_table(Path(embeddings_dir) / entry["file"]))
            by_term = sp.csr_matrix((weights, terms, indptr), shape=(len(indptr) - 1, vocab)).tocsc()
            kept_indptr, kept = merge_top_weights(
                kept_indptr, kept, by_term.indptr.astype(np.int64), by_term.data, settings.postings
            )
        full = np.flatnonzero(np.diff(kept_indptr) >= settings.postings)
        cutoffs[full] = kept[kept_indptr[full + 1] - 1]  # each term's kept weights end with the smallest
    directory = Path(target)
    directory.mkdir(parents=True, exist_ok=True)
    save_array(directory / CUTOFFS_FILE, cutoffs)
    cut = int((cutoffs > 0).sum())
    logger.info("pruned index: %d of %d terms cut to their %d best postings", cut, vocab, settings.postings)
    return {"postings": settings.postings, "terms_cut": cut}


def document_sketches(docs: sp.csr_matrix, seed: int) -> np.ndarray:
    """Unit-length ``SKETCH_DIM``-d sketches of the documents (each term adds its weight, with a
    random sign, to one coordinate): dot products of sketches approximate those of the vectors."""
    rng = np.random.default_rng(seed)
    vocab = docs.shape[1]
    signs = rng.choice(np.asarray([-1.0, 1.0], np.float32), vocab)
    hashing = sp.csr_matrix((signs, (np.arange(vocab), rng.integers(0, SKETCH_DIM, vocab))), shape=(vocab, SKETCH_DIM))
    sketch = np.ascontiguousarray((docs @ hashing).toarray(), np.float32)
    sketch /= np.maximum(np.linalg.norm(sketch, axis=1, keepdims=True), 1e-12)
    return sketch


def group_lists(list_indptr: np.ndarray, list_docs: np.ndarray, sketches: np.ndarray, block: int, seed: int):
    """Each list's documents regrouped by similarity (Seismic's random k-means, one round): a list of
    ``L > block`` documents draws ``ceil(L / block)`` of them (at most ``MAX_GROUPS``) as centres and
    each document joins the centre whose sketch is nearest. Returns the postings in their new order
    and each posting's group label (blocks never span two groups)."""
    order = np.arange(len(list_docs))
    labels = np.zeros(len(list_docs), np.int64)
    for term in np.flatnonzero(np.diff(list_indptr) > block):
        lo, hi = int(list_indptr[term]), int(list_indptr[term + 1])
        members = sketches[list_docs[lo:hi]]
        rng = np.random.default_rng([seed, int(term)])
        centres = members[rng.choice(hi - lo, min(MAX_GROUPS, -(-(hi - lo) // block)), replace=False)]
        group = np.concatenate([np.argmax(members[r : r + 8192] @ centres.T, axis=1) for r in range(0, hi - lo, 8192)])
        within = np.argsort(group, kind="stable")
        order[lo:hi] = lo + within
        labels[lo:hi] = group[within]
    return list_docs[order], labels


def build_pruned_shard(
    indptr: np.ndarray,
    terms: np.ndarray,
    weights: np.ndarray,
    doc_ids: list[str],
    ordinals: np.ndarray,
    directory: Path,
    vocab_size: int,
    factory: str,
    cutoffs_dir: Path,
) -> dict:
    """``indptr``/``terms``/``weights``: the shard's documents as CSR rows over ``vocab_size`` terms;
    ``cutoffs_dir``: where :func:`term_cutoffs` wrote the index's cut-offs."""
    from .pruned_kernel import block_summaries, document_heads, split_blocks

    if len(weights) and float(weights.min()) < 0:
        raise ValueError("a pruned sparse index needs non-negative weights (its block bounds assume them)")
    settings = PruningSettings.parse(factory)
    cutoffs = load_array(cutoffs_dir / CUTOFFS_FILE)
    docs = sp.csr_matrix((weights, terms, indptr), shape=(len(doc_ids), vocab_size), dtype=np.float32)
    docs.sum_duplicates()
    docs.sort_indices()
    lists = docs.T.tocsr()
    keep = lists.data >= np.repeat(cutoffs, np.diff(lists.indptr))
    list_terms = np.repeat(np.arange(vocab_size, dtype=np.int64), np.diff(lists.indptr))[keep]
    list_docs = lists.indices[keep].astype(np.int64)
    del lists
    list_indptr = np.searchsorted(list_terms, np.arange(vocab_size + 1))
    sketches = document_sketches(docs, settings.seed)
    list_docs, labels = group_lists(list_indptr, list_docs, sketches, settings.block, settings.seed)
    block_indptr, block_starts = split_blocks(list_indptr, labels, settings.block)
    doc_indptr, doc_terms, doc_weights = docs.indptr.astype(np.int64), docs.indices.astype(np.int32), docs.data
    heads = document_heads(doc_indptr, doc_terms, doc_weights, settings.summary)
    summaries = block_summaries(block_starts, list_docs, *heads, vocab_size, settings.summary)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cutoffs_dir / CUTOFFS_FILE, directory / CUTOFFS_FILE)
    for name, array in (
        ("block_indptr", block_indptr),
        ("block_starts", block_starts),
        ("list_docs", list_docs.astype(np.int32)),
        *zip(("summary_indptr", "summary_terms", "summary_values", "summary_rest"), summaries),
        ("doc_indptr", doc_indptr),
        ("doc_terms", doc_terms),
        ("doc_weights", doc_weights.astype(np.float32)),
    ):
        save_array(directory / f"{name}.npy", array)
    meta = {
        "type": "pruned_sparse",
        "factory": factory,
        "vocab_size": int(vocab_size),
        "documents": len(doc_ids),
        "postings": int(docs.nnz),
        "list_postings": int(len(list_docs)),
        "blocks": int(len(block_starts) - 1),
        "summary_entries": int(len(summaries[1])),
    }
    return finish_shard(directory, doc_ids, ordinals, meta)


def _loaded(directory: Path, name: str, dtype: Any, length: int | None) -> np.ndarray:
    path = directory / f"{name}.npy"
    if not isinstance(length, int):
        raise IntegrityError(f"{directory / 'meta.json'}: no valid count for {name}.npy")
    return check_array(path, load_array(path), dtype, 1, length)


def _offsets(directory: Path, name: str, rows: int, end: int) -> np.ndarray:
    offsets = _loaded(directory, name, np.int64, rows + 1)
    check_offsets(directory / f"{name}.npy", offsets, end)
    return offsets


class PrunedSparseShard:
    """A loaded pruned sparse index shard (see the module docstring).

    Search options: ``query_terms`` (the query's heaviest terms whose lists are read; 0: all;
    default 10) and ``bound_scale`` (a block is read while its bound times this reaches the k-th
    best score; default 1: no block that could hold a top-k document is skipped; below 1: faster,
    approximate)."""

    def __init__(self, directory: Path, query_terms: int = DEFAULT_QUERY_TERMS, bound_scale: float = 1.0) -> None:
        if query_terms < 0 or not 0 < bound_scale <= 1:
            raise ValueError(f"query_terms must be >= 0 and bound_scale in (0, 1], got {query_terms}, {bound_scale}")
        self.meta = meta = load_meta(directory)
        self.ordinals = load_ordinals(directory, meta["documents"])
        vocab, documents = meta.get("vocab_size"), meta["documents"]
        if not isinstance(vocab, int) or vocab < 1 or not isinstance(meta.get("blocks"), int):
            raise IntegrityError(f"{directory / 'meta.json'}: no valid vocab_size and blocks")
        blocks, entries = meta["blocks"], meta.get("summary_entries")
        list_docs = _loaded(directory, "list_docs", np.int32, meta.get("list_postings"))
        check_range(directory / "list_docs.npy", list_docs, 0, documents, "document numbers")
        summary_terms = _loaded(directory, "summary_terms", np.int32, entries)
        check_range(directory / "summary_terms.npy", summary_terms, 0, vocab, "term ids")
        self.blocks = (
            _offsets(directory, "block_indptr", vocab, blocks),
            _offsets(directory, "block_starts", blocks, len(list_docs)),
            list_docs,
            _offsets(directory, "summary_indptr", blocks, len(summary_terms)),
            summary_terms,
            _loaded(directory, "summary_values", np.float32, entries),
            _loaded(directory, "summary_rest", np.float32, blocks),
        )
        doc_terms = _loaded(directory, "doc_terms", np.int32, meta.get("postings"))
        check_range(directory / "doc_terms.npy", doc_terms, 0, vocab, "term ids")
        self.forward = (
            _offsets(directory, "doc_indptr", documents, len(doc_terms)),
            doc_terms,
            _loaded(directory, "doc_weights", np.float32, meta.get("postings")),
        )
        for name, values in (
            ("summary_values", self.blocks[5]),
            ("summary_rest", self.blocks[6]),
            ("doc_weights", self.forward[2]),
        ):
            check_finite(directory / f"{name}.npy", values)
            if len(values) and float(values.min()) < 0:
                raise IntegrityError(f"{directory / name}.npy: negative weights (the block bounds assume none)")
        self.vocab, self.query_terms, self.bound_scale = vocab, query_terms, bound_scale

    def search(self, queries: QueryBatch, k: int) -> HitMatrix:
        from .pruned_kernel import search_blocks

        queries.check_vocabulary(self.vocab)
        if len(queries.weights) and float(queries.weights.min()) < 0:
            raise ValueError("a pruned sparse index takes non-negative query weights")
        rows, k = len(queries), max(0, min(k, len(self.ordinals)))
        positions = np.zeros((rows, k), np.int64)
        scores = np.zeros((rows, k), np.float32)
        counts = np.zeros(rows, np.int64)
        if k:
            search_blocks(
                queries.indptr.astype(np.int64),
                queries.terms.astype(np.int64),
                queries.weights.astype(np.float32),
                self.query_terms,
                self.bound_scale,
                k,
                *self.blocks,
                *self.forward,
                self.ordinals,
                self.vocab,
                positions,
                scores,
                counts,
            )
        return HitMatrix(scores, self.ordinals[positions], counts)
