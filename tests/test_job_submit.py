"""``ray job submit -- python jobs/index.py`` against a throw-away local head that this test starts and stops."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.scenario

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_dashboard(url: str, head: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"no dashboard at {url} after {timeout} s")


@pytest.fixture(scope="module")
def local_head(ray_session):
    """A Ray head in its own temp dir and process group, with auth disabled for this test only.

    Depends on ``ray_session`` so the test process's own Ray is already up and never joins this head.
    """
    ray_exe = shutil.which("ray") or pytest.skip("the ray CLI is not on PATH")
    temp_dir = tempfile.mkdtemp(prefix="rj-")  # short: Ray's socket paths must stay under 108 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    dashboard_port = _free_port()
    head = subprocess.Popen(
        [
            ray_exe,
            "start",
            "--head",
            "--block",
            f"--port={_free_port()}",
            f"--dashboard-port={dashboard_port}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            "--num-cpus=2",
            f"--temp-dir={temp_dir}",
            # every agent port fresh: the test session's own Ray already holds the defaults
            f"--dashboard-agent-listen-port={_free_port()}",
            f"--dashboard-agent-grpc-port={_free_port()}",
            f"--runtime-env-agent-port={_free_port()}",
            f"--metrics-export-port={_free_port()}",
            f"--ray-client-server-port={_free_port()}",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{dashboard_port}"
    try:
        _wait_for_dashboard(url, head)
        yield url, env
    finally:  # stop only this head: `ray start --block` tears down what it started on SIGTERM
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:  # its graceful path waits ~30 s; its own process group goes at once
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        deadline = time.monotonic() + 30
        while _processes_of(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _processes_of(temp_dir), "processes of the test's head outlived it"
        shutil.rmtree(temp_dir, ignore_errors=True)


def _processes_of(temp_dir: str) -> list[int]:
    """Live processes whose command line names this head's temp dir (its GCS, raylet, agents, workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if temp_dir.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _submit(url: str, env: dict, *entrypoint: str, runtime_env: dict | None = None) -> subprocess.CompletedProcess:
    """``ray job submit --working-dir <repo>``; retried while the head's job agent is still starting."""
    command = [shutil.which("ray"), "job", "submit", f"--address={url}", "--working-dir", str(ROOT)]
    if runtime_env:
        command += ["--runtime-env-json", json.dumps(runtime_env)]
    for _ in range(30):
        result = subprocess.run([*command, "--", *entrypoint], env=env, capture_output=True, text=True, timeout=300)
        if "No available agent" not in result.stderr + result.stdout:
            return result
        time.sleep(2)
    raise TimeoutError("the head's job agent never came up")


def test_ray_job_submit_runs_the_index_job(local_head, tmp_path):
    url, env = local_head
    output = tmp_path / "submitted"
    runtime_env = {"env_vars": {"HF_HUB_OFFLINE": "1", "IR_DATASETS_HOME": str(tmp_path / "irds")}}
    result = _submit(
        url,
        env,
        sys.executable,
        "jobs/index.py",
        "--config",
        "configs/index/sample-bm25.yaml",
        "--output",
        str(output),
        runtime_env=runtime_env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout
    summary = json.loads(next(line for line in result.stdout.splitlines() if line.startswith('{"stage": "index"')))
    assert summary["documents"] == 30 and summary["shards"] == 2

    embeddings = json.loads((output / "embeddings" / "manifest.json").read_text())
    ids = [
        i
        for shard in embeddings["shards"]
        for i in pq.read_table(output / "embeddings" / shard["file"], columns=["doc_id"])["doc_id"].to_pylist()
    ]
    assert len(ids) == len(set(ids)) == 30
    index_manifest = json.loads((output / "index" / "manifest.json").read_text())
    assert len(index_manifest["shards"]) == 2


def test_failed_job_is_reported_as_failed(local_head, tmp_path):
    url, env = local_head
    result = _submit(
        url,
        env,
        sys.executable,
        "jobs/index.py",
        "--model",
        "bm25",
        "--corpus",
        str(tmp_path / "missing.jsonl"),
        "--output",
        str(tmp_path / "x"),
    )
    assert result.returncode != 0
    assert "missing.jsonl" in result.stdout + result.stderr
    assert not (tmp_path / "x" / "index").exists()
