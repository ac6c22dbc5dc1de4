"""Ray Train's ``TorchTrainer`` with two repairs for a worker that dies while its group starts.

Ray 2.60's ``WorkerGroup._start`` cleans up a failed start only while the group is not yet marked
started. It is marked started *before* the ``after_worker_group_start`` callbacks (the torch
process-group set-up among them) and before the training function is launched. A worker that
dies in that window (a node lost, an OOM kill, ``kill -9``) therefore

* leaves the group alive: its other workers and its placement group keep their CPUs, the
  controller starts a new group that can never be placed, and with the default unlimited
  controller retries training waits forever (``benchmarks/chaos.py`` hit it once in 15 fit
  trials) — :class:`ShutDownAbandonedGroups` shuts such a group down before the next one starts;
* or, dying during the launch of the training function, surfaces as a bare ``RayActorError``
  that the default failure policy does not retry, so the run fails whatever ``max_failures``
  says — :class:`RetryWorkersLostWhileStarting` retries it like any other failed start.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ray.exceptions import RayActorError
from ray.train.torch import TorchTrainer as RayTorchTrainer
from ray.train.v2._internal.execution.callback import WorkerGroupCallback
from ray.train.v2._internal.execution.failure_handling import DefaultFailurePolicy
from ray.train.v2.api.exceptions import ControllerError, TrainingFailedError

if TYPE_CHECKING:
    from ray.train.v2._internal.execution.worker_group import WorkerGroup, WorkerGroupContext

logger = logging.getLogger(__name__)


class ShutDownAbandonedGroups(WorkerGroupCallback):
    """Shut down a started worker group that the controller replaced without shutting it down.

    It must see each group before any other callback can fail the start, so it runs first.
    """

    def __init__(self) -> None:
        self._last: WorkerGroup | None = None

    def after_worker_group_start(self, worker_group: WorkerGroup) -> None:
        self._last = worker_group

    def before_worker_group_start(self, worker_group_context: WorkerGroupContext) -> None:
        abandoned, self._last = self._last, None
        if abandoned is not None and abandoned.has_started():  # a group shut down is no longer started
            logger.warning("a training worker died while its group was starting; shutting that group down")
            abandoned.shutdown()


class RetryWorkersLostWhileStarting(DefaultFailurePolicy):
    """Ray's failure policy, with a worker death seen by the controller retried as a failed start."""

    def _is_retryable_error(self, training_failed_error: TrainingFailedError) -> bool:
        if isinstance(training_failed_error, ControllerError) and isinstance(
            training_failed_error.controller_failure, RayActorError
        ):
            return True  # counted against FailureConfig.controller_failure_limit, as a failed start is
        return super()._is_retryable_error(training_failed_error)


class TorchTrainer(RayTorchTrainer):
    """``ray.train.torch.TorchTrainer`` with both repairs in place."""

    def _create_default_callbacks(self) -> list[Any]:
        return [ShutDownAbandonedGroups(), *super()._create_default_callbacks()]

    def _initialize_and_run_controller(self, **controller_init_kwargs: Any) -> Any:
        controller_init_kwargs["failure_policy"] = RetryWorkersLostWhileStarting(self.run_config.failure_config)
        return super()._initialize_and_run_controller(**controller_init_kwargs)
