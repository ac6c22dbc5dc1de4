"""Re-rank a run: score each (query, candidate) pair with a cross- or bi-encoder on Ray Data.

Document texts come from the corpus by id: the corpus is staged into Parquet chunks (streamed, one
chunk in memory at a time) that Ray Data reads in parallel, keeping only candidate documents
(a broadcast join against the run's candidate map), so no single process loads the corpus. Scoring runs in an actor pool
(one model per actor); listwise cross-encoders score each query's candidates together.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from ..checkpoints import FRESH_HEAD_WARNING, cross_encoder_head_is_fresh
from ..data.readers import read_queries
from ..data.trec import Run, ranked, read_run
from ..encode.parallel_staging import stage_documents
from ..errors import ConfigError, UnknownIdError
from ..execution import Pool, executor
from ..logs import report_truncation
from ..options import ScoringOptions, check_precision
from ..progress import Progress, Tally, tally

logger = logging.getLogger(__name__)

# Mini-batches per block a scorer receives: a block's pairs are sorted by length, so larger blocks
# waste less padding (and cost nothing but memory for the texts).
SORT_BLOCK_BATCHES = 16

ModelKind = Literal["auto", "cross", "bi"]


def detect_kind(model: str | Path, overrides: dict[str, Any] | None = None) -> str:
    """``cross`` or ``bi``: see :func:`rayir.checkpoints.model_kind`."""
    from ..checkpoints import model_kind

    return model_kind(model, (overrides or {}).get("mode"))


def check_overrides(kind: str, overrides: dict[str, Any]) -> None:
    """An unknown field or a value the family's config refuses is a ConfigError now, not a failed actor later."""
    from ..models.config import BiEncoderConfig, CrossEncoderConfig

    try:
        (CrossEncoderConfig if kind == "cross" else BiEncoderConfig)(**overrides)
    except ValueError as err:
        raise ConfigError(f"model_config for a {kind}-encoder: {err}") from None


class AttachCandidates:
    """Ray Data callable: keep corpus rows that are candidates, one output row per (query, doc)."""

    def __init__(self, candidates: Any, queries: Any) -> None:
        self.candidates = _resolve(candidates)
        self.queries = _resolve(queries)

    def __call__(self, batch: pa.Table) -> pa.Table:
        query_ids, doc_ids, texts = [], [], []
        for doc_id, text in zip(batch.column("doc_id").to_pylist(), batch.column("text").to_pylist()):
            for query_id in self.candidates.get(doc_id, ()):
                query_ids.append(query_id)
                doc_ids.append(doc_id)
                texts.append(text)
        return pa.table(
            {
                "query_id": pa.array(query_ids, pa.string()),
                "doc_id": pa.array(doc_ids, pa.string()),
                "query": pa.array([self.queries[q] for q in query_ids], pa.string()),
                "text": pa.array(texts, pa.string()),
            }
        )


class RerankedRun(dict):
    """A run (``{query_id: {doc_id: score}}``) that also counts the pairs whose texts were cut at the
    model's length limits (``truncated_pairs``) and how fast the scorers scored, apart from start-up,
    staging and the join (``scoring_pairs_per_second``: pairs over the scorers' busy seconds, from
    batch in to scores out, divided by the number of scorers)."""

    truncated_pairs: int = 0
    scoring_pairs_per_second: float = 0.0


