"""Ray Train's ``TorchTrainer`` with one repair: a worker group that failed while starting is shut down.

Ray 2.60's ``WorkerGroup._start`` cleans up a failed start only while the group is not yet marked
started. It is marked started *before* the ``after_worker_group_start`` callbacks (the torch
process-group set-up among them) and before the training function is launched, so a worker that
dies in that window (a node lost, an OOM kill, ``kill -9``) makes the start raise with the group
left alive: its surviving workers and its placement group keep their CPUs, the controller starts a
new group that can never be placed, and with the default unlimited controller retries training
waits forever. ``benchmarks/chaos.py`` hit it once in 30 fit trials.

:class:`ShutDownAbandonedGroups` keeps the group it saw start and, before the next group starts,
shuts it down if the controller did not (a group the controller shut down is no longer started).
It must see each group first, so :class:`TorchTrainer` puts it ahead of Ray's own callbacks.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ray.train.torch import TorchTrainer as RayTorchTrainer
from ray.train.v2._internal.execution.callback import WorkerGroupCallback

if TYPE_CHECKING:
    from ray.train.v2._internal.execution.worker_group import WorkerGroup, WorkerGroupContext

logger = logging.getLogger(__name__)


class ShutDownAbandonedGroups(WorkerGroupCallback):
    """Shut down a started worker group that the controller replaced without shutting it down."""

    def __init__(self) -> None:
        self._last: WorkerGroup | None = None

    def after_worker_group_start(self, worker_group: WorkerGroup) -> None:
        self._last = worker_group

    def before_worker_group_start(self, worker_group_context: WorkerGroupContext) -> None:
        abandoned, self._last = self._last, None
        if abandoned is not None and abandoned.has_started():
            logger.warning("a training worker died while its group was starting; shutting that group down")
            abandoned.shutdown()


class TorchTrainer(RayTorchTrainer):
    """``ray.train.torch.TorchTrainer`` with :class:`ShutDownAbandonedGroups` first among its callbacks."""

    def _create_default_callbacks(self) -> list[Any]:
        return [ShutDownAbandonedGroups(), *super()._create_default_callbacks()]
