"""Models by Hugging Face Hub id, resolved through a local cache laid out as the Hub lays it out (no network)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rayir.checkpoints import checkpoint_fingerprint, resolve_model_dir
from rayir.encode import encode_corpus
from rayir.encode.formats import dense_matrix

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_cache(root: Path, repo_id: str, model_dir: Path, blobs: bool = True) -> Path:
    """``models--org--name/{refs/main, snapshots/<commit>/...}``: files as symlinks into ``blobs/`` (the Hub's
    own layout) or as plain copies (what ``hf download --local-dir`` users sometimes copy in)."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for i, source in enumerate(sorted(p for p in model_dir.iterdir() if p.is_file())):
        if blobs:
            blob = repo / "blobs" / f"blob{i}"
            blob.parent.mkdir(exist_ok=True)
            shutil.copy(source, blob)
            (snapshot / source.name).symlink_to(Path("../../blobs") / blob.name)
        else:
            shutil.copy(source, snapshot / source.name)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_a_cached_hub_model_encodes_as_its_directory_does(offline_cache, tiny_bert_dir, sample_collection, tmp_path):
    snapshot = hub_cache(offline_cache, "rayir-test/tiny-bert", tiny_bert_dir)
    assert resolve_model_dir("rayir-test/tiny-bert") == snapshot
    assert resolve_model_dir(f"rayir-test/tiny-bert@{COMMIT}") == snapshot
    assert checkpoint_fingerprint("rayir-test/tiny-bert") == checkpoint_fingerprint(tiny_bert_dir)
    by_id = encode_corpus("rayir-test/tiny-bert", sample_collection, tmp_path / "by-id", in_process=True)
    by_dir = encode_corpus(str(tiny_bert_dir), sample_collection, tmp_path / "by-dir", in_process=True)
    assert by_id.manifest["settings"]["model"] == "rayir-test/tiny-bert"
    import pyarrow.parquet as pq

    def vectors(result):
        return np.concatenate(
            [dense_matrix(pq.read_table(result.output_dir / s["file"])) for s in result.manifest["shards"]]
        )

    np.testing.assert_array_equal(vectors(by_id), vectors(by_dir))


def test_an_uncached_hub_model_offline_fails_in_one_line_saying_what_to_run(offline_cache, tiny_bert_dir):
    hub_cache(offline_cache, "rayir-test/tiny-bert", tiny_bert_dir, blobs=False)
    assert (resolve_model_dir("rayir-test/tiny-bert") / "config.json").exists()  # plain copies work too
    with pytest.raises(FileNotFoundError, match=r"not in the local Hugging Face cache.*`hf download rayir-test/other`"):
        resolve_model_dir("rayir-test/other")
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache"):
        resolve_model_dir("rayir-test/tiny-bert@v9")  # a revision the cache does not hold
