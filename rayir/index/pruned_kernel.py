"""The pruned sparse index's kernels (numba): each term's largest weights over the collection (the
build's cut-offs), the blocks and their summary bounds, and search: blocks read best bound first,
their documents scored exactly from the forward index. See :mod:`.pruned` for the design."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def merge_top_weights(kept_indptr, kept, new_indptr, new, keep):
    """Each term's ``keep`` largest weights among ``kept`` (term-major CSR) and ``new`` (term-major
    CSR of one more file), as term-major CSR again, each term's weights descending."""
    terms = len(kept_indptr) - 1
    counts = np.empty(terms, np.int64)
    for t in range(terms):
        counts[t] = min(keep, kept_indptr[t + 1] - kept_indptr[t] + new_indptr[t + 1] - new_indptr[t])
    out_indptr = np.zeros(terms + 1, np.int64)
    out_indptr[1:] = np.cumsum(counts)
    out = np.empty(out_indptr[-1], np.float32)
    for t in range(terms):
        if counts[t] == 0:
            continue
        pool = np.concatenate((kept[kept_indptr[t] : kept_indptr[t + 1]], new[new_indptr[t] : new_indptr[t + 1]]))
        n = counts[t]
        if n < len(pool):
            pool = -np.partition(-pool, n - 1)[:n]
        out[out_indptr[t] : out_indptr[t + 1]] = -np.sort(-pool)
    return out_indptr, out


@numba.njit(cache=True, nogil=True)
def split_blocks(list_indptr, labels, block):
    """Blocks of each term's list (its postings already ordered by group ``labels``): a block ends
    where the group changes or after ``block`` postings. Returns ``block_indptr`` (term -> its blocks) and
    ``block_starts`` (block -> its postings)."""
    terms = len(list_indptr) - 1
    starts = np.empty(len(labels) + 1, np.int64)
    block_indptr = np.zeros(terms + 1, np.int64)
    n = 0
    for t in range(terms):
        for p in range(list_indptr[t], list_indptr[t + 1]):
            if p == list_indptr[t] or labels[p] != labels[p - 1] or p - starts[n - 1] >= block:
                starts[n] = p
                n += 1
        block_indptr[t + 1] = n
    starts[n] = len(labels)
    return block_indptr, starts[: n + 1].copy()


@numba.njit(cache=True, nogil=True)
def document_heads(doc_indptr, doc_terms, doc_weights, keep):
    """Each document's ``keep`` largest coordinates (CSR) and the largest one left out (0 if none):
    summaries are built from these, so their cost does not grow with the documents' lengths."""
    docs = len(doc_indptr) - 1
    indptr = np.zeros(docs + 1, np.int64)
    for d in range(docs):
        indptr[d + 1] = indptr[d] + min(keep, doc_indptr[d + 1] - doc_indptr[d])
    terms = np.empty(indptr[-1], np.int32)
    weights = np.empty(indptr[-1], np.float32)
    rest = np.zeros(docs, np.float32)
    for d in range(docs):
        lo, hi = doc_indptr[d], doc_indptr[d + 1]
        row = doc_weights[lo:hi]
        if hi - lo > keep:
            rest[d] = -np.partition(-row, keep)[keep]  # the (keep+1)-th largest
            chosen = np.flatnonzero(row > rest[d])
            chosen = np.concatenate((chosen, np.flatnonzero(row == rest[d])[: keep - len(chosen)]))
        else:
            chosen = np.arange(hi - lo)
        terms[indptr[d] : indptr[d + 1]] = doc_terms[lo:hi][chosen]
        weights[indptr[d] : indptr[d + 1]] = row[chosen]
    return indptr, terms, weights, rest


@numba.njit(cache=True, nogil=True)
def block_summaries(block_starts, list_docs, head_indptr, head_terms, head_weights, head_rest, vocab, keep):
    """Each block's summary: the coordinate-wise maximum of its documents' heads (their largest
    coordinates, :func:`document_heads`), cut to its ``keep`` largest coordinates (``terms`` /
    ``values``, CSR by block), plus ``rest``, the largest coordinate of any member left out of the
    summary (cut here or outside the member's head; 0 if none). So ``q . summary + rest * (|q|_1 -
    q's weight on the summary's terms)`` bounds every member's score from above for any
    non-negative query ``q``."""
    blocks = len(block_starts) - 1
    dense = np.zeros(vocab, np.float32)
    touched = np.empty(vocab, np.int64)
    indptr = np.zeros(blocks + 1, np.int64)
    terms = np.empty(blocks * keep, np.int32)
    values = np.empty(blocks * keep, np.float32)
    rest = np.zeros(blocks, np.float32)
    n_out = 0
    for b in range(blocks):
        n = 0
        left_out = np.float32(0.0)
        for p in range(block_starts[b], block_starts[b + 1]):
            d = list_docs[p]
            left_out = max(left_out, head_rest[d])
            for r in range(head_indptr[d], head_indptr[d + 1]):
                t, w = head_terms[r], head_weights[r]
                if w > dense[t]:
                    if dense[t] == 0:
                        touched[n] = t
                        n += 1
                    dense[t] = w
        found = touched[:n]
        cut = np.float32(0.0)
        if n > keep:
            cut = -np.partition(-dense[found], keep)[keep]  # the (keep+1)-th largest: the largest cut away
        for j in found:
            if dense[j] > cut and indptr[b] + keep > n_out:
                terms[n_out] = j
                values[n_out] = dense[j]
                n_out += 1
            dense[j] = 0.0
        rest[b] = max(cut, left_out)
        indptr[b + 1] = n_out
    return indptr, terms[:n_out].copy(), values[:n_out].copy(), rest


