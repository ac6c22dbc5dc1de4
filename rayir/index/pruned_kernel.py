"""The pruned sparse index's kernels (numba): each term's largest weights over the collection (the
build's cut-offs), the blocks and their summaries (kept per list as a small inverted index of 8-bit
values), and search: blocks chosen by their summary scores, their documents scored exactly from the
forward index. See :mod:`.pruned` for the design."""

from __future__ import annotations

import numba
import numpy as np

from .sparse_kernel import offer


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
    summaries are built from these, so their cost does not grow with the documents' lengths (a
    random model's "sparse" vectors can hold the whole vocabulary)."""
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
def block_summaries(
    first, last, block_starts, list_docs, head_indptr, head_terms, head_weights, head_rest, vocab, energy, cap
):
    """Summaries of blocks ``first`` to ``last - 1``: the coordinate-wise maximum of the members'
    heads (:func:`document_heads`), cut to its largest coordinates until they hold ``energy`` (a
    share) of its mass (the coordinate that crosses it and any equal to it included), at most
    ``cap`` of them. Returns the summaries as CSR by block (``indptr`` from 0, ``terms``,
    ``values``) and ``rest``: the largest coordinate of any member left out (cut here or outside
    its head; 0 if none), which bounds every member's weight on a term the summary leaves out."""
    blocks = last - first
    dense = np.zeros(vocab, np.float32)
    touched = np.empty(vocab, np.int64)
    capacity = max(blocks * 32, 64)
    terms = np.empty(capacity, np.int32)
    values = np.empty(capacity, np.float32)
    indptr = np.zeros(blocks + 1, np.int64)
    rest = np.zeros(blocks, np.float32)
    n_out = 0
    for i in range(blocks):
        b = first + i
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
        ascending = np.sort(dense[found])
        until = np.float64(ascending.sum()) * energy
        mass, threshold = 0.0, np.float32(0.0)
        for j in range(n - 1, max(n - cap, 0) - 1, -1):
            mass += ascending[j]
            threshold = ascending[j]
            if mass >= until:
                break
        if n_out + n > capacity:
            capacity = max(2 * capacity, n_out + n)
            terms = np.concatenate((terms[:n_out], np.empty(capacity - n_out, np.int32)))
            values = np.concatenate((values[:n_out], np.empty(capacity - n_out, np.float32)))
        for t in found:
            w = dense[t]
            if w >= threshold:
                terms[n_out] = t
                values[n_out] = w
                n_out += 1
            elif w > left_out:
                left_out = w
            dense[t] = 0.0
        rest[i] = left_out
        indptr[i + 1] = n_out
    return indptr, terms[:n_out].copy(), values[:n_out].copy(), rest


@numba.njit(cache=True, nogil=True)
def invert_summaries(block_indptr, summary_indptr, summary_terms, summary_values, block_dtype):
    """The summaries of each term's blocks as a small inverted index, so that scoring a list's
    blocks costs only the entries of the query's terms: ``term_indptr`` (term -> its distinct
    summary terms), ``summary_terms`` (ascending within a term), ``entry_indptr`` (summary term ->
    its entries), ``entry_blocks`` (the block, counted within the list) and ``entry_values``
    (uint8). A block's values are ``ceil(value / scale)`` with ``scale`` (``block_scales``) its
    largest value / 255, so ``entry value x scale`` never falls below the value (beyond float
    rounding)."""
    lists, blocks = len(block_indptr) - 1, len(summary_indptr) - 1
    scales = np.ones(blocks, np.float32)
    for b in range(blocks):
        top = np.float32(0.0)
        for e in range(summary_indptr[b], summary_indptr[b + 1]):
            top = max(top, summary_values[e])
        if top > 0:
            scales[b] = top / np.float32(255.0)
    entries = len(summary_terms)
    entry_blocks = np.empty(entries, block_dtype)
    entry_values = np.empty(entries, np.uint8)
    distinct = np.empty(entries, np.int32)
    entry_indptr = np.zeros(entries + 1, np.int64)
    term_indptr = np.zeros(lists + 1, np.int64)
    n = 0
    for t in range(lists):
        first_block, last_block = block_indptr[t], block_indptr[t + 1]
        lo, hi = summary_indptr[first_block], summary_indptr[last_block]
        owner = np.empty(hi - lo, np.int64)
        for b in range(first_block, last_block):
            owner[summary_indptr[b] - lo : summary_indptr[b + 1] - lo] = b
        order = np.argsort(summary_terms[lo:hi], kind="mergesort")
        for i in range(hi - lo):
            e, b = lo + order[i], owner[order[i]]
            if i == 0 or summary_terms[e] != distinct[n - 1]:
                distinct[n] = summary_terms[e]
                entry_indptr[n] = lo + i
                n += 1
            entry_blocks[lo + i] = b - first_block
            entry_values[lo + i] = np.uint8(min(np.ceil(summary_values[e] / scales[b]), 255.0))
        term_indptr[t + 1] = n
    entry_indptr[n] = entries
    return term_indptr, distinct[:n].copy(), entry_indptr[: n + 1].copy(), entry_blocks, entry_values, scales


