"""Residual compression of token vectors (after ColBERTv2): a centroid id plus b bits per dimension.

A token vector ``v`` is stored as the id of its nearest centroid ``c`` and, per dimension, the
bucket its residual ``v - c`` falls in (``2**bits`` buckets per dimension). It is read back as ``c``
plus each bucket's value, re-normalised for cosine models. ColBERTv2 cuts every dimension at the
same residual quantiles; here each dimension gets its own buckets, refined by Lloyd-Max
(:func:`lloyd_buckets`), which reads vectors back closer for the same bits. At 128 dimensions and
2 bits that is 4 bytes of id + 32 bytes of residual per token instead of 512 bytes of float32.

One codec serves every shard of an index: it is trained once on a sample of the whole collection
(:func:`train_codec`), so a query's centroid scores, and with them which documents become
candidates, do not depend on how the collection was split into shards.

Files (``.npy``, nothing pickled): ``centroids.npy`` ``(C, D)`` float32, ``cutoffs.npy``
``(D, 2**bits - 1)`` and ``bucket_values.npy`` ``(D, 2**bits)`` float32, beside the settings in
the shard's ``meta.json``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, IntegrityError
from .checks import check_array, check_finite
from .factory import integer_settings
from .files import load_array, save_array

logger = logging.getLogger(__name__)

BITS = (1, 2, 4, 8)
RESIDUAL_SAMPLE = 131_072  # held-out token residuals the buckets are fitted on (ColBERTv2: at most 50k)
CODEC_FILES = ("centroids.npy", "cutoffs.npy", "bucket_values.npy")


def default_centroids(tokens: int) -> int:
    """ColBERTv2's rule: the power of two at or below ``16 * sqrt(tokens)`` (at least 16)."""
    return max(16, 2 ** int(math.floor(math.log2(16 * math.sqrt(max(tokens, 1))))))


@dataclass(frozen=True)
class CodecSettings:
    """Build knobs of a compressed multi-vector index: ``factory="compressed[,name=value…]"``.

    ``bits``: residual bits per dimension (1, 2, 4 or 8); ``centroids``: how many (0: ColBERTv2's
    rule from the collection's token count); ``sample``: token vectors k-means trains on, as a
    multiple of the centroid count; ``iterations``: k-means rounds; ``seed``: the sample's seed.
    """

    bits: int = 2
    centroids: int = 0
    sample: int = 128
    iterations: int = 4
    seed: int = 0

    @classmethod
    def parse(cls, factory: str) -> CodecSettings:
        values = integer_settings(factory, "compressed", cls.__dataclass_fields__)
        settings = cls(**values)
        if settings.bits not in BITS:
            raise ConfigError(f"factory {factory!r}: bits must be one of {BITS}")
        if settings.sample < 1 or settings.iterations < 1:
            raise ConfigError(f"factory {factory!r}: sample and iterations must be >= 1")
        return settings


