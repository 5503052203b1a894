"""Run links written in batches (store/note_queue.py): a burst of runs shares one notes
transaction a second, every waiting link is visible to prov and survives SIGKILL, and
the commands that copy or send notes write the waiting links first."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gitprov
from gitprov.store import note_queue as nq
from tests.conftest import run_git, run_prov


def noted_runs(path: Path, rev: str = "HEAD") -> list[str]:
    """Run ids in ``rev``'s note, read by git itself."""
    text = run_git(path, "notes", "--ref=prov", "show", rev, check=False)
    return sorted(json.loads(line)["run"] for line in text.splitlines() if '"kind":"run"' in line)


def notes_commits(path: Path) -> int:
    return int(run_git(path, "rev-list", "--count", "refs/notes/prov").strip())


def queue_files(path: Path) -> list[str]:
    folder = path / ".git" / "prov" / "journal"
    return sorted(n for n in os.listdir(folder) if n.endswith(".notes")) if folder.is_dir() else []


def queued_lines(path: Path) -> int:
    """Link lines in this repository's note queue journals."""
    return sum(len(lines) for lines in nq.pending_lines(gitprov.Repository(path).notes).values())


def short_run(repo: gitprov.Repository, name: str) -> str:
    with repo.start_run(name=name, code=False, environment=False) as run:
        run.log_metric("m", 1.0)
    return run.id


