"""Compressed late-interaction search (after PLAID, Santhanam et al. 2022): each token vector is a
centroid id plus b-bit residuals (:mod:`.residual_codec`); centroids pick the candidates, the
decompressed vectors rank them by MaxSim.

Search, per query (token vectors ``Q``, the index's one codec):

1. ``S = Q @ centroids.T``; each query token probes its ``nprobe`` best centroids.
2. Candidates: every document with a token assigned to a probed centroid (per-centroid document
   lists, ``ivf_*``).
3. Centroid interaction: each candidate's MaxSim with its tokens replaced by their centroids
   (``sum_q max_t S[q, code_t]``), read from ``S``; the best ``ndocs`` go on.
4. Their tokens are decompressed (centroid + residual values, re-normalised for cosine models) and
   scored by exact MaxSim against ``Q``; that score ranks the hits.

Shard-count invariance: the codec is trained once for the whole index, so steps 1-3 give every
document the same candidacy and centroid score whatever the shards; the ``ndocs`` budget of step
3 is *global*: a shard answers its own best ``ndocs`` by centroid score (each with its exact score),
and :func:`.hits.merge_hits` keeps the ``ndocs`` best by centroid score over all shards before
ranking them by exact score. So 1, 2 or N shards return the same top-k.

Files: the codec's (``centroids.npy``, ``bucket_values.npy``, ``cutoffs.npy``), ``codes.npy``
``(T,)`` int32, ``residuals.npy`` ``(T, D * bits / 8)`` uint8, ``offsets.npy`` (document ``i`` owns
tokens ``offsets[i]:offsets[i+1]``), ``ivf_offsets.npy`` + ``ivf_docs.npy`` (centroid ``c``'s
documents, each once). Nothing pickled.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numba
import numpy as np

from ..errors import IntegrityError
from .checks import check_array, check_offsets, check_range
from .files import finish_shard, load_array, load_meta, load_ordinals, save_array
from .hits import HitMatrix, top_k
from .queries import QueryBatch
from .residual_codec import CODEC_FILES, CodecSettings, ResidualCodec, normalized

CODEC_DIR = "codec"  # beside the shards while the index is built; each shard keeps a copy


def build_compressed_shard(
    tokens: np.ndarray,
    counts: np.ndarray,
    doc_ids: list[str],
    ordinals: np.ndarray,
    directory: Path,
    factory: str,
    normalize: bool,
    query_aggregation: str,
    codec_dir: Path,
) -> dict:
    """Encode a shard's token vectors with the index's codec (trained by
    :func:`.residual_codec.train_codec` into ``codec_dir``) and write its files."""
    settings = CodecSettings.parse(factory)
    codec = ResidualCodec.load(codec_dir, tokens.shape[1], settings.bits, normalize)
    codes, residuals = codec.encode(normalized(tokens, normalize))
    docs = np.repeat(np.arange(len(doc_ids), dtype=np.int32), counts)
    pairs = np.unique(codes.astype(np.int64) * len(doc_ids) + docs)  # (centroid, document) once each
    ivf_offsets = np.searchsorted(pairs // max(len(doc_ids), 1), np.arange(len(codec.centroids) + 1))
    directory.mkdir(parents=True, exist_ok=True)
    for name in CODEC_FILES:
        shutil.copyfile(codec_dir / name, directory / name)
    save_array(directory / "codes.npy", codes)
    save_array(directory / "residuals.npy", residuals)
    save_array(directory / "offsets.npy", np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    save_array(directory / "ivf_offsets.npy", ivf_offsets.astype(np.int64))
    save_array(directory / "ivf_docs.npy", (pairs % max(len(doc_ids), 1)).astype(np.int32))
    meta = {
        "type": "compressed_multi_vector",
        "factory": factory,
        "bits": settings.bits,
        "centroids": int(len(codec.centroids)),
        "normalize": normalize,
        "dim": int(tokens.shape[1]),
        "query_aggregation": query_aggregation,
        "documents": len(doc_ids),
        "tokens": int(len(codes)),
    }
    return finish_shard(directory, doc_ids, ordinals, meta)


@numba.njit(cache=True)
def _candidates(centroid_scores, nprobe, ivf_offsets, ivf_docs, seen):
    """The documents with a token at one of the ``nprobe`` best centroids of some query token (ties:
    the lower centroid id), each once, ascending (``seen``: a cleared scratch mask)."""
    queries, centroids = centroid_scores.shape
    probes = np.empty(queries * nprobe, np.int64)
    best = np.empty(nprobe, np.float32)
    for q in range(queries):
        best[:] = -np.inf
        chosen = probes[q * nprobe : (q + 1) * nprobe]
        chosen[:] = -1
        for c in range(centroids):
            score = centroid_scores[q, c]
            if score > best[nprobe - 1]:  # insert, keeping best[] descending
                slot = nprobe - 1
                while slot > 0 and score > best[slot - 1]:
                    best[slot] = best[slot - 1]
                    chosen[slot] = chosen[slot - 1]
                    slot -= 1
                best[slot] = score
                chosen[slot] = c
    total = 0
    for c in probes:
        if c >= 0:
            total += ivf_offsets[c + 1] - ivf_offsets[c]
    out = np.empty(total, np.int32)
    n = 0
    for c in probes:
        if c < 0:
            continue
        for p in range(ivf_offsets[c], ivf_offsets[c + 1]):
            d = ivf_docs[p]
            if not seen[d]:
                seen[d] = True
                out[n] = d
                n += 1
    for i in range(n):
        seen[out[i]] = False
    return np.sort(out[:n])


@numba.njit(cache=True)
def _centroid_scores(scores_by_centroid, codes, offsets, docs):
    """``sum_q max_t S[q, code_t]`` per document; ``scores_by_centroid`` is ``S.T`` ``(C, Lq)``."""
    width = scores_by_centroid.shape[1]
    out = np.empty(len(docs), np.float32)
    best = np.empty(width, np.float32)
    for i in range(len(docs)):
        best[:] = -np.inf
        for t in range(offsets[docs[i]], offsets[docs[i] + 1]):
            row = scores_by_centroid[codes[t]]
            for q in range(width):
                if row[q] > best[q]:
                    best[q] = row[q]
        total = np.float32(0.0)
        for q in range(width):
            total += best[q]
        out[i] = total
    return out


@numba.njit(cache=True, fastmath=True)
def _decompress(docs, offsets, codes, residuals, centroids, table, normalize):
    """The decompressed token vectors of ``docs`` one after another, and each document's first row."""
    starts = np.empty(len(docs) + 1, np.int64)
    starts[0] = 0
    for i in range(len(docs)):
        starts[i + 1] = starts[i] + offsets[docs[i] + 1] - offsets[docs[i]]
    dim, width, per_byte = centroids.shape[1], residuals.shape[1], table.shape[2]
    out = np.empty((starts[-1], dim), np.float32)
    row = 0
    for i in range(len(docs)):
        for t in range(offsets[docs[i]], offsets[docs[i] + 1]):
            code = codes[t]
            norm = np.float32(0.0)
            for j in range(width):
                byte = residuals[t, j]
                for s in range(per_byte):
                    d = j * per_byte + s
                    value = centroids[code, d] + table[j, byte, s]
                    out[row, d] = value
                    norm += value * value
            if normalize:
                scale = np.float32(1.0) / max(np.sqrt(norm), np.float32(1e-12))
                for d in range(dim):
                    out[row, d] *= scale
            row += 1
    return out, starts


