"""An approximate sparse index (SPLADE, BM25) after Seismic (Bruch et al. 2024): pruned posting
lists cut into blocks of similar documents, each with a summary vector; a forward index scores.

- **Build**: every term's posting list keeps only the documents with the term's ``postings``
  largest weights *in the whole index* (one cut-off weight per term, computed once over every
  embedding file before any shard is built: :func:`term_cutoffs`; documents tied with the cut-off
  are kept too). Each list's documents are grouped by similarity (one round of random k-means
  over hashed 64-d sketches, as Seismic groups a list) and cut into blocks of at most ``block``
  documents of one group. A block's summary is Seismic's: the coordinate-wise maximum of its
  documents' (largest ``HEAD`` = 512) coordinates, cut to its largest coordinates until they hold
  ``energy`` per cent of its mass (at most ``MAX_SUMMARY`` = 512 of them), stored as 8-bit values
  (rounded up) in a small inverted index per list, so that scoring a list's blocks costs only the
  entries of the query's terms; beside it ``rest``, the largest member coordinate left out. The
  shard also keeps a *forward index*: every document's whole vector (16-bit term ids when the
  vocabulary allows).
- **Search**, per query, over the blocks of the lists of the query's ``query_terms`` heaviest terms;
  every document of a block that is read is scored exactly from the forward index:
  - ``heap_factor=0`` (the default, *bounded*): a block's bound is ``q . summary`` plus ``rest``
    times the query weight the summary does not cover, which never falls below a member's score;
    blocks are read best bound first until a bound falls below the k-th best score. The answer is
    the exact top-k of the documents in the chosen lists, a set that depends only on the
    document, the query and the index-wide cut-offs: 1, 2 or N shards give the same run at every
    ``query_terms``. At ``postings=0`` (keep every posting) and ``query_terms=0`` (all) it is
    rank-safe: the exact index's run, scores bit for bit (forward sums in the exact kernel's
    term-id order). On SPLADE's flat weights the ``rest`` term makes the bounds loose: it reads
    most blocks.
  - ``heap_factor`` in (0, 1] (*estimated*, Seismic's search): lists read heaviest query term
    first, the first list's blocks best ``q . summary`` first, the others in list order; a block is
    skipped when ``q . summary`` is below ``heap_factor`` times the k-th best score so far (smaller:
    more blocks read, better recall). Much faster, approximate, and the run may change with the
    shard count (a shard's k-th best score and its blocks are its own).

Files: ``cutoffs.npy`` (``(V,)`` float32, 0 = nothing cut), ``block_indptr.npy`` (term -> its
blocks), ``block_starts.npy`` (block -> its postings in ``list_docs.npy``), ``block_scales.npy`` /
``block_rest.npy`` (per block), ``term_indptr.npy`` / ``summary_terms.npy`` / ``entry_indptr.npy`` /
``entry_blocks.npy`` / ``entry_values.npy`` (the summaries by list and term), ``doc_indptr.npy`` /
``doc_terms.npy`` / ``doc_weights.npy`` (the forward index, CSR by document, terms ascending).
Nothing pickled.
"""

from __future__ import annotations

import copy
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
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
DEFAULT_HEAP_FACTOR = 0.0  # bounded: shard-count invariant
SKETCH_DIM = 64  # hashed sketch the documents are grouped by
MAX_GROUPS = 1024  # per list: a longer list's groups hold more than ``block`` documents, cut in blocks
HEAD = 512  # a document's largest coordinates that its blocks' summaries see (SPLADE: nearly all)
MAX_SUMMARY = 512  # coordinates a block summary keeps at most, whatever its energy share needs


