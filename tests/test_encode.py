"""Ray Data encoding: every document exactly once, vectors equal a single-process encoding."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from rayir import BiEncoderModule
from rayir.data import read_docs
from rayir.encode import ChunkEncoder, encode_corpus, read_manifest, verify_manifest

MULTI = {"mode": "multi_vector", "pooling": None, "embedding_dim": 8, "mask_punctuation": True, "doc_max_length": 40}


def shard_table(directory: Path):
    import pyarrow as pa

    manifest = read_manifest(directory)
    return pa.concat_tables([pq.read_table(directory / s["file"]) for s in manifest["shards"]])


def reference_docs(collection):
    docs = list(read_docs(collection))
    return [d.doc_id for d in docs], [d.text for d in docs]


@pytest.mark.parametrize("kind", ["dense", "multi_vector", "sparse"])
def test_encoding_matches_single_process(kind, ray_session, sample_collection, tiny_bert_dir, tiny_mlm_dir, tmp_path):
    """The pipeline's shards equal the module's vectors. Dense runs on Ray; the other layouts run
    the same encoder workers in this process (what differs per layout is the shard format, not the
    executor, and each Ray encode costs an actor's torch import, about 10 s here)."""
    model, overrides = {
        "dense": (tiny_bert_dir, {}),
        "multi_vector": (tiny_bert_dir, MULTI),
        "sparse": (tiny_mlm_dir, {}),
    }[kind]
    result = encode_corpus(
        str(model),
        sample_collection,
        tmp_path / "enc",
        docs_per_shard=7,
        batch_size=4,
        model_config=overrides,
        in_process=kind != "dense",
    )
    assert result.documents == 30 and len(result.manifest["shards"]) == 5
    assert not (tmp_path / "enc" / "staging").exists()
    verify_manifest(tmp_path / "enc")

    ids, texts = reference_docs(sample_collection)
    table = shard_table(tmp_path / "enc")
    assert table.column("doc_id").to_pylist() == ids  # each exactly once, in corpus order
    module = BiEncoderModule(model, batch_size=64, **overrides)
    expected = module.encode_docs(texts)
    if kind == "dense":
        got = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
        np.testing.assert_allclose(got, expected.vectors.numpy(), atol=1e-5)
    elif kind == "sparse":
        dense = torch.zeros_like(expected.vectors)
        for row, (terms, weights) in enumerate(
            zip(table.column("terms").to_pylist(), table.column("weights").to_pylist())
        ):
            dense[row, terms] = torch.tensor(weights)
        assert (dense - expected.vectors).abs().max() <= 1e-5
    else:
        for row, (count, flat) in enumerate(
            zip(table.column("num_tokens").to_pylist(), table.column("token_embeddings").to_pylist())
        ):
            want = expected.vectors[row][expected.mask[row]].numpy()
            assert count == len(want)
            np.testing.assert_allclose(np.asarray(flat, dtype=np.float32).reshape(count, -1), want, atol=1e-5)


class FlakyEncoder(ChunkEncoder):
    """Raises on its second chunk, once per marker file (i.e. once per test)."""

    marker: str = ""

    def encode(self, chunk):
        self.calls = getattr(self, "calls", 0) + 1
        marker = Path(self.overrides_marker)
        if self.calls == 2 and not marker.exists():
            marker.write_text("failed once")
            raise RuntimeError("injected encoder failure")
        return super().encode(chunk)


def flaky(marker: Path) -> type:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return type("FlakyOnce", (FlakyEncoder,), {"overrides_marker": str(marker)})


# The resume logic is the same on Ray and in one process; the Ray runs (an actor's failure surfacing
# through Ray Data) take about a minute each, so they run in the scenario tier.
ON_RAY_AND_IN_PROCESS = pytest.mark.parametrize(
    "in_process", [True, pytest.param(False, marks=pytest.mark.scenario)], ids=["in_process", "ray"]
)


@ON_RAY_AND_IN_PROCESS
def test_failed_job_resumes_complete_and_duplicate_free(
    in_process, request, sample_collection, tiny_bert_dir, tmp_path
):
    if not in_process:
        request.getfixturevalue("ray_session")
    out = tmp_path / "enc"
    options = dict(docs_per_shard=4, batch_size=2, in_process=in_process)
    with pytest.raises(RuntimeError, match="run the same command again to resume"):
        encode_corpus(
            str(tiny_bert_dir), sample_collection, out, retries=0, chunk_encoder=flaky(tmp_path / "marker"), **options
        )
    finished_before = sorted(p.name for p in (out / "embeddings").glob("part-*.parquet"))
    assert len(finished_before) < 8 and not (out / "manifest.json").exists()

    result = encode_corpus(str(tiny_bert_dir), sample_collection, out, retries=0, **options)
    assert result.encoded_shards == 8 - len(finished_before)  # only the missing shards
    ids, _ = reference_docs(sample_collection)
    assert shard_table(out).column("doc_id").to_pylist() == ids

    again = encode_corpus(str(tiny_bert_dir), sample_collection, out, **options)
    assert again.encoded_shards == 0  # finished: verified, nothing re-encoded


@ON_RAY_AND_IN_PROCESS
def test_retry_within_one_call(in_process, request, sample_collection, tiny_bert_dir, tmp_path):
    if not in_process:
        request.getfixturevalue("ray_session")
    result = encode_corpus(
        str(tiny_bert_dir),
        sample_collection,
        tmp_path / "enc",
        docs_per_shard=4,
        batch_size=2,
        retries=1,
        chunk_encoder=flaky(tmp_path / "marker"),
        in_process=in_process,
    )
    assert (tmp_path / "marker").exists()
    ids, _ = reference_docs(sample_collection)
    assert shard_table(tmp_path / "enc").column("doc_id").to_pylist() == ids
    assert result.documents == 30


def test_changed_settings_do_not_mix(sample_collection, tiny_bert_dir, tmp_path):
    """In process: the settings check is the same code with or without Ray."""

    def encode(**options):
        return encode_corpus(
            str(tiny_bert_dir), sample_collection, tmp_path / "enc", docs_per_shard=10, in_process=True, **options
        )

    encode()
    with pytest.raises(ValueError, match=r"other settings \(config_overrides: \{\} there, \{'pooling': 'max'\} now\)"):
        encode(model_config={"pooling": "max"})
    redone = encode(model_config={"pooling": "max"}, overwrite=True)
    assert redone.manifest["model_config"]["pooling"] == "max"


def test_bfloat16_stays_close_to_float32(sample_collection, minilm_path, tmp_path):
    """In process: the encoder's autocast is the same code the Ray actors run."""
    fp32 = encode_corpus(minilm_path, sample_collection, tmp_path / "fp32", docs_per_shard=15, in_process=True)
    bf16 = encode_corpus(
        minilm_path, sample_collection, tmp_path / "bf16", docs_per_shard=15, precision="bfloat16", in_process=True
    )
    a = np.stack(shard_table(fp32.output_dir).column("embedding").to_numpy(zero_copy_only=False))
    b = np.stack(shard_table(bf16.output_dir).column("embedding").to_numpy(zero_copy_only=False))
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99 and np.abs(a - b).max() > 0  # close, but really bf16


def test_the_model_fingerprint_hashes_the_checkpoint_files_wherever_they_sit(tiny_bert_dir, tmp_path):
    """The same files elsewhere: the same fingerprint; one changed byte of weights: another; the
    encoding records it without the driver loading the model."""
    import shutil

    from rayir.checkpoints import checkpoint_fingerprint

    original = checkpoint_fingerprint(tiny_bert_dir)
    copy = tmp_path / "copied" / "model"
    shutil.copytree(tiny_bert_dir, copy)
    (copy / ".cache").mkdir()
    (copy / ".cache" / "lock").write_text("editor state")
    assert checkpoint_fingerprint(copy) == original
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert checkpoint_fingerprint(copy) != original

    result = encode_corpus(str(tiny_bert_dir), _tiny_corpus(tmp_path), tmp_path / "embeddings", in_process=True)
    assert result.manifest["settings"]["model_fingerprint"] == original


def _tiny_corpus(directory):
    path = directory / "corpus.jsonl"
    path.write_text('{"_id": "a", "text": "first document"}\n{"_id": "b", "text": "second one"}\n')
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "tsv"])
def test_parallel_staging_by_byte_range_gives_the_sequential_chunks(ray_session, fmt, tmp_path, monkeypatch):
    """A file cut into many byte ranges, staged by Ray tasks: the same numbered chunks as the
    streaming reader; a repeated id across ranges and a bad line (counted across ranges) fail."""
    from rayir.data.errors import DataFormatError, DuplicateIdError
    from rayir.encode import parallel_staging
    from rayir.encode.staging import stage_corpus
    from rayir.execution import RayExecutor

    def line(i: int, doc_id: str | None = None) -> str:
        doc_id = doc_id or f"d{i}"
        text = f"document {i} " + "word " * (i % 7)
        return json.dumps({"_id": doc_id, "text": text}) + "\n" if fmt == "jsonl" else f"{doc_id}\t{text}\n"

    corpus = tmp_path / f"corpus.{fmt}"
    corpus.write_text("".join(line(i) for i in range(53)) + "\n")  # a blank last line is skipped
    monkeypatch.setattr(parallel_staging, "BYTES_PER_RANGE", 97)  # ~25 ranges, most cutting a line
    settings = {"corpus": str(corpus)}
    parallel = parallel_staging.stage_documents(corpus, tmp_path / "parallel", 10, settings, RayExecutor())
    sequential = stage_corpus(corpus, tmp_path / "sequential", 10, settings)
    assert parallel == sequential and [c.rows for c in parallel] == [10] * 5 + [3]
    for chunk in parallel:
        assert pq.read_table(tmp_path / "parallel" / chunk.path).equals(
            pq.read_table(tmp_path / "sequential" / chunk.path)
        )
    assert not (tmp_path / "parallel" / "ranges").exists()

    corpus.write_text("\ufeff" + "".join(line(i) for i in range(53)))  # a BOM opens the file, not the first id
    with_bom = parallel_staging.stage_documents(corpus, tmp_path / "bom", 10, settings, RayExecutor())
    assert pq.read_table(tmp_path / "bom" / with_bom[0].path).column("doc_id")[0].as_py() == "d0"

    corpus.write_text("".join(line(i, "d3" if i == 40 else None) for i in range(53)))
    with pytest.raises(DuplicateIdError, match="'d3' appears more than once"):
        parallel_staging.stage_documents(corpus, tmp_path / "dup", 10, settings, RayExecutor())
    corpus.write_text("".join(line(i) if i != 44 else "broken\n" for i in range(53)))
    with pytest.raises(DataFormatError, match=rf"corpus.{fmt}:45: "):
        parallel_staging.stage_documents(corpus, tmp_path / "bad", 10, settings, RayExecutor())