def test_a_lone_run_is_linked_at_once_and_a_burst_waits_for_one_batch(prov_repo):
    path = prov_repo.path
    repo = gitprov.Repository(path)
    before = notes_commits(path) if run_git(path, "for-each-ref", "refs/notes/prov") else 0
    first = short_run(repo, "first")
    assert noted_runs(path) == [first]  # nothing written lately: the link went with the run
    burst = [short_run(repo, f"burst-{i}") for i in range(30)]
    assert noted_runs(path) == [first]  # within a second of the last write: queued
    assert len(queue_files(path)) == 1 and queued_lines(path) == 30
    # every prov reader sees the waiting links at once, from another process too
    proc = run_prov(path, "show", "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(burst + [first]) == sorted(r["run"] for r in json.loads(proc.stdout)["runs"])
    assert sorted(r.run for r in repo.show().runs) == sorted(burst + [first])
    assert sorted(r.run for r in repo.note_records("HEAD")) == sorted(burst + [first])  # a revision works too
    assert not [w for w in repo.verify().warnings if "does not link" in w]
    repo.flush_links()
    assert noted_runs(path) == sorted(burst + [first])
    assert notes_commits(path) - before == 2  # 31 runs, two notes transactions
    assert queued_lines(path) == 0 and len(queue_files(path)) == 1  # kept, empty, until exit
    prov_repo.fsck()


def test_the_next_run_after_the_linger_carries_the_batch(prov_repo, monkeypatch):
    path = prov_repo.path
    repo = gitprov.Repository(path)
    clock = [1000.0]
    monkeypatch.setattr(nq.time, "monotonic", lambda: clock[0])
    ids = [short_run(repo, "a")]
    for i in range(5):
        clock[0] += 0.1
        ids.append(short_run(repo, f"b{i}"))
    assert noted_runs(path) == ids[:1]
    clock[0] += nq.LINGER
    ids.append(short_run(repo, "c"))  # due again: carries the five waiting links and its own
    assert noted_runs(path) == sorted(ids)
    assert queued_lines(path) == 0


BURST_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import gitprov
    repo = gitprov.Repository(".")
    for i in range(int(sys.argv[2])):
        with repo.start_run(name=f"r{i}", code=False, environment=False) as run:
            run.log_metric("m", float(i))
        print(run.id, flush=True)
    if sys.argv[1] == "kill-running":
        repo.start_run(name="in flight", code=False, environment=False).log_metric("m", 1.0)
    if sys.argv[1].startswith("kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    if sys.argv[1] == "wait":
        print("ready", flush=True)
        sys.stdin.readline()
    """
)


def burst(path: Path, ending: str, runs: int) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", BURST_SCRIPT, ending, str(runs)], cwd=path,
                          capture_output=True, text=True)
    assert proc.returncode == (-signal.SIGKILL if ending.startswith("kill") else 0), proc.stderr
    return proc.stdout.split()


def test_links_waiting_at_exit_are_written_and_the_queue_removed(prov_repo):
    path = prov_repo.path
    ids = burst(path, "exit", 20)
    assert noted_runs(path) == sorted(ids)
    assert queue_files(path) == []
    prov_repo.fsck()


def test_links_of_a_killed_process_are_written_by_the_next_prov_call(prov_repo):
    path = prov_repo.path
    ids = burst(path, "kill", 20)
    assert len(noted_runs(path)) < 20  # most links were still waiting
    assert len(queue_files(path)) == 1
    proc = run_prov(path, "show")  # any prov call recovers
    assert proc.returncode == 0, proc.stderr
    assert noted_runs(path) == sorted(ids)
    assert queue_files(path) == []
    assert not [w for w in gitprov.Repository(path).verify().warnings if "does not link" in w]
    prov_repo.fsck()


def test_push_and_amend_carry_the_links_a_live_process_still_holds(prov_repo, tmp_path):
    path = prov_repo.path
    remote = tmp_path / "remote.git"
    fmt = run_git(path, "rev-parse", "--show-object-format").strip()
    run_git(tmp_path, "init", "-q", "--bare", f"--object-format={fmt}", str(remote))
    run_git(path, "remote", "add", "origin", str(remote))
    proc = subprocess.Popen([sys.executable, "-c", BURST_SCRIPT, "wait", "15"], cwd=path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ids = [proc.stdout.readline().strip() for _ in range(15)]
        assert proc.stdout.readline().strip() == "ready"
        assert len(noted_runs(path)) < 15
        pushed = run_prov(path, "push")
        assert pushed.returncode == 0, pushed.stderr
        assert noted_runs(remote, run_git(path, "rev-parse", "HEAD").strip()) == sorted(ids)
        # git commit --amend: post-rewrite copies the note, waiting links included
        gitprov.init(path)  # with hooks
        old = run_git(path, "rev-parse", "HEAD").strip()
        proc_links = [short_run(gitprov.Repository(path), f"late-{i}") for i in range(2)]
        run_git(path, "commit", "-q", "--amend", "-m", "amended")
        assert set(ids + proc_links) <= set(noted_runs(path, "HEAD"))
        assert set(ids + proc_links) <= set(noted_runs(path, old))
    finally:
        proc.communicate("\n", timeout=60)
    assert proc.returncode == 0
    gitprov.Repository(path).flush_links()
    assert [f for f in queue_files(path) if not f.startswith(f"{os.getpid()}-")] == []  # the child's is gone
    prov_repo.fsck()


def _child_runs(path: str, count: int, out) -> None:
    repo = gitprov.Repository(path)
    out.put([short_run(repo, f"child-{os.getpid()}-{i}") for i in range(count)])


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_forked_workers_keep_their_own_queues(prov_repo):
    """multiprocessing workers end with os._exit (no atexit): their waiting links are
    recovered by the next prov call; the parent's queue is its own."""
    path = prov_repo.path
    repo = gitprov.Repository(path)
    parent = [short_run(repo, "parent-0"), short_run(repo, "parent-1")]  # one linked, one queued
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    workers = [ctx.Process(target=_child_runs, args=(str(path), 5, out)) for _ in range(3)]
    for w in workers:
        w.start()
    children = [run_id for _ in workers for run_id in out.get(timeout=120)]
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    gitprov.Repository(path)  # opening recovers what the dead workers queued
    assert set(children) <= set(noted_runs(path))
    repo.flush_links()
    assert noted_runs(path) == sorted(parent + children)
    prov_repo.fsck()


def test_runs_from_several_threads_all_get_their_link(prov_repo):
    import threading

    path = prov_repo.path
    repo = gitprov.Repository(path)
    ids: list[str] = []

    def work(t: int) -> None:
        ids.extend(short_run(repo, f"t{t}-{i}") for i in range(8))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    repo.flush_links()
    assert noted_runs(path) == sorted(ids)
    prov_repo.fsck()


def test_without_a_journal_directory_every_link_goes_at_once(memory_store):
    """A repository without ``.git/prov`` (the in-memory twin) cannot journal a
    waiting line, so it never queues one."""
    repo = gitprov.Repository(memory_store)
    queue = nq.note_queue(repo.notes)
    assert queue.directory is None
    for _ in range(3):
        assert queue.take({"0" * 40: [b"line"]}, "m") is not None


def test_drop_keeps_lines_queued_while_a_batch_was_in_flight():
    queue = nq.NoteQueue.__new__(nq.NoteQueue)
    queue._pending = [("a", b"1"), ("b", b"2"), ("a", b"3")]  # a, b, then a again
    queue._journal = None
    queue._drop(2)
    assert queue._pending == [("a", b"3")]
    queue._drop(1)
    assert queue._pending == []


SWEEPER_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from gitprov.store.journal import abandoned_journals
    folder, suffix, until = sys.argv[1], sys.argv[2], time.time() + float(sys.argv[3])
    while time.time() < until:   # what recovery does: take the dead writers' journals away
        for path, fd in abandoned_journals(folder, suffix=suffix):
            os.remove(path)
            os.close(fd)
    """
)


def test_a_journal_is_never_taken_for_a_dead_one_while_it_is_created(tmp_path):
    """A journal appears under its own name already locked: another process looking
    for dead writers' journals at that moment never removes a live one."""
    from gitprov.store.journal import Journal

    folder = tmp_path / "journal"
    folder.mkdir()
    sweeper = subprocess.Popen([sys.executable, "-c", SWEEPER_SCRIPT, str(folder), ".notes", "4"])
    try:
        lost = 0
        for i in range(1500):
            journal = Journal.create(str(folder), f"live-{i}", {"queue": "notes"}, suffix=".notes", reuse=False)
            lost += not os.path.exists(journal.path)
            journal.close(remove=True)
    finally:
        sweeper.wait(timeout=60)
    assert lost == 0


def test_waiting_links_of_a_dead_process_are_written_even_when_the_ledger_is_locked(prov_repo, capsys):
    import time as clock

    path = prov_repo.path
    ids = burst(path, "kill-running", 10)
    lock = path / ".git" / "refs" / "prov" / "ledger.lock"
    lock.write_text("stale\n")  # left by a process killed inside its ref update
    started = clock.monotonic()
    repo = gitprov.Repository(path)  # recovery: the run in flight cannot be folded in, the links can
    assert clock.monotonic() - started < 2  # not the 5 s a writer waits for a lock
    assert repo.git.refs.lock_wait == 5.0  # (restored for the caller's own writes)
    assert "refs/prov/ledger is locked" in capsys.readouterr().err
    assert noted_runs(path) == sorted(ids)
    assert queue_files(path) == []
    lock.unlink()  # as the warning says
    crashed = [r for r in gitprov.Repository(path).runs() if r.name == "in flight"]
    assert [r.status for r in crashed] == ["crashed"]
