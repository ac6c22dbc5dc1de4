"""Every index file is verified when it loads: a flipped byte anywhere, a crafted array or a manifest
path leading outside the index is an error naming the file, never a run and never a crash."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rayir import Searcher
from rayir.encode import encode_corpus
from rayir.errors import IntegrityError
from rayir.index import build_index
from rayir.index.manifest import read_index_manifest, write_index_manifest
from rayir.integrity import checksum_files

MULTI = {"mode": "multi_vector", "pooling": None, "embedding_dim": 8, "normalize": True, "doc_max_length": 32}
QUERIES = ["alpha beta", "the quick brown fox"]


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, sample_collection, tiny_bert_dir) -> dict[str, Path]:
    """A dense, a sparse (BM25, with its query-side files), a multi-vector and a compressed
    multi-vector index, four shards each (8, 7, 7 and 8 of the 30 documents)."""
    root = tmp_path_factory.mktemp("integrity")
    models = {"dense": (str(tiny_bert_dir), {}), "sparse": ("bm25", {}), "multi_vector": (str(tiny_bert_dir), MULTI)}
    built = {}
    for kind, (model, config) in models.items():
        encoded = encode_corpus(
            model, sample_collection, root / f"{kind}-emb", docs_per_shard=10, model_config=config, in_process=True
        )
        build_index(encoded.output_dir, root / kind, num_shards=4, in_process=True)
        built[kind] = root / kind
    build_index(
        root / "multi_vector-emb", root / "compressed", num_shards=4, factory="compressed,centroids=64", in_process=True
    )
    built["compressed"] = root / "compressed"
    return built


def search(index_dir: Path, **options):
    with Searcher(index_dir, in_process=True, **options) as searcher:
        return searcher.search_texts(QUERIES, k=5)


def copy_of(index_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / index_dir.name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(index_dir, target)
    return target


@pytest.mark.parametrize("kind", ["dense", "sparse", "multi_vector", "compressed"])
def test_one_flipped_byte_in_any_index_file_is_named(kind, indexes, tmp_path):
    search(indexes[kind])  # the intact index searches
    files = sorted(p.relative_to(indexes[kind]) for p in indexes[kind].rglob("*") if p.is_file())
    assert len(files) >= 10
    for relative in files:
        index_dir = copy_of(indexes[kind], tmp_path)
        data = bytearray((index_dir / relative).read_bytes())
        data[len(data) // 2] ^= 0x01
        (index_dir / relative).write_bytes(bytes(data))
        with pytest.raises(IntegrityError) as caught:
            search(index_dir)
        assert str(index_dir / relative) in str(caught.value), relative


def rewrite(index_dir: Path, shard: int, name: str, array: np.ndarray) -> None:
    """Replace a shard's array and record its new checksum, as a crafted index would."""
    np.save(index_dir / f"shard-{shard:04d}" / name, array, allow_pickle=False)
    manifest = read_index_manifest(index_dir)
    manifest["shards"][shard]["files"] = checksum_files(index_dir / f"shard-{shard:04d}")
    write_index_manifest(index_dir, manifest)


def crafted(array_of, name: str, change) -> np.ndarray:
    array = np.array(array_of(name))
    change(array)
    return array