class PairScorer:
    """Ray Data callable class: scores a batch of (query text, doc text) pairs."""

    def __init__(
        self,
        model: str,
        kind: str,
        overrides: dict[str, Any],
        batch_size: int,
        device: str,
        threads: int | None,
        precision: str = "float32",
        progress: Tally | None = None,
    ) -> None:
        from ..models.inference import load_for_inference
        from ..modules import BiEncoderModule, CrossEncoderModule

        self.progress = progress

        module_cls = CrossEncoderModule if kind == "cross" else BiEncoderModule
        self.module, self.precision_context = load_for_inference(
            module_cls, model, overrides, batch_size=batch_size, device=device, precision=precision, threads=threads
        )
        self.kind = kind
        self.batch_size = batch_size
        self.listwise = kind == "cross" and self.module.config.scores_lists

    def _truncated(self) -> int:
        """Texts (bi-encoder) or pairs (cross-encoder) cut at the model's length limits so far."""
        counts = self.module.tokenizer.truncated
        return sum(counts.values()) if isinstance(counts, dict) else counts

    def scores(self, queries: list[str], docs: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode(), self.precision_context():
            if self.kind == "bi":
                q = self.module.encode_queries(queries).float()
                d = self.module.encode_docs(docs).float()
                return self.module.model.score_pairs(q, d).float().cpu().numpy()
            if self.listwise:
                return self.module.score(queries[0], docs).scores.float().cpu().numpy()
        return self._forward(self.module.tokenizer.pairs(queries, docs))

    def sorted_scores(self, queries: list[str], docs: list[str]) -> np.ndarray:
        """Scores of a block of pairs, computed in length-sorted mini-batches (little padding,
        :mod:`rayir.models.batching`) and returned in the block's order. Cross-encoder pairs are
        tokenised once: their lengths and each padded mini-batch come from that one encoding."""
        from ..models.batching import length_sorted_batches, restore_order

        if self.kind == "cross":
            tokenizer = self.module.tokenizer
            encoded = tokenizer.unpadded(queries, docs)
            lengths, max_length = [len(ids) for ids in encoded["input_ids"]], self.module.config.max_length

            def score(picked: np.ndarray) -> np.ndarray:
                return self._forward(tokenizer.pad_rows(encoded, picked))
        else:
            lengths, max_length = self.module.tokenizer.doc_lengths(docs), self.module.config.doc_max_length

            def score(picked: np.ndarray) -> np.ndarray:
                return self.scores([queries[i] for i in picked], [docs[i] for i in picked])

        order, batches = length_sorted_batches(lengths, self.batch_size, max_length)
        parts = []
        for picked in batches:
            parts.append(score(picked))
            if self.progress is not None:
                self.progress.add(len(picked))
        return np.concatenate(parts)[restore_order(order)] if parts else np.zeros(0, np.float32)

    def _forward(self, batch: dict[str, Any]) -> np.ndarray:
        """Cross-encoder scores of one tokenised, padded batch of pairs."""
        import torch

        with torch.inference_mode(), self.precision_context():
            return self.module.model(batch).float().cpu().numpy()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        before = self._truncated()
        if "doc_ids" in batch:  # packed candidate lists (listwise): score each list jointly
            query_ids, doc_ids, scores = [], [], []
            for query_id, query, ids, texts in zip(batch["query_id"], batch["query"], batch["doc_ids"], batch["texts"]):
                scores.extend(self.scores([str(query)] * len(texts), [str(t) for t in texts]).tolist())
                query_ids.extend([query_id] * len(ids))
                doc_ids.extend(ids)
                if self.progress is not None:
                    self.progress.add(len(ids))
            out = {"query_id": np.asarray(query_ids), "doc_id": np.asarray(doc_ids), "score": np.asarray(scores)}
        else:
            scores = self.sorted_scores([str(q) for q in batch["query"]], [str(d) for d in batch["text"]])
            out = {"query_id": batch["query_id"], "doc_id": batch["doc_id"], "score": scores.astype(np.float64)}
        # The batch's count of cut texts and its scoring seconds ride on its first row (the columns
        # are summed, never read row by row).
        truncated = np.zeros(len(out["score"]), np.int64)
        busy = np.zeros(len(out["score"]), np.float64)
        if len(truncated):
            truncated[0] = min(self._truncated() - before, len(truncated))
            busy[0] = time.perf_counter() - started
        return {**out, "truncated": truncated, "busy_seconds": busy}


def pack_candidate_list(group: pa.Table) -> pa.Table:
    """All candidates of one query as a single row (``doc_ids`` and ``texts`` lists)."""
    return pa.table(
        {
            "query_id": [group.column("query_id")[0].as_py()],
            "query": [group.column("query")[0].as_py()],
            "doc_ids": [group.column("doc_id").to_pylist()],
            "texts": [group.column("text").to_pylist()],
        }
    )


def check_first_stage_weight(weight: float) -> None:
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"first_stage_weight={weight}; expected a value in [0, 1]")