@dataclass(frozen=True)
class PruningSettings:
    """Build knobs of a pruned sparse index: ``factory="pruned[,name=value…]"``. ``postings``: each
    term's list keeps its ``postings`` highest-weight documents index-wide (0: every posting);
    ``block``: documents per block at most; ``energy``: the per cent of a block's maximum vector's
    mass its summary keeps (Seismic's default, 40); ``seed``: the clustering's seed."""

    postings: int = 4000
    block: int = 16
    energy: int = 40
    seed: int = 0

    @classmethod
    def parse(cls, factory: str) -> PruningSettings:
        values = integer_settings(factory, "pruned", cls.__dataclass_fields__)
        settings = cls(**values)
        if settings.block < 1 or not 1 <= settings.energy <= 100:
            raise ConfigError(f"factory {factory!r}: block must be >= 1 and energy in 1..100")
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
    threads: int | None = None,
) -> dict:
    """``indptr``/``terms``/``weights``: the shard's documents as CSR rows over ``vocab_size`` terms;
    ``cutoffs_dir``: where :func:`term_cutoffs` wrote the index's cut-offs; ``threads``: for the
    block summaries."""
    from .pruned_kernel import document_heads, invert_summaries, split_blocks

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
    forward = docs.indptr.astype(np.int64), docs.indices.astype(term_dtype(vocab_size)), docs.data
    del docs
    heads = document_heads(*forward, HEAD)
    summary_indptr, summary_terms, summary_values, block_rest = _summaries(
        block_starts, list_docs, heads, vocab_size, settings.energy / 100, threads or 1
    )
    del heads
    longest = int(np.diff(block_indptr).max(initial=0))
    summaries = invert_summaries(block_indptr, summary_indptr, summary_terms, summary_values, block_dtype(longest))
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cutoffs_dir / CUTOFFS_FILE, directory / CUTOFFS_FILE)
    for name, array in (
        ("block_indptr", block_indptr),
        ("block_starts", block_starts),
        ("list_docs", list_docs.astype(np.int32)),
        *zip(SUMMARY_FILES, summaries),
        ("block_rest", block_rest),
        ("doc_indptr", forward[0]),
        ("doc_terms", forward[1]),
        ("doc_weights", forward[2].astype(np.float32)),
    ):
        save_array(directory / f"{name}.npy", array)
    meta = {
        "type": "pruned_sparse",
        "factory": factory,
        "vocab_size": int(vocab_size),
        "documents": len(doc_ids),
        "postings": int(len(forward[1])),
        "list_postings": int(len(list_docs)),
        "blocks": int(len(block_starts) - 1),
        "summary_terms": int(len(summaries[1])),
        "summary_entries": int(len(summaries[3])),
    }
    return finish_shard(directory, doc_ids, ordinals, meta)


# the inverted summaries' files, in the order :func:`.pruned_kernel.invert_summaries` returns them
SUMMARY_FILES = ("term_indptr", "summary_terms", "entry_indptr", "entry_blocks", "entry_values", "block_scales")


def term_dtype(vocab_size: int) -> type:
    """The forward index's term ids: 16 bits when the vocabulary fits (BERT's 30,522 does)."""
    return np.uint16 if vocab_size <= 2**16 else np.int32


def block_dtype(longest: int) -> type:
    """Block numbers within a list: 16 bits when no list has more than 65,536 blocks."""
    return np.uint16 if longest <= 2**16 else np.int32


def _summaries(block_starts, list_docs, heads, vocab: int, energy: float, threads: int):
    """Every block's summary (:func:`.pruned_kernel.block_summaries`), in ``threads`` runs over
    ranges of blocks (the kernel releases the GIL), joined as one CSR."""
    from .pruned_kernel import block_summaries

    blocks = len(block_starts) - 1
    cuts = np.linspace(0, blocks, max(1, min(threads * 4, blocks)) + 1).astype(np.int64)
    with ThreadPoolExecutor(threads) as pool:
        parts = list(
            pool.map(
                lambda r: block_summaries(r[0], r[1], block_starts, list_docs, *heads, vocab, energy, MAX_SUMMARY),
                zip(cuts[:-1], cuts[1:]),
            )
        )
    lengths = [int(part[0][-1]) for part in parts]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    indptr = np.concatenate([np.zeros(1, np.int64)] + [part[0][1:] + start for part, start in zip(parts, starts)])
    return (
        indptr,
        np.concatenate([part[1] for part in parts]),
        np.concatenate([part[2] for part in parts]),
        np.concatenate([part[3] for part in parts]),
    )


def _loaded(directory: Path, name: str, dtype: Any, length: int | None) -> np.ndarray:
    path = directory / f"{name}.npy"
    if not isinstance(length, int):
        raise IntegrityError(f"{directory / 'meta.json'}: no valid count for {name}.npy")
    return check_array(path, load_array(path), dtype, 1, length)


def _offsets(directory: Path, name: str, rows: int, end: int) -> np.ndarray:
    offsets = _loaded(directory, name, np.int64, rows + 1)
    check_offsets(directory / f"{name}.npy", offsets, end)
    return offsets


def _check_options(query_terms: int, heap_factor: float) -> None:
    if query_terms < 0 or not 0 <= heap_factor <= 1:
        raise ValueError(f"query_terms must be >= 0 and heap_factor in [0, 1], got {query_terms}, {heap_factor}")


