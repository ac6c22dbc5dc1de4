"""Training: cross-worker in-batch negatives equal one process over the global batch; a 2-worker
Ray Train run that survives a worker failure (also one while its group starts) and leaves a checkpoint
every stage loads."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import lightning
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from ray.train.v2._internal.execution.callback import WorkerGroupCallback
from safetensors.torch import load_file, save_file

from rayir.data.datamodule import RankBatch
from rayir.losses import InBatchCrossEntropy, total_loss
from rayir.modules import BiEncoderModule
from tests.conftest import fit_steps, judged_pairs

QUERIES = ["first query", "second query text", "a third", "the fourth one"]
DOCS = [
    "pos one",
    "neg one words",
    "pos two",
    "neg two is longer text",
    "pos three x",
    "neg three",
    "pos four",
    "negative four here",
]
SETTINGS = {
    "dense": {"similarity": "cosine"},
    "multi_vector": {"mode": "multi_vector", "embedding_dim": 16, "similarity": "cosine", "normalize": True},
}


def make_module(model_dir: str, mode: str) -> BiEncoderModule:
    torch.manual_seed(0)
    module = BiEncoderModule(model_dir, **SETTINGS[mode]).configure_training([InBatchCrossEntropy(temperature=0.1)])
    module.model.eval()  # no dropout: the two computations must be comparable exactly
    return module


def batch_of(rows: slice) -> RankBatch:
    queries = QUERIES[rows]
    docs = [d for i in range(len(QUERIES))[rows] for d in DOCS[2 * i : 2 * i + 2]]
    # Give one worker longer documents than the other so multi-vector padding is exercised.
    return RankBatch(
        query_ids=[str(i) for i in range(len(queries))],
        queries=queries,
        doc_ids=[["a", "b"]] * len(queries),
        docs=docs,
        num_docs=[2] * len(queries),
        targets=torch.tensor([[1.0, 0.0]] * len(queries)),
        qrels=[{}] * len(queries),
    )


def loss_and_gradients(module: BiEncoderModule, batch: RankBatch) -> tuple[float, dict[str, torch.Tensor]]:
    loss, _ = total_loss(module.losses, module.loss_inputs(batch))
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in module.model.named_parameters() if p.grad is not None}
    return loss.item(), grads


def _worker(rank: int, model_dir: str, mode: str, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        module = make_module(model_dir, mode)
        half = slice(0, 2) if rank == 0 else slice(2, 4)
        loss, grads = loss_and_gradients(module, batch_of(half))
        for grad in grads.values():  # what DDP does: average the gradients over workers
            dist.all_reduce(grad)
            grad /= 2
        save_file(
            {"loss": torch.tensor(loss), **{f"grad.{n}": g.contiguous() for n, g in grads.items()}},
            f"{out}/rank{rank}.safetensors",
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("mode", ["dense", "multi_vector"])
def test_two_worker_in_batch_loss_equals_single_process_global_batch(mode, tiny_bert_dir, tmp_path):
    single_loss, single_grads = loss_and_gradients(make_module(str(tiny_bert_dir), mode), batch_of(slice(0, 4)))
    mp.spawn(_worker, args=(str(tiny_bert_dir), mode, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    ranks = []
    for r in (0, 1):
        saved = load_file(tmp_path / f"rank{r}.safetensors")
        ranks.append(
            {
                "loss": saved["loss"].item(),
                "grads": {n[len("grad.") :]: g for n, g in saved.items() if n.startswith("grad.")},
            }
        )
    # Each worker's loss covers its own queries against all 8 documents: their mean is the global loss.
    assert (ranks[0]["loss"] + ranks[1]["loss"]) / 2 == pytest.approx(single_loss, abs=1e-5)
    local_only = loss_and_gradients(make_module(str(tiny_bert_dir), mode), batch_of(slice(0, 2)))[0]
    assert abs(local_only - ranks[0]["loss"]) > 1e-3  # without the gather the loss would differ
    assert single_grads.keys() == ranks[0]["grads"].keys()
    for name, grad in single_grads.items():
        torch.testing.assert_close(ranks[0]["grads"][name], grad, atol=1e-5, rtol=1e-4, msg=name)
        torch.testing.assert_close(ranks[1]["grads"][name], grad, atol=1e-5, rtol=1e-4, msg=name)


class FailOnceAtStep(lightning.Callback):
    """Raise on rank 0 when ``step`` is reached the first time; record where each attempt started."""

    def __init__(self, marker: str, step: int) -> None:
        self.marker, self.step = marker, step

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_rank == 0:
            with open(f"{self.marker}.starts", "a") as handle:
                handle.write(f"{trainer.global_step}\n")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_rank == 0 and trainer.global_step == self.step and not os.path.exists(self.marker):
            Path(self.marker).touch()
            raise RuntimeError("injected worker failure")


@pytest.mark.slow  # resuming is in the default suite: test_multinode's fit that loses a node
def test_two_worker_ray_train_run_resumes_after_a_failure(ray_session, tiny_bert_dir, sample_collection, tmp_path):
    import ray.cloudpickle

    from rayir.train.options import Optimization, Scaling, TrainingData, ValidationData
    from rayir.train.ray_trainer import fit

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    run_file = tmp_path / "candidates.run"  # every sample document for each judged query, scores 0
    queries = sorted(
        {line.split("\t")[0] for line in (sample_collection / "qrels/test.tsv").read_text().splitlines()[1:]}
    )
    doc_ids = [json.loads(line)["_id"] for line in (sample_collection / "corpus.jsonl").read_text().splitlines()]
    run_file.write_text("".join(f"{q} Q0 {d} {r} 0.0 x\n" for q in queries for r, d in enumerate(doc_ids, 1)))
    data = TrainingData(
        queries=str(sample_collection),
        corpus=str(sample_collection),
        split="test",
        qrels=str(sample_collection),
        run=str(run_file),
        num_negatives=1,
        depth=30,
    )
    validation = ValidationData(
        run=str(run_file),
        queries=str(sample_collection),
        corpus=str(sample_collection),
        qrels=str(sample_collection),
        split="test",
        depth=30,
        measures=["nDCG@10", "RR@10"],
    )
    marker = str(tmp_path / "failed")
    result = fit(
        str(tiny_bert_dir),
        tmp_path / "out",
        data,
        [InBatchCrossEntropy(temperature=0.1)],
        validation=validation,
        optimization=Optimization(batch_size=2, max_steps=6, max_epochs=5, lr=1e-3),
        scaling=Scaling(num_workers=2, max_failures=1, checkpoint_every_n_steps=2),
        model_config={"similarity": "cosine"},
        callbacks=[FailOnceAtStep(marker, step=3)],
    )

    assert Path(marker).exists()  # the failure happened...
    assert Path(f"{marker}.starts").read_text().split() == ["0", "2"]  # ...and training resumed at step 2
    assert result.steps == 6
    assert result.samples == 6 * 2 * 2  # steps x workers x batch: the count survives the restart
    assert 0 <= result.metrics["val_nDCG@10"] <= 1 and "val_RR@10" in result.metrics
    summary = json.loads((tmp_path / "out/training.json").read_text())
    assert summary["steps"] == 6 and summary["scaling"]["num_workers"] == 2

    trained = BiEncoderModule(str(result.checkpoint))
    initial = BiEncoderModule(str(tiny_bert_dir), similarity="cosine")
    assert trained.config.similarity == "cosine"
    texts = ["a query about retrieval", ["a document", "another document entirely"]]
    after, before = trained.score(*texts).scores, initial.score(*texts).scores
    assert after.shape == (2,) and torch.isfinite(after).all()
    assert not torch.allclose(after, before)  # the weights moved
    encoded = trained.encode_docs(["a document"]).vectors
    assert encoded.shape == (1, 32)


class SlowStatusPolls(lightning.Callback):
    """Widen Ray Train's status-poll window: an empty report queue is answered ``delay`` seconds late.

    The poll reads the queue, then asks whether training still runs. Sleeping in between lets the
    final report land in the queue and the training thread end inside the window, every time.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def on_train_start(self, trainer, pl_module) -> None:
        import queue
        import time

        from ray.train.v2._internal.execution.context import get_train_context

        reports = get_train_context().get_result_queue()
        get_nowait = reports.get_nowait

        def slow_get_nowait():
            try:
                return get_nowait()
            except queue.Empty:
                time.sleep(self.delay)
                raise

        reports.get_nowait = slow_get_nowait


