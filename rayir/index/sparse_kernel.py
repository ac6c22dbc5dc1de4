"""Exact top-k over term-major postings, compiled with numba: term-at-a-time into a dense accumulator.

Why not a sparse matrix product: ``queries @ postings`` materialises a sparse score row for every
document that shares a term with the query (with SPLADE's expansion terms, nearly all of them), and
scipy's sparse-output product spends most of its time building that output. Here each query adds
its posting lists into one dense float32 array and a single pass keeps the k best. Query terms are
added in the order given (term id order), so a document's score is the same float whatever shard
holds it, and 1 or N shards give identical runs.

MaxScore-style pruning was tried (terms by impact, candidates finished by binary search): with
SPLADE's many low-weight expansion terms nearly every document stays a candidate until late, and
the threshold upkeep cost more than it saved (a one-off probe on SciFact: 218 vs 89 us per query),
so it is not used.

Terms found in a large share of the documents (SPLADE's common expansion terms) are also kept as
dense float32 columns, built when a shard loads: adding such a column is one vectorised pass over
the accumulator instead of a scatter per posting. Adding a column's zeros leaves a score unchanged,
so results are bitwise the same as with postings alone. On SciFact with splade-tiny (52,000
postings per query; the 128 terms in ≥ 1/4 of the documents carry 71% of them) a one-off probe
measured 75 us per query with postings alone and 30 us with the dense columns.

The k best are kept in (score descending, ordinal ascending) order, so equal scores are ordered by
doc id inside the kernel: BM25 ties often (documents of equal length sharing a sentence), and
re-doing tied rows outside the kernel cost more than the search itself at k = 100. A query whose
postings are few (``SPARSE_QUERY_SHARE`` of the shard's documents) records the documents it
touches, so that its top-k pass and the accumulator reset cost its postings instead of a pass over
every document (``benchmarks/scale.py`` and ``benchmarks/driver_memory.py`` measure the results).
"""

from __future__ import annotations

import numba
import numpy as np

# A query whose postings add up to at most this share of a shard's documents is scored on its
# touched documents only: its top-k pass and the accumulator reset visit those, not every document.
SPARSE_QUERY_SHARE = 1 / 16


@numba.njit(cache=True, nogil=True)
def offer(s, d, found, k, positions, scores, ordinals):
    """Insert document ``d`` with score ``s`` into the running top ``k`` (best first, equal scores
    by ordinal); returns how many it now holds."""
    if s <= 0:
        return found
    if found == k and (s < scores[k - 1] or (s == scores[k - 1] and ordinals[d] > ordinals[positions[k - 1]])):
        return found
    slot = found if found < k else k - 1
    while slot > 0 and (
        scores[slot - 1] < s or (scores[slot - 1] == s and ordinals[positions[slot - 1]] > ordinals[d])
    ):
        scores[slot] = scores[slot - 1]
        positions[slot] = positions[slot - 1]
        slot -= 1
    scores[slot] = s
    positions[slot] = d
    return found + 1 if found < k else found


@numba.njit(cache=True, nogil=True)
def _top_k(acc, ordinals, touched, n_touched, k, out_positions, out_scores):
    """Top ``k`` positive scores of ``acc``, best first, equal scores in ``ordinals`` (doc id) order;
    returns how many were found. With ``n_touched < 0`` every document is a candidate; otherwise
    only ``touched[:n_touched]`` (every other document scores 0)."""
    n = len(acc) if n_touched < 0 else n_touched
    found = 0
    for i in range(n):
        d = i if n_touched < 0 else touched[i]
        found = offer(acc[d], d, found, k, out_positions, out_scores, ordinals)
    return found


@numba.njit(cache=True, nogil=True)
def _postings_of(q_terms, q_start, q_end, indptr, dense_row, limit):
    """How many postings the query's terms hold, or ``limit + 1`` once past ``limit`` or when a
    term is a dense column (every document)."""
    total = 0
    for j in range(q_start, q_end):
        t = q_terms[j]
        if dense_row[t] >= 0:
            return limit + 1
        total += indptr[t + 1] - indptr[t]
        if total > limit:
            return limit + 1
    return total


@numba.njit(cache=True, nogil=True)
def search_postings(
    q_indptr,
    q_terms,
    q_weights,
    indptr,
    docs,
    weights,
    dense_row,
    dense_columns,
    ordinals,
    k,
    out_positions,
    out_scores,
    out_counts,
):
    """Top ``k`` documents of every query (CSR ``q_*``) against term-major postings.

    A term ``t`` with ``dense_row[t] >= 0`` is read from ``dense_columns[dense_row[t]]`` (its
    weight in every document) instead of its postings. ``docs`` should be unsigned so that
    indexing needs no negative-index check.

    Writes, per query row, up to ``k`` document positions and scores, best first and equal scores
    in ``ordinals`` order (the index's doc-id order, as everywhere), into
    ``out_positions``/``out_scores`` and the number written into ``out_counts``; documents that
    score 0 are not hits.

    A query with few postings (``SPARSE_QUERY_SHARE``) keeps a list of the documents it touches,
    so selecting and resetting cost its postings, not the shard's size. The sums are the same in
    either path and (score, ordinal) is a total order, so both paths give identical results.
    """
    num_docs = len(ordinals)
    acc = np.zeros(num_docs, np.float32)
    limit = int(num_docs * SPARSE_QUERY_SHARE)
    touched = np.empty(limit, np.int64)
    seen = np.full(num_docs if limit > 0 else 0, -1, np.int64)  # the last query that touched a document
    for b in range(len(q_indptr) - 1):
        few = _postings_of(q_terms, q_indptr[b], q_indptr[b + 1], indptr, dense_row, limit) <= limit
        n_touched = 0
        for j in range(q_indptr[b], q_indptr[b + 1]):
            t, w = q_terms[j], q_weights[j]
            row = dense_row[t]
            if row >= 0:
                column = dense_columns[row]
                for d in range(num_docs):
                    acc[d] += w * column[d]
            elif few:
                for p in range(np.uint64(indptr[t]), np.uint64(indptr[t + 1])):
                    d = docs[p]
                    if seen[d] != b:
                        seen[d] = b
                        touched[n_touched] = d
                        n_touched += 1
                    acc[d] += w * weights[p]
            else:
                for p in range(np.uint64(indptr[t]), np.uint64(indptr[t + 1])):  # unsigned: no negative-index fix-up
                    acc[docs[p]] += w * weights[p]
        out_counts[b] = _top_k(acc, ordinals, touched, n_touched if few else -1, k, out_positions[b], out_scores[b])
        if few:
            for i in range(n_touched):
                acc[touched[i]] = 0.0
        else:
            acc[:] = 0.0