def interpolate_with_first_stage(scores: Run, first_stage: Run, weight: float) -> Run:
    """``(1 - weight) * model + weight * first stage``, each min-max normalised over the query's
    candidates (the first stage's scale, e.g. BM25's, is unrelated to the model's). A query whose
    candidates all score the same contributes 0 for that side."""
    check_first_stage_weight(weight)
    if weight == 0.0:
        return scores

    def normalised(row: dict[str, float]) -> dict[str, float]:
        low, high = min(row.values()), max(row.values())
        return {d: (s - low) / (high - low) if high > low else 0.0 for d, s in row.items()}

    mixed: Run = {}
    for query_id, row in scores.items():
        model_part = normalised(row)
        first_part = normalised({d: first_stage[query_id][d] for d in row})
        mixed[query_id] = {d: (1 - weight) * model_part[d] + weight * first_part[d] for d in row}
    return mixed


def rerank(
    model: str | Path,
    run: str | Path | Run,
    queries: str | Path,
    corpus: str | Path,
    depth: int = 100,
    split: str | None = None,
    kind: ModelKind = "auto",
    work_dir: str | Path | None = None,
    first_stage_weight: float = 0.0,
    in_process: bool = False,
    model_config: dict[str, Any] | None = None,
    scoring: ScoringOptions | None = None,
    **options: Any,
) -> RerankedRun:
    """A new run: the top ``depth`` candidates of each query in ``run``, re-scored by ``model``.

    ``scoring`` (:class:`~rayir.options.ScoringOptions`: batch size, scorers, threads, GPUs,
    precision; ``options`` set single fields of it) says how the scorers run; ``precision=
    "bfloat16"`` scores in bf16, as encoding does (:mod:`rayir.models.precision`).
    ``first_stage_weight > 0`` mixes the input run's scores in (see
    :func:`interpolate_with_first_stage`); 0 keeps the model's scores alone. The corpus is staged
    under ``work_dir`` (kept, and reused by a re-run) or else in a temporary directory removed at
    the end. ``in_process=True`` joins and scores in this process without Ray (small runs).
    """
    scoring = replace(scoring or ScoringOptions(), **options)
    check_precision(scoring.precision)
    check_first_stage_weight(first_stage_weight)  # before any work
    config_overrides = dict(model_config or {})

    input_run = read_run(run) if isinstance(run, (str, Path)) else run
    kind = detect_kind(model, config_overrides) if kind == "auto" else kind
    check_overrides(kind, config_overrides)
    mode = config_overrides.get("mode")
    if kind == "cross" and not in_process and cross_encoder_head_is_fresh(_model_config(model), mode):
        logger.warning(FRESH_HEAD_WARNING, model, mode or "pointwise")  # in the driver; the scorers warn too
    query_texts = {q.query_id: q.text for q in read_queries(queries, split=split) if q.query_id in input_run}
    missing_queries = sorted(set(input_run) - set(query_texts))
    if missing_queries:
        raise UnknownIdError(f"{queries}: no text for {len(missing_queries)} run queries, e.g. {missing_queries[:5]}")
    pairs = [(q, d) for q in sorted(input_run) for d, _ in ranked(input_run[q], depth)]
    if not pairs:
        raise ValueError("the run has no candidates to re-rank")

    execution = executor(in_process)  # Ray starts only once the inputs are known to be good
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="rayir-rerank-"))
    try:
        result = _score(
            execution,
            model,
            kind,
            config_overrides,
            pairs,
            query_texts,
            corpus,
            work,
            scoring,
        )
    finally:
        if not work_dir:
            shutil.rmtree(work, ignore_errors=True)
    mixed = RerankedRun(interpolate_with_first_stage(result, input_run, first_stage_weight))
    mixed.truncated_pairs = result.truncated_pairs
    mixed.scoring_pairs_per_second = result.scoring_pairs_per_second
    return mixed