class SaveFinalWeights(lightning.Callback):
    """Rank 0 writes its weights when training ends: what the installed checkpoint must hold."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_rank == 0:
            save_file({k: v.detach().contiguous() for k, v in pl_module.state_dict().items()}, self.path)
            Path(f"{self.path}.step").write_text(str(trainer.global_step))


class KillAWorkerWhileTheGroupStarts(WorkerGroupCallback):
    """Kill one worker after its group is marked started, in the first two groups.

    That is where a worker lost during the torch process-group set-up dies. The first group's
    start fails right there (as the set-up call to the dead worker does); the second's fails when
    the training function is launched on the dead worker. Ray 2.60 kept the first group alive
    (holding its CPUs: the next group waited forever) and did not retry the second failure.
    """

    def __init__(self, markers: str) -> None:
        self.markers = Path(markers)

    def after_worker_group_start(self, worker_group) -> None:
        import ray

        start = len(list(self.markers.glob("*")))
        if start >= 2:
            return
        (self.markers / str(start)).touch()
        victim = worker_group.get_workers()[1].actor
        ray.kill(victim)
        for _ in range(600):  # until the kill has landed: calls to the worker now fail
            try:
                ray.get(victim.get_metadata.remote())
            except ray.exceptions.RayActorError:
                if start == 0:
                    raise
                return
            time.sleep(0.05)


@pytest.mark.scenario
def test_a_fit_ends_complete_through_workers_lost_while_starting_on_a_loaded_machine(
    ray_session, tiny_bert_dir, sample_collection, tmp_path
):
    """One 2-worker fit beside a CPU hog, three faults, a complete result:

    * a worker killed while each of the first two groups starts: both starts are retried and the
      first group's CPUs are released (Ray 2.60: the next group waited for them forever, or the
      run failed);
    * the final step's report lands inside a status poll: it still reaches the driver, and the
      installed checkpoint holds the final weights.
    """
    import subprocess
    import threading

    import ray.cloudpickle

    from rayir.train.options import Optimization, Scaling
    from rayir.train.ray_trainer import fit

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    weights = str(tmp_path / "final.safetensors")
    markers = tmp_path / "killed"
    markers.mkdir()
    staged_before = set(Path(tempfile.gettempdir()).glob("rayir-fit-staging-*"))
    outcome = {}

    def train() -> None:
        try:
            outcome["result"] = fit(
                str(tiny_bert_dir),
                tmp_path / "out",
                judged_pairs(sample_collection),
                [InBatchCrossEntropy(temperature=0.1)],
                optimization=Optimization(batch_size=2, max_steps=4, max_epochs=5, lr=1e-3),
                scaling=Scaling(num_workers=2, max_failures=1),
                callbacks=[
                    KillAWorkerWhileTheGroupStarts(str(markers)),
                    SlowStatusPolls(delay=2.0),
                    SaveFinalWeights(weights),
                ],
            )
        except BaseException as error:  # reported below
            outcome["error"] = error

    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # one busy core of two
    try:
        training = threading.Thread(target=train, daemon=True)  # stalled, it must not hold the session
        training.start()
        training.join(timeout=300)
    finally:
        hog.kill()
        hog.wait()
    assert not training.is_alive(), "training stalled after a worker died while its group started"
    assert "error" not in outcome, repr(outcome.get("error"))
    assert sorted(p.name for p in markers.iterdir()) == ["0", "1"]  # both starts failed as planned
    result = outcome["result"]
    assert Path(f"{weights}.step").read_text() == "4"
    assert result.steps == 4 and result.samples == 4 * 2 * 2  # steps x workers x batch
    final = load_file(weights)
    installed = BiEncoderModule(str(result.checkpoint)).state_dict()
    assert final.keys() == installed.keys()
    for name, tensor in final.items():
        torch.testing.assert_close(installed[name], tensor, atol=0, rtol=0, msg=name)
    assert set(Path(tempfile.gettempdir()).glob("rayir-fit-staging-*")) <= staged_before  # none left behind


@pytest.mark.parametrize("kind", ["sparse", "multi_vector", "pointwise", "listwise"])
def test_every_model_type_trains_with_its_losses(kind, tiny_bert_dir, tiny_mlm_dir, sample_collection):
    """Two optimiser steps in one process with plain Lightning: finite losses, moved weights."""
    from rayir.data import QrelsDataset
    from rayir.losses import ApproxNDCG, FLOPSRegularization, InfoNCE, RankNet
    from rayir.modules import CrossEncoderModule

    setups = {
        "sparse": (BiEncoderModule, tiny_mlm_dir, {}, [InBatchCrossEntropy(), FLOPSRegularization(1e-3, 1e-3)]),
        "multi_vector": (BiEncoderModule, tiny_bert_dir, SETTINGS["multi_vector"], [InBatchCrossEntropy(0.1)]),
        "pointwise": (CrossEncoderModule, tiny_bert_dir, {"mode": "pointwise"}, [InfoNCE(), RankNet(weight=0.5)]),
        "listwise": (CrossEncoderModule, tiny_bert_dir, {"mode": "listwise", "listwise_heads": 2}, [ApproxNDCG()]),
    }
    module_cls, path, settings, losses = setups[kind]
    torch.manual_seed(0)
    module = module_cls(str(path), **settings).configure_training(losses, lr=1e-3)
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    run = {q: {f"d{i:02d}": float(-i) for i in range(1, 31)} for q in ("q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8")}
    trainer = fit_steps(
        module,
        lambda: QrelsDataset(
            sample_collection, sample_collection, sample_collection, run=run, num_negatives=3, depth=30, split="test"
        ),
    )
    assert torch.isfinite(trainer.callback_metrics["train_loss"])
    for loss in losses:  # each term is logged on its own
        assert torch.isfinite(trainer.callback_metrics[f"train_{type(loss).__name__}"])
    moved = [n for n, p in module.model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert moved, "no parameter changed"
    wrong = {
        "sparse": [RankNet(), RankNet()],
        "multi_vector": [FLOPSRegularization()],
        "pointwise": [InBatchCrossEntropy()],
        "listwise": [FLOPSRegularization()],
    }[kind]
    with pytest.raises(ValueError):  # duplicates, or a loss this model type cannot take
        module.configure_training(wrong)