@numba.njit(cache=True, nogil=True)
def _list_scores(t, q_terms, q_weights, dense_query, block_indptr, summaries, dots, covered):
    """Each block of term ``t``'s list: the query (``q_terms`` ascending, also scattered in
    ``dense_query``) against its summary (``dots``, in 8-bit units) and the query weight on the
    summary's terms (``covered``). Walks the shorter side: the list's summary terms, looked up in
    the dense query, or the query's terms, each found among them by binary search; either way the
    entries are added in term order."""
    term_indptr, summary_terms, entry_indptr, entry_blocks, entry_values = summaries
    blocks = block_indptr[t + 1] - block_indptr[t]
    dots[:blocks] = 0.0
    covered[:blocks] = 0.0
    at, end = term_indptr[t], term_indptr[t + 1]
    if end - at <= len(q_terms):
        for position in range(at, end):
            w = dense_query[summary_terms[position]]
            if w > 0:
                for e in range(np.uint64(entry_indptr[position]), np.uint64(entry_indptr[position + 1])):
                    dots[entry_blocks[e]] += entry_values[e] * w
                    covered[entry_blocks[e]] += w
        return blocks
    for j in range(len(q_terms)):
        lo, hi = at, end
        while lo < hi:
            mid = (lo + hi) >> 1
            if summary_terms[mid] < q_terms[j]:
                lo = mid + 1
            else:
                hi = mid
        at = lo
        if at == end:
            break
        if summary_terms[at] == q_terms[j] and q_weights[j] > 0:
            w = q_weights[j]
            for e in range(np.uint64(entry_indptr[at]), np.uint64(entry_indptr[at + 1])):
                dots[entry_blocks[e]] += entry_values[e] * w
                covered[entry_blocks[e]] += w
    return blocks


@numba.njit(cache=True, nogil=True)
def _score(d, dense_query, doc_indptr, doc_terms, doc_weights):
    """Document ``d``'s exact score: its forward row against the dense query, in term-id order
    (the exact kernel's order and float)."""
    s = np.float32(0.0)
    # unsigned indices: numba then adds no negative-index fix-up (six instructions a posting)
    for r in range(np.uint64(doc_indptr[d]), np.uint64(doc_indptr[d + 1])):
        s += dense_query[np.uint64(doc_terms[r])] * doc_weights[r]
    return s


@numba.njit(cache=True, nogil=True)
def _read_block(blk, query, found, k, lists, seen, dense_query, positions, scores):
    """Score every not yet seen document of block ``blk`` (``seen[d] == query`` marks them);
    ``lists``: ``(block_starts, list_docs, forward, ordinals)``."""
    block_starts, list_docs, forward, ordinals = lists
    doc_indptr, doc_terms, doc_weights = forward
    # First touch two places of every member's row, so their cache misses overlap instead of
    # coming one document at a time (numba has no prefetch); the sum keeps the loads alive.
    touched = np.float32(0.0)
    for p in range(block_starts[blk], block_starts[blk + 1]):
        d = list_docs[p]
        if seen[d] != query and doc_indptr[d + 1] > doc_indptr[d]:
            middle = (doc_indptr[d] + doc_indptr[d + 1]) >> 1
            touched += doc_weights[doc_indptr[d]] + doc_weights[middle] + doc_terms[doc_indptr[d]] + doc_terms[middle]
    if touched < 0:  # never: weights and term ids are non-negative
        return -1
    for p in range(block_starts[blk], block_starts[blk + 1]):
        d = list_docs[p]
        if seen[d] != query:
            seen[d] = query
            found = offer(
                _score(d, dense_query, doc_indptr, doc_terms, doc_weights), d, found, k, positions, scores, ordinals
            )
    return found