def _score(
    execution: Any,
    model: str | Path,
    kind: str,
    config_overrides: dict[str, Any],
    pairs: list[tuple[str, str]],
    query_texts: dict[str, str],
    corpus: str | Path,
    work: Path,
    scoring: ScoringOptions,
) -> RerankedRun:
    chunks = stage_documents(corpus, work / "corpus", 8192, {"corpus": str(corpus)}, execution)
    docs = execution.read_parquet([str(work / "corpus" / c.path) for c in chunks])
    candidates: dict[str, list[str]] = {}
    for query_id, doc_id in pairs:
        candidates.setdefault(doc_id, []).append(query_id)
    # A broadcast join: every corpus chunk keeps the candidate documents and pairs them with their
    # queries; the candidate map (the size of the run, not of the corpus) is shared by object ref.
    joined = execution.map_batches(
        docs,
        AttachCandidates,
        {"candidates": execution.put(candidates), "queries": execution.put(query_texts)},
        Pool(size=1, num_cpus=0.5),
        batch_format="pyarrow",
        materialize=True,  # finished before scoring starts: its workers never wait on the scorers' CPUs
    )
    threads = scoring.threads_per_scorer
    if threads is None:
        threads = execution.threads_per_worker(scoring.num_scorers)
    gpus = scoring.gpus_per_scorer
    scorer = dict(
        model=str(model),
        kind=kind,
        overrides=config_overrides,
        batch_size=scoring.batch_size,
        device="cuda" if gpus else "cpu",
        threads=threads,
        precision=scoring.precision,
        progress=tally(execution.in_process),
    )
    pool = Pool(size=scoring.num_scorers, num_cpus=0 if gpus else threads or 1, num_gpus=gpus)
    started = time.perf_counter()
    if kind == "cross" and _is_listwise(model, config_overrides):
        # One row per query holding all its candidates, materialised before the scorers start.
        lists = execution.group_map(joined, "query_id", pack_candidate_list)
        scored = execution.map_batches(lists, PairScorer, scorer, pool, batch_size=1)
    else:
        # Blocks of many mini-batches: each scorer sorts a block's pairs by length before batching.
        block = scoring.batch_size * SORT_BLOCK_BATCHES
        scored = execution.map_batches(joined, PairScorer, scorer, pool, batch_size=block)
    result = RerankedRun()
    count, busy = 0, 0.0
    with Progress("re-rank", len(pairs), "pairs", scorer["progress"]):
        for batch in execution.iter_batches(scored, 4096):
            for q, d, s in zip(batch["query_id"], batch["doc_id"], batch["score"]):
                result.setdefault(str(q), {})[str(d)] = float(s)
                count += 1
            result.truncated_pairs += int(np.sum(batch["truncated"]))
            busy += float(np.sum(batch["busy_seconds"]))
    if count != len(pairs):
        missing = sorted({d for q, d in pairs if d not in result.get(q, {})})
        raise UnknownIdError(f"{corpus}: {len(missing)} candidate document(s) not in the corpus, e.g. {missing[:5]}")
    scorers = 1 if execution.in_process else scoring.num_scorers
    result.scoring_pairs_per_second = count * scorers / busy if busy > 0 else 0.0
    logger.info(
        "%d pairs of %d queries scored in %.1fs (%.1f pairs/s while scoring)",
        count,
        len(result),
        time.perf_counter() - started,
        result.scoring_pairs_per_second,
    )
    cross_limits = "max_length (or query_max_length/doc_max_length, if set)"
    limits = cross_limits if kind == "cross" else "query_max_length/doc_max_length"
    report_truncation(logger, result.truncated_pairs, count, "pairs", f"the model's {limits}")
    return result


def _resolve(value: Any) -> Any:
    """A mapping passed as itself (in process) or by object reference (Ray)."""
    if isinstance(value, dict):
        return value
    import ray

    return ray.get(value)


def _model_config(model: str | Path) -> dict[str, Any]:
    """The checkpoint's ``config.json`` (empty for layouts without one, e.g. sentence-transformers v2)."""
    import json

    from ..checkpoints import resolve_model_dir

    config_path = resolve_model_dir(model) / "config.json"
    return json.loads(config_path.read_text()) if config_path.exists() else {}


def _is_listwise(model: str | Path, overrides: dict[str, Any]) -> bool:
    """Whether the cross-encoder scores a query's candidates together (listwise, Set-Encoder)."""
    from ..checkpoints import lightning_ir_type

    config = _model_config(model)
    if "mode" not in overrides and lightning_ir_type(config) == "set-encoder":
        return True
    return overrides.get("mode", config.get("mode")) in ("listwise", "set_encoder")
