"""The stages behind ``rayir <stage>`` and ``jobs/<stage>.py``: one typed function each.

jsonargparse turns each signature into a command line that also reads YAML (``--config x.yaml``,
stackable), takes dotted overrides (``--encoding.precision bfloat16``) and rejects unknown keys.
Every stage prints one JSON summary line and returns it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from ..loss_base import Loss
from ..options import EncodingOptions, LoraSettings, ScoringOptions, ServingOptions
from ..train.options import Optimization, Scaling, TrainingData, ValidationData
from .preflight import check_measures, check_model, check_source


def _check_outputs(**paths: str | None) -> None:
    """Refuse relative output paths in a job joined to a cluster (``RAY_ADDRESS`` set).

    ``ray job submit`` runs the entry point inside Ray's temporary copy of the working directory:
    a relative output lands there and vanishes with the job, and other nodes never see it.
    """
    if not os.environ.get("RAY_ADDRESS"):
        return
    for name, path in paths.items():
        if path is not None and not Path(path).is_absolute():
            raise ValueError(
                f"{name}={path!r} is a relative path while RAY_ADDRESS is set: a job submitted with `ray job "
                "submit` runs in Ray's temporary copy of the working directory, removed when the job ends, so "
                "the output would be lost; give an absolute path on storage every node mounts (e.g. /mnt/shared/...)"
            )


def _check_files(**paths: str | None) -> None:
    """A run or output file named by a directory is refused before any work (a search would
    otherwise find it only when writing the run, after searching every query)."""
    for name, path in paths.items():
        if path is not None and Path(path).is_dir():
            raise ConfigError(f"{name}={path!r} is a directory; expected a file path")


def _report(summary: dict[str, Any], table: bool = True) -> dict[str, Any]:
    """A small table a person reads, then the one JSON line (always the last line) scripts read."""
    from ..tables import summary_table

    if table:
        print(summary_table(summary), flush=True)
    print(json.dumps(summary), flush=True)
    return summary


def _metrics(run: dict | str, qrels: str | None, split: str | None, measures: list[str]) -> dict[str, float]:
    if qrels is None:
        return {}
    from ..evaluate import evaluate as evaluate_run

    result = evaluate_run(run, qrels, measures, split=split)
    return {name: round(value, 6) for name, value in result.mean.items()}


def encode(
    corpus: str,
    output: str,
    model: str,
    encoding: EncodingOptions = EncodingOptions(),  # noqa: B008 - jsonargparse reads the default
    overwrite: bool = False,
    model_config: dict[str, Any] | None = None,
    in_process: bool = False,
) -> dict[str, Any]:
    """Encode every document of a corpus into Parquet embedding shards plus ``manifest.json``.

    Args:
        corpus: Documents: a BEIR directory, JSONL/TSV/TREC/Parquet file, or ``irds:<id>``.
        output: Embeddings directory (re-running resumes an unfinished encoding).
        model: A bi-encoder checkpoint directory, ``pkg:<module>``, or a lexical model (``bm25``); required.
        encoding: Ray Data encoding options.
        overwrite: Replace an existing encoding in ``output``.
        model_config: Model config overrides, e.g. ``{doc_max_length: 256}`` (BM25: ``k1``, ``b``).
        in_process: Encode in this process without Ray (small corpora); ``num_encoders`` must be 1.
    """
    _check_outputs(output=output)
    check_source("corpus", corpus)
    check_model(model)
    from ..encode import encode_corpus

    result = encode_corpus(
        model, corpus, output, overwrite=overwrite, in_process=in_process, **asdict(encoding), model_config=model_config
    )
    return _report(
        {
            "stage": "encode",
            "documents": result.documents,
            "truncated_documents": result.truncated_documents,
            "mode": result.manifest["mode"],
            "embeddings": output,
            "seconds": round(result.seconds, 2),
            "docs_per_second": round(result.docs_per_second, 1),
        }
    )


def index(
    corpus: str,
    output: str,
    model: str,
    factory: str = "Flat",
    num_shards: int = 1,
    encoding: EncodingOptions = EncodingOptions(),  # noqa: B008
    overwrite: bool = False,
    model_config: dict[str, Any] | None = None,
    in_process: bool = False,
) -> dict[str, Any]:
    """Encode a corpus on Ray Data into ``<output>/embeddings`` and build ``<output>/index``.

    Args:
        corpus: Documents: a BEIR directory, JSONL/TSV/TREC/Parquet file, or ``irds:<id>``.
        output: Directory for ``embeddings/`` (encoding) and ``index/`` (index shards).
        model: A bi-encoder checkpoint directory, ``pkg:<module>``, or a lexical model (``bm25``); required.
        factory: Faiss factory string for dense / multi-vector indexes (``Flat``, ``IVF256,Flat``,
            ``HNSW32``, ``IVF256,PQ16``), or ``compressed[,bits=2,centroids=N]`` for multi-vector models
            (PLAID-style: centroid id + residual bits per token); sparse models use the exact
            inverted index (``inverted``, or the default ``Flat``), or ``pruned[,postings=N]``
            (approximate: each term's N best postings index-wide); COIL models use the exact
            inverted index. Any other factory for a sparse or COIL model is an error.
        num_shards: Index shards (one Ray task each to build, one actor each to serve): the documents
            are split by rows, so any number up to the number of documents works.
        encoding: Ray Data encoding options.
        overwrite: Replace an existing encoding/index in ``output``.
        model_config: Model config overrides, e.g. ``{doc_max_length: 256}`` (BM25: ``k1``, ``b``).
        in_process: Encode and build in this process without Ray: for small corpora, where starting
            Ray and its actors costs more than the work. ``encoding.num_encoders`` must be 1.
    """
    _check_outputs(output=output)
    if num_shards < 1:
        raise ConfigError(f"num_shards={num_shards} must be >= 1")
    check_source("corpus", corpus)
    check_model(model)
    from ..encode import encode_corpus
    from ..index import build_index

    out = Path(output)
    encoded = encode_corpus(
        model,
        corpus,
        out / "embeddings",
        overwrite=overwrite,
        in_process=in_process,
        **asdict(encoding),
        model_config=model_config,
    )
    manifest = build_index(
        out / "embeddings",
        out / "index",
        num_shards=num_shards,
        factory=factory,
        overwrite=True,
        in_process=in_process,
    )
    return _report(
        {
            "stage": "index",
            "documents": encoded.documents,
            "truncated_documents": encoded.truncated_documents,
            "mode": encoded.manifest["mode"],
            "index": str(out / "index"),
            "shards": num_shards,
            "factory": manifest["factory"],
            "encode_seconds": round(encoded.seconds, 2),
            "docs_per_second": round(encoded.docs_per_second, 1),
            "build_seconds": manifest["build_seconds"],
        }
    )


def search(
    index: str,
    queries: str,
    output: str,
    k: int = 100,
    split: str | None = None,
    qrels: str | None = None,
    measures: list[str] = ["nDCG@10", "R@100"],  # noqa: B006 - jsonargparse reads the default
    batch_size: int = 64,
    serving: ServingOptions = ServingOptions(),  # noqa: B008 - jsonargparse reads the default
    num_query_encoders: int = 1,
    queries_per_chunk: int = 8192,
    tag: str = "rayir",
    in_process: bool = False,
) -> dict[str, Any]:
    """Search a sharded index with every query; write a TREC run; optionally evaluate.

    Queries are staged in chunks and searched by query-encoder actors that share the shard actors:
    the driver holds neither the queries nor the run, so query sets of millions fit (see
    :mod:`rayir.serve.batch_search`); a re-run after a crash searches only the missing chunks.

    Args:
        index: Index directory written by the index stage (``<output>/index``).
        queries: Queries: a BEIR directory (with ``split``), JSONL/TSV/TREC/Parquet, or ``irds:<id>``.
        output: TREC run file to write (queries in input order; a query that matches no document has no
            line, and the summary counts it as ``queries_without_hits``).
        k: Documents per query.
        split: BEIR split for queries and qrels (``test``, ``train``...).
        qrels: Judgements (a qrels file, BEIR directory or ``irds:<id>``); prints metrics when given.
        measures: ``ir_measures`` names.
        batch_size: Queries per encoded batch sent to the shards.
        serving: Shard backend options, placement, retries and the query encoder's device.
        num_query_encoders: Query-encoder actors (each loads the query encoder once).
        queries_per_chunk: Queries per staged chunk (the unit of work and of resumption).
        tag: Run tag (last column of the run file).
        in_process: Load the shards into this process instead of Ray actors (small indexes); then
            ``serving.cpus_per_shard`` and ``serving.shard_resources`` must stay unset.
    """
    _check_outputs(output=output)
    _check_files(output=output)
    check_source("queries", queries, split, needs_split=True)
    check_source("qrels", qrels, split, needs_split=True)
    if qrels is not None:
        check_measures(measures)
    from ..serve.batch_search import search_to_file

    result = search_to_file(
        index,
        queries,
        output,
        k=k,
        split=split,
        batch_size=batch_size,
        serving=serving,
        num_query_encoders=num_query_encoders,
        queries_per_chunk=queries_per_chunk,
        tag=tag,
        in_process=in_process,
    )
    metrics = _metrics(output, qrels, split, measures)
    return _report(
        {
            "stage": "search",
            "run": output,
            "queries": result.queries,
            "queries_without_hits": result.without_hits,
            "truncated_queries": result.truncated,
            "k": k,
            "shard_retries": result.shard_retries,
            "seconds": round(result.seconds, 2),
            **metrics,
        }
    )


def re_rank(
    model: str,
    run: str,
    queries: str,
    corpus: str,
    output: str,
    depth: int = 100,
    split: str | None = None,
    qrels: str | None = None,
    measures: list[str] = ["nDCG@10"],  # noqa: B006
    kind: Literal["auto", "cross", "bi"] = "auto",
    scoring: ScoringOptions = ScoringOptions(),  # noqa: B008
    work_dir: str | None = None,
    first_stage_weight: float = 0.0,
    tag: str = "rayir-rerank",
    model_config: dict[str, Any] | None = None,
    in_process: bool = False,
) -> dict[str, Any]:
    """Re-score the top ``depth`` candidates of a run with a cross- or bi-encoder; write the new run.

    Args:
        model: Cross-encoder or bi-encoder checkpoint directory.
        run: Input TREC run, or ``irds:<id>`` for a dataset's scored documents.
        queries: Query source (as for search).
        corpus: Document source; texts are looked up by id through a Ray Data join.
        output: TREC run file to write.
        depth: Candidates per query taken from the input run.
        split: BEIR split for queries and qrels.
        qrels: Judgements; prints metrics when given.
        measures: ``ir_measures`` names.
        kind: ``cross``, ``bi``, or ``auto`` (from the checkpoint layout).
        scoring: Batch size, scorer actors, threads, GPUs and precision of the scorers.
        work_dir: Where the corpus is staged (kept, reused across re-runs); by default
            ``.<output name>.rerank-work`` beside the output (storage every node of the job sees),
            removed after success and reused by a re-run after a failure.
        first_stage_weight: Mix in the input run's scores: ``(1 - w) * model + w * run``, both
            min-max normalised per query; 0 (default) keeps the model's scores alone.
        tag: Run tag.
        model_config: Model config overrides.
        in_process: Join and score in this process without Ray (small runs); ``scoring.num_scorers``
            must be 1.
    """
    _check_outputs(output=output, work_dir=work_dir)
    _check_files(output=output, run=run)
    if run.startswith("irds:"):
        check_source("run", run)  # an ir_datasets id's scored documents
    elif not Path(run).is_file():
        raise FileNotFoundError(f"run={run}: no such file")
    check_source("queries", queries, split, needs_split=True)
    check_source("corpus", corpus)
    check_source("qrels", qrels, split, needs_split=True)
    if qrels is not None:
        check_measures(measures)
    check_model(model, lexical=False)
    import shutil

    from ..data import write_run
    from ..locks import output_lock
    from ..serve.rerank import rerank as rerank_run

    # Staged beside the output (storage the job's nodes share), not in a driver-local temp dir.
    work = Path(work_dir) if work_dir else Path(output).with_name(f".{Path(output).name}.rerank-work")
    with output_lock(Path(output)):
        result = rerank_run(
            model,
            run,
            queries,
            corpus,
            depth=depth,
            split=split,
            kind=kind,
            work_dir=work,
            first_stage_weight=first_stage_weight,
            in_process=in_process,
            model_config=model_config,
            scoring=scoring,
        )
        write_run(result, output, tag=tag)
        if not work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return _report(
        {
            "stage": "re_rank",
            "run": output,
            "queries": len(result),
            "pairs": sum(len(v) for v in result.values()),
            "truncated_pairs": result.truncated_pairs,
            "scoring_pairs_per_second": round(result.scoring_pairs_per_second, 1),
            **_metrics(result, qrels, split, measures),
        }
    )


def fit(
    model: str,
    output: str,
    data: TrainingData,
    losses: list[Loss],
    kind: Literal["bi", "cross"] = "bi",
    validation: ValidationData | None = None,
    optimization: Optimization = Optimization(),  # noqa: B008
    scaling: Scaling = Scaling(),  # noqa: B008
    model_config: dict[str, Any] | None = None,
    overwrite: bool = False,
    loggers: list[Literal["csv", "tensorboard", "wandb"]] = ["csv"],  # noqa: B006 - jsonargparse reads the default
    adapter: LoraSettings = LoraSettings(),  # noqa: B008
) -> dict[str, Any]:
    """Fine-tune a bi- or cross-encoder on Ray Train; writes ``<output>/checkpoint`` (a Hugging Face directory).

    Args:
        model: Starting checkpoint: any layout the encode / re-rank stages read (``pkg:<module>`` too).
        output: Directory for ``checkpoint/``, ``training.json`` and Ray Train's ``ray_train/`` state.
        data: Training samples.
        losses: Weighted losses (``class_path: rayir.losses.InBatchCrossEntropy`` plus ``init_args``).
        kind: ``bi`` (bi-encoder, any mode) or ``cross`` (cross-encoder).
        validation: Re-rank a run on held-out queries during training, logged as ``val_<measure>``.
        optimization: Batch, optimiser and precision settings.
        scaling: Ray Train workers, GPUs, failures and checkpoints.
        model_config: Model config overrides, e.g. ``{mode: multi_vector, embedding_dim: 128}``.
        overwrite: Train again over a finished run in ``output``.
        loggers: Experiment loggers writing the logged metrics under ``<output>/logs``: ``csv``
            (``logs/csv/metrics.csv``), ``tensorboard``, ``wandb``; an empty list for none.
        adapter: LoRA on the backbone (``adapter.r > 0``): only the adapter and the weights outside
            the backbone train, and ``checkpoint/`` holds those alone (see ``rayir.models.adapters``;
            ``rayir.models.export.merge_adapter`` folds it into a plain checkpoint).
    """
    _check_outputs(output=output)
    from ..train.ray_trainer import fit as run_fit

    result = run_fit(
        model,
        output,
        data,
        losses,
        kind=kind,
        validation=validation,
        optimization=optimization,
        scaling=scaling,
        model_config=model_config,
        overwrite=overwrite,
        loggers=loggers,
        adapter=adapter,
    )
    return _report(
        {
            "stage": "fit",
            "checkpoint": str(result.checkpoint),
            "steps": result.steps,
            "samples": result.samples,
            "seconds": round(result.seconds, 2),
            "samples_per_second": round(result.samples_per_second, 2),
            **{k: round(v, 6) for k, v in result.metrics.items() if k.startswith(("val_", "train_loss"))},
        }
    )
