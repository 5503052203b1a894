"""A cold build's decoding in a child process: the same rows as in-process, and when the
child cannot start, cannot read a run or dies mid-stream, the build is done in-process
with nothing of the child's kept (the same rows, or the same skipped runs); git dying
under the child leaves the rest of its runs to its object layer."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic_ledger import build_ledger  # noqa: E402

import gitprov
from gitprov.errors import WriteError
from gitprov.index import RunIndex, build_process, reading, refresh, rows
from gitprov.index.build_process import BuildChildError, child_batches
from gitprov.index.reading import in_pack_order
from gitprov.runs.reading import all_run_entries
from tests.index.test_reading import table_rows


@pytest.fixture(params=["tree", "log"])
def ledger_repo(request, repo, monkeypatch):
    """40 synthetic runs in format 3's tree, or upgraded to a log (one checkpoint: each
    run one run blob)."""
    build_ledger(str(repo.path), 40, seed=5, series_fraction=0.2)
    if request.param == "log":
        ledger = gitprov.Repository(repo.path).ledger
        ledger.apply({}, "prov: to the log")
        assert ledger.is_log()
    monkeypatch.setattr(reading, "BULK_MIN", 1)
    monkeypatch.setattr(refresh, "BULK_INDEX_MIN", 1)  # a cold build
    monkeypatch.setattr(refresh, "INSERT_BATCH", 7)  # several frames from the child
    return gitprov.Repository(repo.path)


def built(prov, path, monkeypatch, *, child: bool):
    """Rows of a cold build at ``path``, and whether the child delivered them."""
    used = []
    real = refresh.rows_from_child
    monkeypatch.setattr(build_process, "CHILD", child)
    monkeypatch.setattr(refresh, "rows_from_child", lambda *a, **k: used.append(real(*a, **k)) or used[-1])
    index = RunIndex(prov.ledger, str(path))
    index.connection()
    skipped = index.skipped()
    index.close()
    return table_rows(path), used == [True], skipped


def test_rows_from_the_child_equal_rows_made_in_process(ledger_repo, monkeypatch, tmp_path):
    from_child, by_child, _ = built(ledger_repo, tmp_path / "child.sqlite", monkeypatch, child=True)
    in_process, by_thread, _ = built(ledger_repo, tmp_path / "thread.sqlite", monkeypatch, child=False)
    assert by_child and not by_thread
    assert from_child == in_process and len(from_child["runs"]) == 40 and from_child["lineage"]


def test_a_child_that_cannot_start_leaves_the_build_in_process(ledger_repo, monkeypatch, tmp_path):
    expected, _, _ = built(ledger_repo, tmp_path / "thread.sqlite", monkeypatch, child=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    got, by_child, _ = built(ledger_repo, tmp_path / "child.sqlite", monkeypatch, child=True)
    assert not by_child and got == expected


_PROC = pytest.mark.skipif(not os.path.isdir(f"/proc/{os.getpid()}/task"), reason="finds the child in /proc")


@_PROC
def test_a_child_killed_mid_stream_leaves_nothing_of_it(ledger_repo, monkeypatch, tmp_path):
    expected, _, _ = built(ledger_repo, tmp_path / "thread.sqlite", monkeypatch, child=False)
    real, inserted = rows.RunRows.insert, []

    def kill_the_child_after_one_batch(self, tables):
        real(self, tables)
        inserted.append(len(tables["runs"]))
        if len(inserted) == 1:  # the child of this process running ``build_process``
            for pid in _children():
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"gitprov.index.build_process" in f.read():
                        os.kill(pid, signal.SIGKILL)

    monkeypatch.setattr(rows.RunRows, "insert", kill_the_child_after_one_batch)
    got, by_child, _ = built(ledger_repo, tmp_path / "child.sqlite", monkeypatch, child=True)
    # killed once its first batch is in (the rest may already wait in the pipe): it did not
    # end well, so what it sent is rolled back, and the build is done again in-process
    assert not by_child and inserted[0] == 7
    assert got == expected


def test_a_run_the_child_cannot_read_is_skipped_as_in_process(ledger_repo, monkeypatch, tmp_path):
    prov = ledger_repo
    run_id, tree = all_run_entries(prov.ledger, prov.ledger.tip())[11]
    # format 3: the run's state; the log: its run blob
    gone = tree if prov.ledger.is_log() else prov.ledger.list_dir(f"runs/{run_id[:2]}/{run_id}")["state"].oid
    from tests.conftest import unpack_all

    unpack_all(Path(prov.git.work_tree))
    os.remove(os.path.join(prov.git.common_dir, "objects", gone[:2], gone[2:]))
    expected, _, skipped_in_process = built(prov, tmp_path / "thread.sqlite", monkeypatch, child=False)
    got, by_child, skipped = built(prov, tmp_path / "child.sqlite", monkeypatch, child=True)
    assert not by_child and got == expected and skipped == skipped_in_process and list(skipped) == [run_id]


@_PROC
def test_a_failed_insert_ends_the_child_and_leaves_no_half_index(ledger_repo, monkeypatch, tmp_path):
    real, calls = rows.RunRows.insert, []

    def failing(self, tables):
        calls.append(1)
        if len(calls) == 2:
            raise sqlite3.OperationalError("disk I/O error")
        real(self, tables)

    monkeypatch.setattr(rows.RunRows, "insert", failing)
    index = RunIndex(ledger_repo.ledger, str(tmp_path / "index.sqlite"))
    with pytest.raises(WriteError, match="disk I/O error"):
        index.connection()
    index.close()
    assert not any(b"gitprov.index.build_process" in _cmdline(pid) for pid in _children())
    monkeypatch.setattr(rows.RunRows, "insert", real)
    got, by_child, _ = built(ledger_repo, tmp_path / "index.sqlite", monkeypatch, child=True)
    assert by_child and len(got["runs"]) == 40


def test_the_child_reads_the_blobs_from_the_packs_without_git(ledger_repo, monkeypatch, tmp_path):
    import shutil

    expected, _, _ = built(ledger_repo, tmp_path / "thread.sqlite", monkeypatch, child=False)
    real = shutil.which("git")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cut = bin_dir / "git"  # any blob answers stop after 20,000 bytes, mid-object
    cut.write_text("#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = cat-file ]; then\n"
                   f"    echo cut >> \"{bin_dir}/log\"; \"{real}\" \"$@\" | head -c 20000; exit 0\n  fi\ndone\n"
                   f"exec \"{real}\" \"$@\"\n")
    cut.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    got, by_child, _ = built(ledger_repo, tmp_path / "child.sqlite", monkeypatch, child=True)
    assert by_child and got == expected
    # format 3: the parent's tree pass (short: whole) only; the log: none (a short history
    # is folded in this process, and each run blob's id is known)
    asked = (bin_dir / "log").read_text() if (bin_dir / "log").exists() else ""
    assert asked == ("" if ledger_repo.ledger.is_log() else "cut\n")


def test_loose_blobs_are_read_by_the_child_as_well(ledger_repo, monkeypatch, tmp_path):
    from tests.conftest import unpack_all

    expected, _, _ = built(ledger_repo, tmp_path / "thread.sqlite", monkeypatch, child=False)
    unpack_all(Path(ledger_repo.git.work_tree))  # no pack left: every blob is a loose object
    got, by_child, _ = built(ledger_repo, tmp_path / "child.sqlite", monkeypatch, child=True)
    assert by_child and got == expected


def test_child_failure_names_what_went_wrong(ledger_repo, tmp_path):
    runs = all_run_entries(ledger_repo.ledger, ledger_repo.ledger.tip())
    runs, blob_ids = in_pack_order(ledger_repo.git, runs)
    log = ledger_repo.ledger.is_log()
    start = {"rid": 1, "kid": 1, "nid": 1, "kids": {}, "node_ids": True}
    with pytest.raises(BuildChildError, match=r"ended after 0 of 40 runs \(exit 1\): .*no-repo"):
        list(child_batches(str(tmp_path / "no-repo"), runs, blob_ids, start, 7, log=log))
    batches = list(child_batches(ledger_repo.git.common_dir, runs, blob_ids, start, 7, log=log))
    assert [len(b["runs"]) for b in batches] == [7] * 5 + [5]


@_PROC
def test_a_child_started_ahead_and_not_used_is_ended(ledger_repo, monkeypatch, tmp_path):
    if ledger_repo.ledger.is_log():
        pytest.skip("a log's runs are always read by the child: each run blob's id is known without asking")
    expected, _, _ = built(ledger_repo, tmp_path / "thread.sqlite", monkeypatch, child=False)
    monkeypatch.setattr(reading, "in_pack_order", lambda repo, runs: (list(runs), b""))  # no ids: in-process
    got, by_child, _ = built(ledger_repo, tmp_path / "child.sqlite", monkeypatch, child=True)
    assert not by_child and got == expected
    assert not any(b"gitprov.index.build_process" in _cmdline(pid) for pid in _children())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the child reads in a forked process where it can fork")
def test_the_forked_reader_sends_every_run_or_the_child_says_where_it_stopped(ledger_repo, monkeypatch, capfd):
    from gitprov.index.reading import read_packed_run_blobs

    prov = ledger_repo
    log = prov.ledger.is_log()
    runs, blob_ids = in_pack_order(prov.git, all_run_entries(prov.ledger, prov.ledger.tip()))
    monkeypatch.setattr(build_process, "_BLOB_FRAME", 3)  # several frames, the last one short
    expected = list(read_packed_run_blobs(prov.git, runs, blob_ids, log))
    assert len(expected) == 40
    assert list(build_process._read_in_a_fork(prov.git, runs, blob_ids, log)) == expected
    early = build_process._read_in_a_fork(prov.git, runs, blob_ids, log)
    assert next(early) == expected[0]
    early.close()  # given up (a row that failed): the reader, still sending, is stopped and waited for
    step = 2 * prov.git.odb.fmt.raw_len
    if log:  # run 21: no run blob
        runs = [*runs[:20], (runs[20][0], "%02x" % (int(runs[20][1][:2], 16) ^ 0xFF) + runs[20][1][2:]), *runs[21:]]
    else:  # run 21: no record
        blob_ids = blob_ids[:20 * step] + bytes([blob_ids[20 * step] ^ 0xFF]) + blob_ids[20 * step + 1:]
    got = []
    with pytest.raises(BuildChildError, match=r"reading the packs ended after 18 of 40 runs \(status 256\)"):
        got.extend(build_process._read_in_a_fork(prov.git, runs, blob_ids, log))
    assert got == expected[:18]  # the frames before the one holding run 21
    assert "MissingObjectError" in capfd.readouterr().err


def _children() -> list[int]:
    """This process's child processes, from every thread of it (a thread that ended
    meanwhile, such as one of pytest-xdist's, has none)."""
    pids = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
                pids.extend(int(p) for p in f.read().split())
        except FileNotFoundError:
            continue
    return pids


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ab" * 20, "0f" * 32, "ab12", "AB" * 20, "a" * 39, ""]),
                          st.sampled_from(["cd" * 20, "01" * 32, "abc"])), max_size=6),
       st.integers(-8, 8), st.integers(-8, 8))
def test_the_childs_run_list_is_the_runs_it_was_sent(runs, first, last):
    """The child holds the request's runs compactly (``_RunList``) when their ids allow
    it: the same pairs, by index and by slice, as the tuples they came as."""
    runs = [(r or "00", t) for r, t in runs]
    got = build_process._run_list(f"{r} {t}\n".encode() for r, t in runs)
    assert list(got) == runs and len(got) == len(runs)
    assert list(got[first:last]) == runs[first:last]
    assert list(got[first:][:last]) == runs[first:][:last]
    if runs:
        assert got[-1] == runs[-1] and got[first % len(runs)] == runs[first % len(runs)]
    uniform = len({(len(r), len(t)) for r, t in runs}) == 1 and all(
        len(r) % 2 == 0 and len(t) % 2 == 0 and r == r.lower() for r, t in runs)
    assert isinstance(got, build_process._RunList) == (bool(runs) and uniform)
