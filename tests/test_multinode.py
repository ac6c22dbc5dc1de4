"""A multi-node cluster simulated on this machine (``ray.cluster_utils.Cluster``): a head with no
CPUs, as on real clusters, plus two worker nodes with distinct custom resources. Work spreads over
both nodes, and a node removed mid-job leaves the result complete and equal to a one-process run.

The session's local Ray is stopped while this module runs and started again afterwards; every node
started here is stopped here.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import lightning
import numpy as np
import pyarrow.parquet as pq
import pytest

from rayir.encode import ChunkEncoder, encode_corpus, verify_manifest
from tests.conftest import LOCAL_RAY, judged_pairs

pytestmark = pytest.mark.scenario

NODE_CPUS = 1


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    local = ray.is_initialized()
    if local:
        ray.shutdown()
    # A lost node is declared dead after ~3 s of missed health checks (Ray's default is ~15 s).
    fast_detection = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}
    simulated = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False, "_system_config": fast_detection},
    )
    workers = [simulated.add_node(num_cpus=NODE_CPUS, resources={name: 1, "slot": 1}) for name in ("node_a", "node_b")]
    ray.init(address=simulated.address, logging_level="WARNING")
    simulated.wait_for_nodes()
    simulated.workers = workers
    yield simulated
    ray.shutdown()
    simulated.shutdown()
    if local:  # give the rest of the session its local Ray back
        ray.init(**LOCAL_RAY)


def replace_node(cluster, node, name: str):
    """Remove ``node`` abruptly and add a fresh node in its place (an autoscaler's replacement)."""
    cluster.remove_node(node, allow_graceful=False)
    return cluster.add_node(num_cpus=NODE_CPUS, resources={name: 1, "slot": 1})


class NodeRecordingEncoder(ChunkEncoder):
    """Records which node encoded each chunk and takes a while per chunk, so a node can be lost mid-job."""

    record_dir: str = ""

    def __call__(self, batch):
        import ray

        node = ray.get_runtime_context().get_node_id()
        for index in batch["index"]:
            Path(self.record_dir, f"{int(index)}-{node}").touch()
        time.sleep(0.5)
        return super().__call__(batch)


def _in_background(fn, *args, **kwargs):
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - re-raised in the test thread
            outcome["error"] = err

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.1)


def test_encoders_spread_over_both_nodes_and_a_lost_node_loses_no_document(
    cluster, tiny_bert_dir, sample_collection, tmp_path
):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    records = tmp_path / "records"
    records.mkdir()
    encoder = type("Recording", (NodeRecordingEncoder,), {"record_dir": str(records)})
    thread, outcome = _in_background(
        encode_corpus,
        str(tiny_bert_dir),
        sample_collection,
        tmp_path / "cluster",
        docs_per_shard=2,
        num_encoders=2,
        retries=2,
        chunk_encoder=encoder,
    )
    nodes = lambda: {p.name.split("-", 1)[1] for p in records.iterdir()}  # noqa: E731
    _wait_for(lambda: len(nodes()) == 2)  # both worker nodes encode (the head has no CPU)
    cluster.workers[1] = replace_node(cluster, cluster.workers[1], "node_b")
    thread.join(timeout=600)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["value"]

    manifest = verify_manifest(tmp_path / "cluster")  # every document exactly once, checksums hold
    assert result.documents == manifest["documents"] == 30
    reference = encode_corpus(
        str(tiny_bert_dir), sample_collection, tmp_path / "local", docs_per_shard=2, in_process=True
    )
    for shard, expected in zip(manifest["shards"], reference.manifest["shards"]):
        got = pq.read_table(tmp_path / "cluster" / shard["file"])
        want = pq.read_table(tmp_path / "local" / expected["file"])
        assert got.column("doc_id").equals(want.column("doc_id"))
        np.testing.assert_allclose(
            np.stack(got.column("embedding").to_numpy(zero_copy_only=False)),
            np.stack(want.column("embedding").to_numpy(zero_copy_only=False)),
            atol=1e-5,
        )


