"""One writer per output, no leftovers of a killed write, and files as readable as any other."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from rayir.atomic import write_json
from rayir.encode import encode_corpus
from rayir.locks import OutputInUseError, lock_path, output_lock

HOLD = """
import sys, time
from rayir.locks import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_of_one_output_is_refused_naming_the_first(sample_collection, tmp_path):
    """Two ``rayir index`` runs into one directory raced on temp files until one died on a rename."""
    out = tmp_path / "enc"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputInUseError, match=f"in use by another rayir process \\(pid {holder.pid}"):
            encode_corpus("bm25", sample_collection, out, in_process=True)
        assert not out.exists()  # refused before any work
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed holder never leaves the lock held
        holder.wait()
    assert encode_corpus("bm25", sample_collection, out, in_process=True).documents == 30
    assert not lock_path(out).exists()  # released and removed


def test_the_same_process_cannot_take_one_lock_twice(tmp_path):
    with output_lock(tmp_path / "run.trec"):
        with pytest.raises(OutputInUseError, match=f"pid {os.getpid()}"):
            with output_lock(tmp_path / "run.trec"):
                pass
    with output_lock(tmp_path / "run.trec"):  # free again
        pass


def test_temp_files_of_a_killed_write_are_removed_by_the_next_write(tmp_path):
    stale = tmp_path / ".manifest.json.k1ll3d.tmp"
    stale.write_text('{"half": ')
    other = tmp_path / ".other.json.k1ll3d.tmp"
    other.write_text("{}")
    write_json(tmp_path / "manifest.json", {"complete": True})
    assert not stale.exists() and other.exists()  # only the same name's leftovers


def test_written_files_honour_the_umask(tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    path = write_json(tmp_path / "summary.json", {"a": 1})
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # was 0600 whatever the umask
