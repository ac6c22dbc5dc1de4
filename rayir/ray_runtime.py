"""Starting or joining Ray the same way from jobs, the Python API and tests."""

from __future__ import annotations

import logging
import os

import ray


def ensure_ray(num_cpus: int | None = None) -> None:
    """Join the cluster a job was submitted to (``RAY_ADDRESS``), or start a local Ray.

    ``ray job submit`` sets ``RAY_ADDRESS``; ``python jobs/x.py`` on one machine starts Ray itself.
    An already initialised Ray (a test session, a notebook) is reused as it is.
    """
    if ray.is_initialized():
        return
    kwargs = {"ignore_reinit_error": True, "logging_level": logging.WARNING, "log_to_driver": True}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