def test_shards_on_both_nodes_survive_a_lost_node_with_an_identical_run(
    cluster, tiny_bert_dir, sample_collection, tmp_path
):
    import ray

    from rayir.data import read_queries
    from rayir.index import build_index
    from rayir.serve.coordinator import Searcher

    encode_corpus(str(tiny_bert_dir), sample_collection, tmp_path / "embeddings", docs_per_shard=5)
    build_index(tmp_path / "embeddings", tmp_path / "index", num_shards=2)
    queries = list(read_queries(sample_collection, split="test"))
    node_of = lambda actor: ray.get(  # noqa: E731
        actor.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
    )
    with Searcher(tmp_path / "index", shard_resources={"slot": 1}) as searcher:  # one shard per node
        expected = searcher.search(queries, k=10, batch_size=1)
        before = [node_of(actor) for actor in searcher.actors]
        assert len(set(before)) == 2
        lost = cluster.workers[0].node_id

        def lose_a_node(done: int, total: int) -> None:
            # After the first of 8 one-query batches: at most 4 are in flight, so the rest are
            # sent after the node is gone and must reach its shard's restarted actor.
            if done == 1:
                cluster.workers[0] = replace_node(cluster, cluster.workers[0], "node_a")

        after = searcher.search(queries, k=10, batch_size=1, on_batch=lose_a_node)
        moved = [node_of(actor) for actor in searcher.actors]
    assert lost in before and lost not in moved  # the lost node's shard now runs on its replacement
    assert cluster.workers[0].node_id in moved
    assert after == expected and list(after) == list(expected)


class SlowStepsRecordingStarts(lightning.Callback):
    """Each step takes a while (so a node can be lost mid-run); rank 0 records where each attempt starts."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_rank == 0:
            with open(self.marker, "a") as handle:
                handle.write(f"{trainer.global_step}\n")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(1.0)


def test_fit_on_two_nodes_resumes_after_losing_one(cluster, tiny_bert_dir, sample_collection, tmp_path):
    """Two Ray Train workers, one per node; a node lost after the first checkpoint: training resumes
    from it, reports every step, and installs the final step's weights."""
    import ray.cloudpickle
    from safetensors.torch import load_file

    import tests.test_train as train_tests
    from rayir.losses import InBatchCrossEntropy
    from rayir.modules import BiEncoderModule
    from rayir.train.options import Optimization, Scaling
    from rayir.train.ray_trainer import fit

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.cloudpickle.register_pickle_by_value(train_tests)
    data = judged_pairs(sample_collection)
    starts, weights = str(tmp_path / "starts"), str(tmp_path / "final.safetensors")
    thread, outcome = _in_background(
        fit,
        str(tiny_bert_dir),
        tmp_path / "out",
        data,
        [InBatchCrossEntropy(temperature=0.1)],
        optimization=Optimization(batch_size=2, max_steps=6, max_epochs=10, lr=1e-3),
        scaling=Scaling(num_workers=2, max_failures=2, checkpoint_every_n_steps=2),
        callbacks=[SlowStepsRecordingStarts(starts), train_tests.SaveFinalWeights(weights)],
    )
    storage = tmp_path / "out" / "ray_train"
    _wait_for(lambda: any(storage.rglob("checkpoint_*/model/config.json")), timeout=300)
    time.sleep(3.0)  # the controller registers the uploaded checkpoint on its next status poll
    cluster.workers[1] = replace_node(cluster, cluster.workers[1], "node_b")
    thread.join(timeout=600)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["value"]

    begun = [int(step) for step in Path(starts).read_text().split()]
    assert begun[0] == 0 and len(begun) >= 2 and begun[-1] >= 2  # resumed from a checkpoint, not from 0
    assert result.steps == 6 and result.samples == 6 * 2 * 2
    final = load_file(weights)
    installed = BiEncoderModule(str(result.checkpoint)).state_dict()
    for name, tensor in final.items():
        np.testing.assert_array_equal(installed[name].numpy(), tensor.numpy(), err_msg=name)


def test_re_ranking_stages_the_corpus_beside_its_output(
    cluster, tiny_bert_dir, sample_collection, tmp_path, monkeypatch
):
    """Scorers on other nodes read the staged corpus: it goes under the job's output (shared storage),
    not a driver-local temporary directory, and is removed after success."""
    import rayir.serve.rerank as rerank_module
    from rayir.cli import re_rank
    from rayir.data import read_run

    qrels = (sample_collection / "qrels/test.tsv").read_text().splitlines()[1:]
    queries = sorted({line.split("\t")[0] for line in qrels})
    first_stage = tmp_path / "first.run"
    first_stage.write_text("".join(f"{q} Q0 d{i:02d} {i} {10 - i} x\n" for q in queries for i in range(1, 4)))
    score, seen = rerank_module._score, []

    def recording(*args, **kwargs):
        seen.append(Path(args[7]))
        return score(*args, **kwargs)

    monkeypatch.setattr(rerank_module, "_score", recording)
    output = tmp_path / "runs" / "reranked.run"
    output.parent.mkdir()
    summary = re_rank(
        model=str(tiny_bert_dir),
        run=str(first_stage),
        queries=str(sample_collection),
        corpus=str(sample_collection),
        output=str(output),
        split="test",
        kind="bi",
    )
    assert seen == [output.parent / ".reranked.run.rerank-work"] and not seen[0].exists()
    assert summary["pairs"] == 3 * len(queries) == sum(len(r) for r in read_run(output).values())
