"""Starting or joining Ray the same way from jobs, the Python API and tests.

Ray's own chatter is off by default — the token-auth notice, Ray Data's plan and progress-bar
lines, the model-loading bars of every worker — so rayir's progress lines and the summary stand
out. (The core worker's one ``E core_worker.cc`` note per Ray Data stage about constructor
arguments comes from C++; the only switch for it, ``RAY_BACKEND_LOG_LEVEL``, makes every Ray
process print a line about itself instead, so it stays.) ``RAYIR_RAY_LOGS=1``
(``--ray_logs`` on the command line) shows all of it again; ``RAYIR_DASHBOARD=1`` (``--dashboard``)
starts the local Ray dashboard and logs its address.
"""

from __future__ import annotations

import logging
import os

import ray

logger = logging.getLogger(__name__)

_ON = {"1", "true", "yes", "on"}


def ray_logs_shown() -> bool:
    return os.environ.get("RAYIR_RAY_LOGS", "").strip().lower() in _ON


def dashboard_wanted() -> bool:
    return os.environ.get("RAYIR_DASHBOARD", "").strip().lower() in _ON


def quiet_ray() -> None:
    """Keep Ray's and the model libraries' routine output off the terminal (set before Ray starts,
    so the workers it spawns inherit the same environment)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # "Loading weights" bars per worker
    for name in ("ray", "ray.data", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)


def quiet_worker() -> None:
    """In a Ray Train worker: Lightning's set-up notes, Ray Train's per-report lines and library
    deprecation warnings stay in the worker's log file unless ``RAYIR_RAY_LOGS`` asks for them."""
    if ray_logs_shown():
        return
    import warnings

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "ray.train"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def ensure_ray(num_cpus: int | None = None, state_api: bool = False) -> None:
    """Join the cluster a job was submitted to (``RAY_ADDRESS``), or start a local Ray.

    ``ray job submit`` sets ``RAY_ADDRESS``; ``python jobs/x.py`` on one machine starts Ray itself.
    An already initialised Ray (a test session, a notebook) is reused as it is. ``state_api``
    starts the local dashboard process, which serves Ray's State API (Ray Train's controller polls
    it; without it, it warns every few seconds); its address is logged when ``RAYIR_DASHBOARD`` asks for it.
    """
    if ray.is_initialized():
        return
    quiet = not ray_logs_shown()
    if quiet:
        quiet_ray()
    kwargs = {
        "ignore_reinit_error": True,
        "logging_level": logging.ERROR if quiet else logging.WARNING,
        "log_to_driver": True,
    }
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
        return
    dashboard = dashboard_wanted()
    context = ray.init(num_cpus=num_cpus, include_dashboard=dashboard or state_api, **kwargs)
    if dashboard:
        logger.info("Ray dashboard: http://%s", context.dashboard_url)