@pytest.mark.parametrize(
    "kind, name, change, problem",
    [
        ("sparse", "docs.npy", lambda a: a.__setitem__(0, 10**6), "document numbers outside"),
        ("sparse", "docs.npy", lambda a: a.__setitem__(0, -5), "document numbers outside"),
        ("sparse", "indptr.npy", lambda a: a.__setitem__(len(a) // 2, 10**9), "offsets must"),
        ("sparse", "weights.npy", lambda a: a.__setitem__(0, np.nan), "not finite"),
        ("sparse", "ordinals.npy", lambda a: a.__setitem__(0, 10**6), "ordinals outside"),
        ("dense", "ordinals.npy", lambda a: a.__setitem__(0, -1), "ordinals outside"),
        ("multi_vector", "offsets.npy", lambda a: a.__setitem__(1, 10**9), "offsets must"),
        ("compressed", "codes.npy", lambda a: a.__setitem__(3, 10**6), "centroid ids outside"),
        ("compressed", "ivf_docs.npy", lambda a: a.__setitem__(0, -1), "document numbers outside"),
        ("compressed", "ivf_offsets.npy", lambda a: a.__setitem__(5, 10**9), "offsets must"),
        ("compressed", "bucket_values.npy", lambda a: a.__setitem__((0, 0), np.inf), "not finite"),
    ],
)
def test_crafted_arrays_with_matching_checksums_are_refused_before_any_kernel(
    kind, name, change, problem, indexes, tmp_path
):
    index_dir = copy_of(indexes[kind], tmp_path)
    rewrite(index_dir, 0, name, crafted(lambda n: np.load(index_dir / "shard-0000" / n), name, change))
    with pytest.raises(IntegrityError, match=problem) as caught:
        search(index_dir)
    assert str(index_dir / "shard-0000" / name) in str(caught.value)


def test_wrong_dtype_shape_and_faiss_size_are_refused(indexes, tmp_path):
    index_dir = copy_of(indexes["sparse"], tmp_path)
    docs = np.load(index_dir / "shard-0000" / "docs.npy")
    rewrite(index_dir, 0, "docs.npy", docs.astype(np.int64))
    with pytest.raises(IntegrityError, match="int64 array of rank 1, expected int32"):
        search(index_dir)

    index_dir = copy_of(indexes["dense"], tmp_path)
    shard0, shard1 = index_dir / "shard-0000", index_dir / "shard-0001"
    shutil.copy(shard1 / "index.faiss", shard0 / "index.faiss")  # another shard's vectors
    manifest = read_index_manifest(index_dir)
    manifest["shards"][0]["files"] = checksum_files(shard0)
    write_index_manifest(index_dir, manifest)
    assert manifest["shards"][0]["documents"] != manifest["shards"][1]["documents"]  # 8 and 7: a real mismatch
    with pytest.raises(IntegrityError, match="vectors of dimension"):
        search(index_dir)


@pytest.mark.parametrize("path", ["../elsewhere", "/etc", "shard-0000/../../x"])
def test_manifest_paths_stay_inside_the_index(path, indexes, tmp_path):
    index_dir = copy_of(indexes["dense"], tmp_path)
    manifest = read_index_manifest(index_dir)
    manifest["shards"][0]["dir"] = path
    write_index_manifest(index_dir, manifest)
    with pytest.raises(IntegrityError, match="leads outside the directory"):
        search(index_dir)


def test_verify_off_skips_checksums_but_not_structure(indexes, tmp_path):
    index_dir = copy_of(indexes["sparse"], tmp_path)
    np.save(index_dir / "shard-0000" / "docs.npy", np.full(3, 10**6, np.int32))  # checksum not updated
    with pytest.raises(IntegrityError, match="differs from the checksum"):
        search(index_dir)
    with pytest.raises(IntegrityError, match="rows, expected|document numbers outside"):
        search(index_dir, verify=False)


def test_build_index_verifies_the_embeddings_it_reads(indexes, tmp_path):
    embeddings = indexes["dense"].parent / "dense-emb"
    copy = tmp_path / "emb"
    shutil.copytree(embeddings, copy)
    shard = sorted((copy / "embeddings").glob("part-*.parquet"))[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="differs from the checksum") as caught:
        build_index(copy, tmp_path / "index", in_process=True)
    assert str(shard) in str(caught.value)
    assert not (tmp_path / "index" / "manifest.json").exists()


def test_on_ray_a_corrupt_shard_or_a_wrong_option_fails_once_by_name(ray_session, indexes, tmp_path):
    """A shard actor whose load fails was restarted and its batch retried four times over 45 s, as
    if its machine had died, and the error said only "the actor died"."""
    import time

    from rayir.errors import ConfigError

    index_dir = copy_of(indexes["sparse"], tmp_path)
    weights = index_dir / "shard-0001" / "weights.npy"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    started = time.perf_counter()
    with pytest.raises(IntegrityError, match="differs from the checksum") as caught:
        Searcher(index_dir)
    assert str(weights) in str(caught.value)
    with pytest.raises(ConfigError, match=r"shard_options \['nprobe'\] do not apply to a sparse index"):
        Searcher(indexes["sparse"], shard_options={"nprobe": 4})
    assert time.perf_counter() - started < 20

    embeddings = tmp_path / "emb"  # a task's error reaches the driver as itself, not Ray's wrapper
    shutil.copytree(indexes["sparse"].parent / "sparse-emb", embeddings)
    shard = sorted((embeddings / "embeddings").glob("part-*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")
    with pytest.raises(IntegrityError, match="differs from the checksum"):
        build_index(embeddings, tmp_path / "index")
