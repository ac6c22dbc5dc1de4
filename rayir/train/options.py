"""What a training job reads and how it runs: plain dataclasses, so YAML configs map onto them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# No torch here, not even under TYPE_CHECKING (jsonargparse evaluates those blocks when it reads
# these dataclasses for the CLI): ``build`` returns a torch ``Dataset``, typed ``Any``.


@dataclass
class TrainingData:
    """Where training samples come from (exactly one layout).

    - ``triples``: a ``query<TAB>positive<TAB>negative…`` file (ids with ``queries`` + ``corpus``,
      else texts; read whole and shuffled), or ``irds:<id>``, an ``ir_datasets`` id's document pairs
      (e.g. ``irds:msmarco-passage/train/triples-small``), streamed in their order (then set
      ``optimization.max_steps``: a stream has no length);
    - ``qrels`` (+ ``run``): every judged-relevant pair, with ``num_negatives`` hard negatives drawn
      from the run's top ``depth`` (``num_negatives: 0`` and no run: positives only, for in-batch
      negatives);
    - ``run`` with ``targets: score``: distillation, the run's top ``num_negatives + 1`` documents
      with the run's scores as teacher targets (for ``KLDivergence`` / ``MarginMSE``).

    Args:
        queries: Query source (BEIR directory with ``split``, file, or ``irds:<id>``).
        corpus: Document source.
        split: BEIR split of queries and qrels (e.g. ``train``).
        triples: Training triples file.
        qrels: Relevance judgements naming the positives.
        run: TREC run: hard negatives, or teacher scores.
        num_negatives: Negatives per positive (or teacher-ranked documents beyond the first).
        depth: Only the run's top ``depth`` documents are drawn from.
        targets: ``binary`` (positive 1, negatives 0) or ``score`` (the run's scores).
        seed: Seed for drawing negatives.
        fresh_negatives: Draw new hard negatives from the run's top ``depth`` at every epoch
            (``qrels`` + ``run`` layout); otherwise every epoch repeats the first draw.
    """

    queries: str | None = None
    corpus: str | None = None
    split: str | None = None
    triples: str | None = None
    qrels: str | None = None
    run: str | None = None
    num_negatives: int = 7
    depth: int = 100
    targets: Literal["binary", "score"] = "binary"
    seed: int = 0
    fresh_negatives: bool = False

    @property
    def streamed(self) -> bool:
        """Whether the samples are streamed (an ``ir_datasets`` id's document pairs): then they have
        no length, and training needs ``optimization.max_steps``."""
        return self.triples is not None and self.triples.startswith("irds:")

    def build(self) -> Any:
        from ..data.datasets import QrelsDataset, RunDataset, StreamedTupleDataset, TupleDataset

        if self.fresh_negatives and (self.triples is not None or self.targets == "score"):
            raise ValueError(
                "fresh_negatives redraws hard negatives from qrels + run: triples and "
                "targets: score keep their documents fixed; remove it"
            )
        if self.triples is not None:
            self._unused("triples", qrels=self.qrels, run=self.run)
            if self.targets != "binary":
                raise ValueError("triples carry binary targets only")
            if self.streamed:
                if self.queries is None or self.corpus is None:
                    raise ValueError(f"{self.triples}: document pairs by id need queries and corpus")
                return StreamedTupleDataset(self.triples, self.queries, self.corpus, split=self.split)
            return TupleDataset(self.triples, self.queries, self.corpus, split=self.split)
        if self.queries is None or self.corpus is None:
            raise ValueError("training data needs queries and corpus (or text triples)")
        if self.targets == "score":
            if self.run is None:
                raise ValueError("targets: score needs a run whose scores are the teacher's")
            self._unused("targets: score", qrels=self.qrels)
            return RunDataset(
                self.run,
                self.queries,
                self.corpus,
                depth=self.depth,
                sample_size=self.num_negatives + 1,
                sampling_strategy="top",
                targets="score",
                split=self.split,
            )
        if self.qrels is None:
            raise ValueError("give triples, qrels (+ run for hard negatives), or a run with targets: score")
        return QrelsDataset(
            self.qrels,
            self.queries,
            self.corpus,
            run=self.run,
            num_negatives=self.num_negatives,
            depth=self.depth,
            split=self.split,
            seed=self.seed,
            fresh_negatives=self.fresh_negatives,
        )

    @staticmethod
    def _unused(layout: str, **fields: str | None) -> None:
        given = sorted(name for name, value in fields.items() if value is not None)
        if given:
            raise ValueError(f"{layout} does not use {given}: remove them")


@dataclass
class ValidationData:
    """Validation by re-ranking a run's top ``depth`` on held-out queries, scored with ``ir_measures``.

    Args:
        run: TREC run to re-rank (e.g. BM25 on a dev split).
        queries: Query source.
        corpus: Document source.
        qrels: Judgements for the measures.
        split: BEIR split of queries and qrels.
        depth: Candidates per query.
        measures: ``ir_measures`` names, logged as ``val_<measure>``.
        every_n_steps: Validate every this many training steps (default: at each epoch's end).
    """

    run: str
    queries: str
    corpus: str
    qrels: str
    split: str | None = None
    depth: int = 100
    measures: list[str] = field(default_factory=lambda: ["nDCG@10"])
    every_n_steps: int | None = None

    def build(self) -> Any:
        from ..data.datasets import RunDataset

        return RunDataset(self.run, self.queries, self.corpus, depth=self.depth, qrels=self.qrels, split=self.split)


@dataclass
class Optimization:
    """Per-worker batch and optimiser settings.

    Args:
        batch_size: Queries (each with its documents) per worker per step; the global batch is
            ``batch_size x num_workers``.
        max_epochs: Passes over the training samples.
        max_steps: Stop after this many optimiser steps (-1: no limit).
        lr: AdamW peak learning rate (see ``warmup_steps`` and ``lr_schedule``).
        weight_decay: AdamW weight decay (not on biases and norms).
        warmup_steps: Linear warm-up steps.
        lr_schedule: After warm-up: ``linear`` decay to 0, ``cosine`` decay to 0, or ``constant``.
        precision: Lightning precision: ``32-true`` or ``bf16-mixed`` (autocast; also on CPU).
        gradient_clip: Clip the gradient norm to this (0 = off).
        seed: Seed for shuffling and initialisation.
    """

    batch_size: int = 32
    max_epochs: int = 1
    max_steps: int = -1
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    lr_schedule: Literal["linear", "cosine", "constant"] = "linear"
    precision: Literal["32-true", "bf16-mixed"] = "32-true"
    gradient_clip: float = 0.0
    seed: int = 0


@dataclass
class Scaling:
    """Ray Train workers.

    Args:
        num_workers: Training processes (DDP); in-batch negatives span all of them.
        use_gpu: One GPU per worker.
        cpus_per_worker: CPUs reserved per worker (also its torch thread count).
        max_failures: Restarts from the last checkpoint after a worker failure.
        checkpoint_every_n_steps: Report a checkpoint every this many steps (default: each epoch).
        keep_checkpoints: Checkpoints kept under ``<output>/ray_train``.
    """

    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: int = 1
    max_failures: int = 1
    checkpoint_every_n_steps: int | None = None
    keep_checkpoints: int = 2
