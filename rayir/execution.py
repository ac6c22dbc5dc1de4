"""Where work runs: in this process, or on Ray. The one place that decides.

Every stage speaks to an :class:`Executor` instead of branching on ``in_process``:

- ``map_tasks(fn, jobs)``: independent function calls (index shards, BM25 statistics);
- ``actors(cls, args_list)`` + ``call`` / ``result``: one long-lived worker per item (shard actors);
- ``map_batches(data, cls, ...)``: a pool of stateful callables over batches of rows (encoders,
  re-rank scorers), Ray Data's ``map_batches`` on Ray;
- ``threads_per_worker(n)``: placement defaults, from the CPUs of one node (never the cluster
  total, which can ask for more CPUs than any node has).

:class:`LocalExecutor` runs the same callables one after another in this process (small corpora,
notebooks, tests); :class:`RayExecutor` runs them on the cluster ``ensure_ray`` joins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa

BatchFormat = Literal["numpy", "pyarrow"]


@dataclass(frozen=True)
class Pool:
    """How many workers a ``map_batches`` stage runs and what each reserves."""

    size: int = 1
    num_cpus: float = 1
    num_gpus: float = 0


class Executor(Protocol):
    in_process: bool
    retryable_errors: tuple[type[BaseException], ...]

    def map_tasks(
        self, fn: Callable[..., Any], jobs: Sequence[tuple], num_cpus: float = 1, max_retries: int = 2
    ) -> list[Any]: ...

    def put(self, value: Any) -> Any: ...

    def actors(
        self,
        cls: type,
        args_list: Sequence[tuple],
        num_cpus: float = 0,
        resources: dict[str, float] | None = None,
        max_restarts: int = 0,
    ) -> list[Any]: ...

    def call(self, actor: Any, method: str, *args: Any) -> Any: ...

    def result(self, future: Any) -> Any: ...

    def kill(self, actor: Any) -> None: ...

    def from_items(self, items: list[dict[str, Any]]) -> Any: ...

    def read_parquet(self, paths: list[str]) -> Any: ...

    def map_batches(
        self,
        data: Any,
        cls: type,
        kwargs: dict[str, Any],
        pool: Pool,
        batch_size: int | None = None,
        batch_format: BatchFormat = "numpy",
        materialize: bool = False,
    ) -> Any: ...

    def group_map(self, data: Any, key: str, fn: Callable[[pa.Table], pa.Table]) -> Any: ...

    def iter_batches(self, data: Any, batch_size: int) -> Iterator[dict[str, np.ndarray]]: ...

    def iter_rows(self, data: Any) -> Iterator[dict[str, Any]]: ...

    def threads_per_worker(self, workers: int) -> int | None: ...


def executor(in_process: bool) -> Executor:
    """``LocalExecutor`` when ``in_process``, else a ``RayExecutor`` on the joined (or a new local) Ray."""
    return LocalExecutor() if in_process else RayExecutor()


# ----------------------------------------------------------------------------- in this process


@dataclass
class _Done:
    value: Any


def _to_format(table: pa.Table, batch_format: BatchFormat) -> Any:
    if batch_format == "pyarrow":
        return table
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def _to_table(batch: Any) -> pa.Table:
    if isinstance(batch, pa.Table):
        return batch
    return pa.table(
        {
            name: pa.array(list(values) if np.asarray(values).dtype == object else values)
            for name, values in batch.items()
        }
    )


class LocalExecutor:
    """Everything in the calling process, in order: the same callables, no Ray."""

    in_process = True
    retryable_errors: tuple[type[BaseException], ...] = ()

    def map_tasks(self, fn, jobs, num_cpus=1, max_retries=2) -> list[Any]:
        return [fn(*job) for job in jobs]

    def put(self, value: Any) -> Any:
        return value

    def actors(self, cls, args_list, num_cpus=0, resources=None, max_restarts=0) -> list[Any]:
        if num_cpus or resources:
            raise ValueError("CPU and resource reservations place Ray actors; in_process has none")
        return [cls(*args) for args in args_list]

    def call(self, actor, method, *args) -> _Done:
        return _Done(getattr(actor, method)(*args))

    def result(self, future: _Done) -> Any:
        return future.value

    def kill(self, actor: Any) -> None:
        pass

    def from_items(self, items: list[dict[str, Any]]) -> list[pa.Table]:
        return [pa.Table.from_pylist([item]) for item in items]

    def read_parquet(self, paths: list[str]) -> list[pa.Table]:
        import pyarrow.parquet as pq

        return [pq.read_table(path) for path in paths]

    def map_batches(
        self, data, cls, kwargs, pool, batch_size=None, batch_format="numpy", materialize=False
    ) -> Iterator[pa.Table] | list[pa.Table]:
        if pool.size != 1:
            raise ValueError(f"in_process runs one worker in this process; a pool of {pool.size} does not apply")

        def run() -> Iterator[pa.Table]:
            worker = cls(**kwargs)
            for table in data:
                step = batch_size or max(table.num_rows, 1)
                for start in range(0, table.num_rows, step):
                    yield _to_table(worker(_to_format(table.slice(start, step), batch_format)))

        return list(run()) if materialize else run()

    def group_map(self, data, key, fn) -> list[pa.Table]:
        import pyarrow.compute as pc

        tables = list(data)
        if not tables:
            return []
        table = pa.concat_tables(tables)
        table = table.take(pc.sort_indices(table, [(key, "ascending")]))
        keys = table.column(key).to_numpy(zero_copy_only=False)
        bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
        return [fn(table.slice(a, b - a)) for a, b in zip(bounds[:-1], bounds[1:])]

    def iter_batches(self, data, batch_size) -> Iterator[dict[str, np.ndarray]]:
        for table in data:
            for start in range(0, table.num_rows, batch_size):
                yield _to_format(table.slice(start, batch_size), "numpy")

    def iter_rows(self, data) -> Iterator[dict[str, Any]]:
        for table in data:
            yield from table.to_pylist()

    def threads_per_worker(self, workers: int) -> int | None:
        """None: leave torch's and Faiss' own thread defaults (this process is the only worker)."""
        return None


# ----------------------------------------------------------------------------- on Ray


class RayExecutor:
    """Ray tasks, actors and Ray Data, on the cluster ``ensure_ray`` joins or starts."""

    in_process = False

    def __init__(self) -> None:
        import ray.data
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        from .ray_runtime import ensure_ray

        ensure_ray()
        ray.data.DataContext.get_current().enable_progress_bars = False
        self._ray = ray
        self.retryable_errors = (RayActorError, ActorDiedError, ActorUnavailableError)

    def map_tasks(self, fn, jobs, num_cpus=1, max_retries=2) -> list[Any]:
        remote = self._ray.remote(fn).options(num_cpus=num_cpus, max_retries=max_retries)
        return self.result([remote.remote(*job) for job in jobs])

    def put(self, value: Any) -> Any:
        return self._ray.put(value)

    def actors(self, cls, args_list, num_cpus=0, resources=None, max_restarts=0) -> list[Any]:
        remote = self._ray.remote(cls).options(num_cpus=num_cpus, resources=resources or {}, max_restarts=max_restarts)
        return [remote.remote(*args) for args in args_list]

    def call(self, actor, method, *args) -> Any:
        return getattr(actor, method).remote(*args)

    def result(self, future: Any) -> Any:
        """The value; a :class:`~rayir.errors.UserError` raised remotely is raised here as itself
        (its one-line message, not Ray's wrapper with the remote traceback), and is never retried."""
        from ray.exceptions import RayTaskError

        from .errors import UserError

        try:
            return self._ray.get(future)
        except RayTaskError as err:
            if isinstance(err.cause, UserError):
                raise err.cause from None
            raise

    def kill(self, actor: Any) -> None:
        self._ray.kill(actor, no_restart=True)

    def from_items(self, items: list[dict[str, Any]]) -> Any:
        return self._ray.data.from_items(items, override_num_blocks=max(len(items), 1))

    def read_parquet(self, paths: list[str]) -> Any:
        return self._ray.data.read_parquet(paths)

    def map_batches(self, data, cls, kwargs, pool, batch_size=None, batch_format="numpy", materialize=False) -> Any:
        mapped = data.map_batches(
            cls,
            fn_constructor_kwargs=kwargs,
            batch_size=batch_size,
            batch_format=batch_format,
            compute=self._ray.data.ActorPoolStrategy(size=pool.size),
            num_cpus=pool.num_cpus,
            num_gpus=pool.num_gpus or None,
        )
        return mapped.materialize() if materialize else mapped

    def group_map(self, data, key, fn) -> Any:
        return data.groupby(key).map_groups(fn, batch_format="pyarrow").materialize()

    def iter_batches(self, data, batch_size) -> Iterator[dict[str, np.ndarray]]:
        return data.iter_batches(batch_size=batch_size, batch_format="numpy")

    def iter_rows(self, data) -> Iterator[dict[str, Any]]:
        return data.iter_rows()

    def threads_per_worker(self, workers: int) -> int | None:
        """The cluster's CPUs split over ``workers``, capped at the largest node's CPUs: one worker
        never asks for more CPUs than a node has (it would never be scheduled)."""
        node_cpus = [int(node["Resources"].get("CPU", 0)) for node in self._ray.nodes() if node.get("Alive")]
        return max(1, min(max(node_cpus, default=1), sum(node_cpus) // workers))