@numba.njit(cache=True, nogil=True)
def _head_terms(terms, weights, limit):
    """Positions (into ``terms``) of the query's ``limit`` heaviest terms (all when ``limit`` is 0
    or at least the query's length; equal weights: the lower term id)."""
    n = len(terms)
    by_id = np.argsort(terms, kind="mergesort")
    if limit <= 0 or limit >= n:
        return by_id
    return by_id[np.argsort(-weights[by_id], kind="mergesort")][:limit]


# Summary bounds are summed in float64 and widened by this factor: the documents' float32 sums
# may round up by up to (terms x 2^-24) relative, and a bound must never fall below a member's score.
BOUND_MARGIN = 1.0 + 1e-4


@numba.njit(cache=True, nogil=True)
def search_blocks(
    q_indptr,
    q_terms,
    q_weights,
    query_terms,
    bound_scale,
    k,
    block_indptr,
    block_starts,
    list_docs,
    summary_indptr,
    summary_terms,
    summary_values,
    summary_rest,
    doc_indptr,
    doc_terms,
    doc_weights,
    ordinals,
    vocab,
    out_positions,
    out_scores,
    out_counts,
):
    """Top ``k`` of each query row of the CSR batch ``q_*`` (best first, equal scores by ordinal).

    The blocks of the lists of the query's ``query_terms`` heaviest terms are read in the order of
    their summary bounds, best first; reading stops at the first block whose bound times
    ``bound_scale`` is below the k-th best score found so far. At ``bound_scale = 1`` no block that
    could hold a top-k document is skipped, so the answer is the exact top-k of the documents in
    those lists. A document's score: the query (scattered into a dense vector) against its whole
    forward row, added in term-id order (the exact kernel's order and float)."""
    num_docs = len(ordinals)
    seen = np.full(num_docs, -1, np.int64)
    dense_query = np.zeros(vocab, np.float32)
    for b in range(len(q_indptr) - 1):
        lo, hi = q_indptr[b], q_indptr[b + 1]
        terms, weights = q_terms[lo:hi], q_weights[lo:hi]
        norm = 0.0
        for j in range(hi - lo):
            dense_query[terms[j]] = weights[j]
            norm += weights[j]
        heads = _head_terms(terms, weights, query_terms)
        total = 0
        for j in heads:
            total += block_indptr[terms[j] + 1] - block_indptr[terms[j]]
        bounds = np.empty(total, np.float64)
        blocks = np.empty(total, np.int64)
        n = 0
        for j in heads:
            t = terms[j]
            for blk in range(block_indptr[t], block_indptr[t + 1]):
                dot, covered = 0.0, 0.0
                for r in range(summary_indptr[blk], summary_indptr[blk + 1]):
                    w = dense_query[summary_terms[r]]
                    dot += w * summary_values[r]
                    covered += w
                bounds[n] = (dot + summary_rest[blk] * max(norm - covered, 0.0)) * BOUND_MARGIN
                blocks[n] = blk
                n += 1
        order = np.argsort(-bounds)
        found = 0
        positions, scores = out_positions[b], out_scores[b]
        for i in order:
            if found == k and bounds[i] * bound_scale < scores[k - 1]:
                break
            blk = blocks[i]
            for p in range(block_starts[blk], block_starts[blk + 1]):
                d = list_docs[p]
                if seen[d] == b:
                    continue
                seen[d] = b
                s = np.float32(0.0)
                for r in range(doc_indptr[d], doc_indptr[d + 1]):
                    s += dense_query[doc_terms[r]] * doc_weights[r]
                if s <= 0:
                    continue
                if found == k and (
                    s < scores[k - 1] or (s == scores[k - 1] and ordinals[d] > ordinals[positions[k - 1]])
                ):
                    continue
                slot = found if found < k else k - 1
                while slot > 0 and (
                    scores[slot - 1] < s or (scores[slot - 1] == s and ordinals[positions[slot - 1]] > ordinals[d])
                ):
                    scores[slot] = scores[slot - 1]
                    positions[slot] = positions[slot - 1]
                    slot -= 1
                scores[slot] = s
                positions[slot] = d
                if found < k:
                    found += 1
        out_counts[b] = found
        for j in range(hi - lo):
            dense_query[terms[j]] = 0.0