def test_overwrite_removes_only_a_rayir_encoding(sample_collection, tmp_path):
    """``overwrite`` once removed whatever directory ``output`` named; now a directory without an
    encoding manifest or staging is refused and left as it was, and a real encoding is replaced."""
    data = tmp_path / "my-data"
    data.mkdir()
    (data / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="holds no rayir encoding"):
        encode_corpus("bm25", sample_collection, data, overwrite=True, in_process=True)
    assert (data / "thesis.tex").read_text() == "years of work"

    out = tmp_path / "enc"
    first = encode_corpus("bm25", sample_collection, out, docs_per_shard=7, in_process=True)
    again = encode_corpus("bm25", sample_collection, out, docs_per_shard=10, overwrite=True, in_process=True)
    assert first.documents == again.documents == 30 and len(again.manifest["shards"]) == 3


def test_a_corpus_edited_in_place_is_noticed(tmp_path, monkeypatch):
    """The settings once recorded only the corpus path: a corpus edited in place was reported
    "already complete" with a stale index, and an unfinished encoding resumed from stale staging."""
    from rayir.data import fingerprint

    corpus = tmp_path / "docs.jsonl"
    lines = [json.dumps({"_id": f"d{i}", "text": f"alpha number {i}"}) for i in range(6)]
    corpus.write_text("\n".join(lines) + "\n")

    def encode(out: Path, **options):
        return encode_corpus("bm25", corpus, tmp_path / out, docs_per_shard=2, in_process=True, **options)

    encode("finished")
    encode("unfinished", keep_staging=True)
    (tmp_path / "unfinished" / "manifest.json").unlink()  # as if the job died after staging
    assert encode("finished").encoded_shards == 0  # unchanged: already complete

    corpus.write_text(corpus.read_text().replace("alpha number 3", "gamma number 3"))  # same size
    for out in ("finished", "unfinished"):
        with pytest.raises(ValueError, match="corpus file changed since it was staged"):
            encode(out)
    assert encode("finished", overwrite=True).encoded_shards == 3

    # Past FULL_HASH_BYTES the fingerprint samples blocks and records size and mtime.
    monkeypatch.setattr(fingerprint, "FULL_HASH_BYTES", 16)
    before = fingerprint.source_fingerprint(corpus)
    assert set(before) == {"bytes", "mtime_ns", "sampled_sha256"}
    corpus.write_text(corpus.read_text().replace("gamma", "delta"))
    assert fingerprint.source_fingerprint(corpus) != before