class PrunedSparseShard:
    """A loaded pruned sparse index shard (see the module docstring).

    Search options: ``query_terms`` (the query's heaviest terms whose lists are read; 0: all;
    default 10) and ``heap_factor`` (0, the default: blocks read by upper bound, the exact top-k of
    those lists at any shard count; in (0, 1]: Seismic's estimated search, a block skipped when its
    summary score is below ``heap_factor`` times the k-th best score, faster and approximate)."""

    def __init__(
        self, directory: Path, query_terms: int = DEFAULT_QUERY_TERMS, heap_factor: float = DEFAULT_HEAP_FACTOR
    ) -> None:
        _check_options(query_terms, heap_factor)
        self.meta = meta = load_meta(directory)
        self.ordinals = load_ordinals(directory, meta["documents"])
        vocab, documents, blocks = meta.get("vocab_size"), meta["documents"], meta.get("blocks")
        if not isinstance(vocab, int) or vocab < 1 or not isinstance(blocks, int):
            raise IntegrityError(f"{directory / 'meta.json'}: no valid vocab_size and blocks")
        list_docs = _loaded(directory, "list_docs", np.int32, meta.get("list_postings"))
        check_range(directory / "list_docs.npy", list_docs, 0, documents, "document numbers")
        block_indptr = _offsets(directory, "block_indptr", vocab, blocks)
        longest = int(np.diff(block_indptr).max(initial=0))
        summary_terms = _loaded(directory, "summary_terms", np.int32, meta.get("summary_terms"))
        check_range(directory / "summary_terms.npy", summary_terms, 0, vocab, "term ids")
        entries = meta.get("summary_entries")
        entry_blocks = _loaded(directory, "entry_blocks", block_dtype(longest), entries)
        check_range(directory / "entry_blocks.npy", entry_blocks, 0, max(longest, 1), "block numbers")
        self.summaries = (
            _offsets(directory, "term_indptr", vocab, len(summary_terms)),
            summary_terms,
            _offsets(directory, "entry_indptr", len(summary_terms), len(entry_blocks)),
            entry_blocks,
            _loaded(directory, "entry_values", np.uint8, entries),
        )
        self.blocks = (block_indptr, _offsets(directory, "block_starts", blocks, len(list_docs)), list_docs)
        self.block_scales = _loaded(directory, "block_scales", np.float32, blocks)
        self.block_rest = _loaded(directory, "block_rest", np.float32, blocks)
        doc_terms = _loaded(directory, "doc_terms", term_dtype(vocab), meta.get("postings"))
        check_range(directory / "doc_terms.npy", doc_terms, 0, vocab, "term ids")
        self.forward = (
            _offsets(directory, "doc_indptr", documents, len(doc_terms)),
            doc_terms,
            _loaded(directory, "doc_weights", np.float32, meta.get("postings")),
        )
        for name, values in (
            ("block_scales", self.block_scales),
            ("block_rest", self.block_rest),
            ("doc_weights", self.forward[2]),
        ):
            check_finite(directory / f"{name}.npy", values)
            if len(values) and float(values.min()) < 0:
                raise IntegrityError(f"{directory / name}.npy: negative values (the block bounds assume none)")
        self.vocab, self.query_terms, self.heap_factor = vocab, query_terms, heap_factor

    def with_options(self, query_terms: int, heap_factor: float) -> PrunedSparseShard:
        """This shard searched with other options: the loaded arrays are shared, nothing is read
        again (a benchmark's grid of settings over one loaded index)."""
        _check_options(query_terms, heap_factor)
        other = copy.copy(self)
        other.query_terms, other.heap_factor = query_terms, heap_factor
        return other

    def search(self, queries: QueryBatch, k: int) -> HitMatrix:
        from .pruned_kernel import search_blocks

        queries.check_vocabulary(self.vocab)
        if len(queries.weights) and float(queries.weights.min()) < 0:
            raise ValueError("a pruned sparse index takes non-negative query weights")
        rows, k = len(queries), max(0, min(k, len(self.ordinals)))
        batch = sp.csr_matrix(
            (queries.weights, queries.terms, queries.indptr), shape=(rows, self.vocab)
        ).sorted_indices()
        positions = np.zeros((rows, k), np.int64)
        scores = np.zeros((rows, k), np.float32)
        counts = np.zeros(rows, np.int64)
        if k:
            search_blocks(
                batch.indptr.astype(np.int64),
                batch.indices.astype(np.int64),
                batch.data.astype(np.float32),
                self.query_terms,
                float(self.heap_factor),
                k,
                *self.blocks,
                self.summaries,
                self.block_scales,
                self.block_rest,
                self.forward,
                self.ordinals,
                self.vocab,
                positions,
                scores,
                counts,
            )
        return HitMatrix(scores, self.ordinals[positions], counts)
