"""Progress with counts, rate and time left: lines in logs, a bar on a terminal, for every long stage."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

from rayir.cli.stages import index, re_rank, search
from rayir.progress import Progress, Tally
from rayir.train.callbacks import ProgressLog


def test_rates_count_from_the_first_finished_unit():
    shown = Progress("encode", 100, "documents", Tally(), interval=60)
    shown._started = 0.0
    assert shown.line(0, now=90.0) == "encode: 0/100 documents (0.0%), starting (1m30s)"
    assert shown.line(10, now=100.0) == "encode: 10/100 documents (10.0%)"  # the first unit: no rate yet
    # 20 more in 10 s: 2.0/s, not 30 in 110 s (start-up excluded); 70 left at 2.0/s
    assert shown.line(30, now=110.0) == "encode: 30/100 documents (30.0%), 2.0 documents/s, 35s left"


def test_a_terminal_gets_a_bar_that_ends_on_its_own_line():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, counts = Terminal(), Tally()
    with Progress("search", 8, "queries", counts, stream=terminal):
        counts.add(8)
    written = terminal.getvalue()
    assert written.startswith("\r[") and "search: 8/8 queries in" in written and written.endswith("\n")
    assert "[" + "#" * 24 + "]" in written


def test_stages_log_their_progress_in_non_tty_mode(sample_collection, tiny_bert_dir, tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("RAYIR_PROGRESS_SECONDS", "0.01")
    with caplog.at_level(logging.INFO, logger="rayir.progress"):
        index(str(sample_collection), str(tmp_path / "out"), str(tiny_bert_dir), in_process=True)
        search(
            str(tmp_path / "out" / "index"),
            str(sample_collection),
            str(tmp_path / "a.run"),
            k=3,
            split="test",
            in_process=True,
        )
        re_rank(
            str(tiny_bert_dir),
            str(tmp_path / "a.run"),
            str(sample_collection),
            str(sample_collection),
            str(tmp_path / "b.run"),
            split="test",
            kind="bi",
            in_process=True,
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "rayir.progress"]
    assert any(line.startswith("encode: 30/30 documents in ") for line in lines)
    assert any(line.startswith("search: 8/8 queries in ") for line in lines)
    assert any(line.startswith("re-rank: 24/24 pairs in ") for line in lines)


def test_fit_logs_its_first_and_last_step_even_when_short(caplog):
    log = ProgressLog(every_n_steps=10)
    trainer = SimpleNamespace(global_rank=0, world_size=2, estimated_stepping_batches=4, callback_metrics={})
    log.on_train_start(trainer, None)
    with caplog.at_level(logging.INFO, logger="rayir.train.callbacks"):
        for step in range(1, 5):
            trainer.global_step = step
            log.on_train_batch_end(trainer, None, None, [0] * 8, step - 1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("fit: step 1/4 (25%)") and lines[-1].startswith("fit: step 4/4 (100%)")
    assert "samples/s" in lines[-1] and "0s left" in lines[-1]


def test_ray_and_library_chatter_is_quiet_unless_asked_for(monkeypatch):
    from rayir.ray_runtime import quiet_ray, quiet_worker

    names = ["ray", "ray.data", "ray.train", "lightning.pytorch"]
    before = {name: logging.getLogger(name).level for name in names}
    try:
        monkeypatch.setenv("RAYIR_RAY_LOGS", "1")
        quiet_worker()
        assert logging.getLogger("lightning.pytorch").level == before["lightning.pytorch"]
        monkeypatch.delenv("RAYIR_RAY_LOGS")
        monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
        quiet_worker()
        quiet_ray()
        assert logging.getLogger("lightning.pytorch").level == logging.WARNING
        assert logging.getLogger("ray.data").level == logging.ERROR
        import os

        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def test_process_flags_become_environment_for_ray(monkeypatch, capsys):
    import os

    import pytest

    from rayir.cli import main

    monkeypatch.delenv("RAYIR_RAY_LOGS", raising=False)
    monkeypatch.delenv("RAYIR_DASHBOARD", raising=False)
    with pytest.raises(SystemExit) as ended:
        main(["--ray_logs", "--dashboard", "--version"])
    assert ended.value.code == 0 and capsys.readouterr().out.startswith("rayir ")
    assert os.environ["RAYIR_RAY_LOGS"] == os.environ["RAYIR_DASHBOARD"] == "1"


def test_counts_on_ray_share_one_actor_and_stay_apart(ray_session):
    from rayir.progress import tally

    first, second = tally(False), tally(False)
    first.add(3)
    first.add(4)
    second.add(1)
    assert (first.value(), second.value()) == (7, 1)  # calls from one caller reach the actor in order
    assert first._actor._actor_id == second._actor._actor_id
    first.close()
    assert first.value() == 0 and second.value() == 1