class CompressedMultiVectorShard:
    """Search options: ``nprobe`` (centroids probed per query token, default 2) and ``ndocs`` (the
    global candidate budget ranked by exact MaxSim; default ``max(64, 2 * k)``)."""

    def __init__(self, directory: Path, nprobe: int = 2, ndocs: int | None = None) -> None:
        if nprobe < 1 or (ndocs is not None and ndocs < 1):
            raise ValueError(f"nprobe and ndocs must be >= 1, got nprobe={nprobe}, ndocs={ndocs}")
        self.meta = meta = load_meta(directory)
        documents, tokens, dim, bits = meta["documents"], meta.get("tokens"), meta.get("dim"), meta.get("bits")
        self.codec = ResidualCodec.load(directory, dim, bits, meta["normalize"])
        centroids = len(self.codec.centroids)
        self.byte_table = self.codec.byte_table()
        path = directory / "codes.npy"
        self.codes = check_array(path, load_array(path, mmap=True), np.int32, 1, tokens)
        check_range(path, np.asarray(self.codes), 0, centroids, "centroid ids")
        path = directory / "residuals.npy"
        self.residuals = check_array(path, load_array(path, mmap=True), np.uint8, 2, tokens)
        if self.residuals.shape[1] != self.codec.packed_width:
            raise IntegrityError(
                f"{path}: {self.residuals.shape[1]} bytes per token, expected {self.codec.packed_width}"
            )
        path = directory / "offsets.npy"
        self.offsets = check_array(path, load_array(path), np.int64, 1, documents + 1)
        check_offsets(path, self.offsets, tokens)
        path = directory / "ivf_docs.npy"
        self.ivf_docs = check_array(path, load_array(path), np.int32, 1)
        check_range(path, self.ivf_docs, 0, documents, "document numbers")
        path = directory / "ivf_offsets.npy"
        self.ivf_offsets = check_array(path, load_array(path), np.int64, 1, centroids + 1)
        check_offsets(path, self.ivf_offsets, len(self.ivf_docs))
        self.ordinals = load_ordinals(directory, documents)
        self.nprobe, self.ndocs = min(nprobe, centroids), ndocs
        self._seen = np.zeros(documents, np.bool_)

    def search(self, queries: QueryBatch, k: int) -> HitMatrix:
        budget = self.ndocs or max(64, 2 * k)
        hits = HitMatrix.empty(len(queries), min(budget, len(self.ordinals)))
        hits.prefilter, hits.budget = np.full(hits.scores.shape, -np.inf, np.float32), budget
        for row, (vectors, mask) in enumerate(zip(queries.vectors, queries.mask)):
            query = normalized(vectors[mask.astype(bool)], self.meta["normalize"])
            centroid_scores = query @ self.codec.centroids.T  # (Lq, C): the same in every shard
            docs = _candidates(centroid_scores, self.nprobe, self.ivf_offsets, self.ivf_docs, self._seen)
            if not len(docs):
                continue
            approx = _centroid_scores(np.ascontiguousarray(centroid_scores.T), self.codes, self.offsets, docs)
            chosen, approx = top_k(approx, budget, self.ordinals[docs])
            docs = docs[chosen]
            exact = self._maxsim(query, docs)
            count = len(docs)
            hits.scores[row, :count], hits.prefilter[row, :count] = exact, approx
            hits.ordinals[row, :count], hits.counts[row] = self.ordinals[docs], count
        return hits

    def _maxsim(self, query: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """Exact MaxSim of ``query`` against the decompressed tokens of ``docs``."""
        vectors, starts = _decompress(
            docs,
            self.offsets,
            self.codes,
            self.residuals,
            self.codec.centroids,
            self.byte_table,
            self.meta["normalize"],
        )
        best = np.maximum.reduceat(query @ vectors.T, starts[:-1], axis=1)  # (Lq, docs)
        total = best.sum(axis=0, dtype=np.float32)
        return total / len(query) if self.meta["query_aggregation"] == "mean" else total