@dataclass
class ResidualCodec:
    centroids: np.ndarray  # (C, D) float32
    cutoffs: np.ndarray  # (D, 2**bits - 1) float32, ascending per dimension
    bucket_values: np.ndarray  # (D, 2**bits) float32
    normalize: bool

    @property
    def bits(self) -> int:
        return int(round(math.log2(self.bucket_values.shape[1])))

    @property
    def dim(self) -> int:
        return self.centroids.shape[1]

    @property
    def packed_width(self) -> int:
        """Bytes of residual per token."""
        return self.dim * self.bits // 8

    @classmethod
    def train(
        cls, sample: np.ndarray, centroids: int, bits: int, normalize: bool, iterations: int, seed: int
    ) -> ResidualCodec:
        """k-means centroids of ``sample`` (already normalised for cosine models), then each
        dimension's residual buckets (:func:`lloyd_buckets`) fitted on a held-out share of it (5%,
        or up to a fifth for small samples, at most 20,000 then; never more than ``RESIDUAL_SAMPLE``):
        residuals of the points k-means fitted are smaller than those of unseen tokens, and buckets
        fitted on them would be too narrow."""
        import faiss

        if sample.shape[1] * bits % 8:
            raise ConfigError(f"{sample.shape[1]} dimensions x {bits} bits do not fill whole bytes")
        order = np.random.default_rng(seed).permutation(len(sample))
        held_out = min(RESIDUAL_SAMPLE, max(len(sample) // 20, min(len(sample) // 5, 20_000)))
        fit, held = sample[order[held_out:]], sample[order[:held_out]]
        kmeans = faiss.Kmeans(fit.shape[1], min(centroids, len(fit)), niter=iterations, seed=seed, spherical=normalize)
        kmeans.train(fit)
        means = np.ascontiguousarray(kmeans.centroids, np.float32)
        cutoffs, values = lloyd_buckets(held - means[nearest_centroids(means, held)], 2**bits)
        return cls(means, cutoffs, values, normalize)

    def encode(self, tokens: np.ndarray, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """Centroid ids ``(T,)`` int32 and packed residual buckets ``(T, packed_width)`` uint8,
        ``chunk`` tokens at a time (the float residuals of a whole shard are never held)."""
        codes = nearest_centroids(self.centroids, tokens)
        packed = np.empty((len(tokens), self.packed_width), np.uint8)
        per_byte = 8 // self.bits
        shifts = (np.arange(per_byte) * self.bits).astype(np.uint16)
        for start in range(0, len(tokens), chunk):
            stop = min(start + chunk, len(tokens))
            residuals = tokens[start:stop] - self.centroids[codes[start:stop]]
            buckets = np.empty(residuals.shape, np.uint16)
            for d in range(self.dim):
                buckets[:, d] = np.searchsorted(self.cutoffs[d], residuals[:, d], side="right")
            packed[start:stop] = (buckets.reshape(stop - start, -1, per_byte) << shifts).sum(axis=2)
        return codes, packed

    def byte_table(self) -> np.ndarray:
        """``(packed_width, 256, 8 // bits)``: the residual values a byte at each position decodes to."""
        per_byte, mask = 8 // self.bits, 2**self.bits - 1
        byte = np.arange(256)
        table = np.empty((self.packed_width, 256, per_byte), np.float32)
        for slot in range(per_byte):
            buckets = (byte >> (slot * self.bits)) & mask
            table[:, :, slot] = self.bucket_values.reshape(self.packed_width, per_byte, -1)[:, slot, :][:, buckets]
        return table

    def decode(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """The approximate token vectors ``(T, D)`` float32 (a reference; the index's kernel does the same)."""
        table = self.byte_table()
        residuals = table[np.arange(self.packed_width)[None, :], packed].reshape(len(codes), self.dim)
        vectors = self.centroids[codes] + residuals
        if self.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, array in zip(CODEC_FILES, (self.centroids, self.cutoffs, self.bucket_values)):
            save_array(directory / name, array)

    @classmethod
    def load(cls, directory: Path, dim: int, bits: int, normalize: bool) -> ResidualCodec:
        """The codec files of a shard (or of an index being built), checked against its settings."""
        arrays = []
        for name, width in zip(CODEC_FILES, (dim, 2**bits - 1, 2**bits)):
            path = directory / name
            array = check_array(path, load_array(path), np.float32, 2)
            if array.shape[1] != width or (arrays and len(array) != dim):
                raise IntegrityError(f"{path}: shape {array.shape}, expected (*, {width}) for {dim} dimensions")
            check_finite(path, array)
            arrays.append(array)
        return cls(*arrays, normalize=normalize)


def lloyd_buckets(residuals: np.ndarray, levels: int, rounds: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Per dimension, ``levels`` buckets of the residuals: cut-offs ``(D, levels - 1)`` and values
    ``(D, levels)``. Starts from equal-count buckets (ColBERTv2's quantiles) and refines them as a
    1-D k-means (Lloyd-Max): each value becomes its bucket's mean, each cut-off the midpoint of its
    neighbours' values; this lowers the squared error of the read-back vectors."""
    dims = residuals.shape[1]
    cutoffs = np.quantile(residuals, np.arange(1, levels) / levels, axis=0).T.astype(np.float64)
    values = np.quantile(residuals, (np.arange(levels) + 0.5) / levels, axis=0).T.astype(np.float64)
    for d in range(dims):
        column = np.sort(residuals[:, d].astype(np.float64))
        sums = np.concatenate([[0.0], np.cumsum(column)])
        for _ in range(rounds):
            edges = np.concatenate([[0], np.searchsorted(column, cutoffs[d], side="right"), [len(column)]])
            sizes = np.diff(edges)
            means = (sums[edges[1:]] - sums[edges[:-1]]) / np.maximum(sizes, 1)
            values[d] = np.where(sizes > 0, means, values[d])
            cutoffs[d] = (values[d, 1:] + values[d, :-1]) / 2
    return np.ascontiguousarray(cutoffs, np.float32), np.ascontiguousarray(values, np.float32)


def nearest_centroids(centroids: np.ndarray, tokens: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Each token's nearest centroid (L2; for unit vectors also the largest inner product)."""
    import faiss

    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(centroids)
    codes = np.empty(len(tokens), np.int32)
    for start in range(0, len(tokens), chunk):
        _, nearest = index.search(np.ascontiguousarray(tokens[start : start + chunk], np.float32), 1)
        codes[start : start + chunk] = nearest[:, 0]
    return codes


def normalized(tokens: np.ndarray, normalize: bool) -> np.ndarray:
    tokens = np.ascontiguousarray(tokens, np.float32)
    if normalize:
        tokens = tokens / np.maximum(np.linalg.norm(tokens, axis=1, keepdims=True), 1e-12)
    return tokens


def train_codec(
    embeddings_dir: str, files: list[dict], target: str, settings: CodecSettings, normalize: bool, threads: int | None
) -> dict:
    """Train the index's one codec on a seeded sample of documents from every embedding file and
    save it in ``target``. Runs as one task before the shard builds; reads one file at a time."""
    import faiss
    import pyarrow.parquet as pq

    from ..encode.formats import token_matrix

    if threads:
        faiss.omp_set_num_threads(threads)
    root = Path(embeddings_dir)
    counts = [pq.read_table(root / entry["file"], columns=["num_tokens"]).column(0).to_numpy() for entry in files]
    total = int(sum(c.sum() for c in counts))
    if total == 0:
        raise ValueError(f"{embeddings_dir}: no token vectors to train the codec on")
    centroids = settings.centroids or default_centroids(total)
    share = min(1.0, settings.sample * centroids / total)  # of the documents, hence about of the tokens
    rng = np.random.default_rng(settings.seed)
    parts = []
    for entry, doc_counts in zip(files, counts):
        chosen = np.flatnonzero(rng.random(len(doc_counts)) < share)
        if len(chosen):
            tokens, _ = token_matrix(pq.read_table(root / entry["file"]).take(chosen))
            parts.append(normalized(tokens, normalize))
    sample = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    if len(sample) < centroids:
        raise ValueError(
            f"{embeddings_dir}: {len(sample)} sampled token vectors for {centroids} centroids; "
            "ask for fewer centroids (factory 'compressed,centroids=N') or a larger sample"
        )
    codec = ResidualCodec.train(sample, centroids, settings.bits, normalize, settings.iterations, settings.seed)
    codec.save(Path(target))
    logger.info(
        "codec: %d centroids, %d bits, trained on %d of %d token vectors", centroids, settings.bits, len(sample), total
    )
    return {"centroids": centroids, "sample_tokens": int(len(sample)), "tokens": total}