# Summary bounds are summed in float64 and widened by this factor: the documents' float32 sums
# may round up by up to (terms x 2^-24) relative, and a bound must never fall below a member's score.
BOUND_MARGIN = 1.0 + 1e-4


@numba.njit(cache=True, nogil=True)
def search_blocks(
    q_indptr,
    q_terms,
    q_weights,
    query_terms,
    heap_factor,
    k,
    block_indptr,
    block_starts,
    list_docs,
    summaries,
    block_scales,
    block_rest,
    forward,
    ordinals,
    vocab,
    out_positions,
    out_scores,
    out_counts,
):
    """Top ``k`` of each query row of the CSR batch ``q_*`` (terms ascending within a row; best
    first, equal scores by ordinal), from the blocks of the lists of the query's ``query_terms``
    heaviest terms (0: all).

    ``heap_factor = 0`` (bounded): every block gets an upper bound on its documents' scores
    (``q . summary`` plus ``rest`` times the query weight the summary does not cover); blocks are
    read best bound first until a bound is below the k-th best score, so the answer is the exact
    top-k of the documents in those lists. ``heap_factor > 0`` (Seismic's estimate): the lists are
    read heaviest query term first, the first list's blocks best summary score first, the others'
    in list order; a block is skipped when its ``q . summary`` is below ``heap_factor`` times the
    k-th best score so far."""
    num_docs = len(ordinals)
    lists = (block_starts, list_docs, forward, ordinals)
    seen = np.full(num_docs, -1, np.int64)
    dense_query = np.zeros(vocab, np.float32)
    longest = 1
    for t in range(len(block_indptr) - 1):
        longest = max(longest, block_indptr[t + 1] - block_indptr[t])
    dots = np.zeros(longest, np.float64)
    covered = np.zeros(longest, np.float64)
    for b in range(len(q_indptr) - 1):
        lo, hi = q_indptr[b], q_indptr[b + 1]
        terms, weights = q_terms[lo:hi], q_weights[lo:hi]
        norm = 0.0
        for j in range(hi - lo):
            dense_query[terms[j]] = weights[j]
            norm += weights[j]
        heads = np.argsort(-weights, kind="mergesort")  # heaviest first, equal weights by term id
        if 0 < query_terms < len(heads):
            heads = heads[:query_terms]
        positions, scores = out_positions[b], out_scores[b]
        found = 0
        if heap_factor == 0:
            total = 0
            for j in heads:
                total += block_indptr[terms[j] + 1] - block_indptr[terms[j]]
            bounds = np.empty(total, np.float64)
            blocks = np.empty(total, np.int64)
            n = 0
            for j in heads:
                t = terms[j]
                count = _list_scores(t, terms, weights, dense_query, block_indptr, summaries, dots, covered)
                for x in range(count):
                    blk = block_indptr[t] + x
                    estimate = dots[x] * block_scales[blk]
                    bounds[n] = (estimate + block_rest[blk] * max(norm - covered[x], 0.0)) * BOUND_MARGIN
                    blocks[n] = blk
                    n += 1
            for i in np.argsort(-bounds):
                if found == k and bounds[i] < scores[k - 1]:
                    break
                found = _read_block(blocks[i], b, found, k, lists, seen, dense_query, positions, scores)
        else:
            first = True
            for j in heads:
                t = terms[j]
                count = _list_scores(t, terms, weights, dense_query, block_indptr, summaries, dots, covered)
                for x in range(count):
                    dots[x] *= block_scales[block_indptr[t] + x]
                order = np.argsort(-dots[:count]) if first else np.arange(count)
                for x in order:
                    if found == k and dots[x] < heap_factor * scores[k - 1]:
                        if first:
                            break  # sorted: no later block of this list is read either
                        continue
                    found = _read_block(block_indptr[t] + x, b, found, k, lists, seen, dense_query, positions, scores)
                first = False
        out_counts[b] = found
        for j in range(hi - lo):
            dense_query[terms[j]] = 0.0
