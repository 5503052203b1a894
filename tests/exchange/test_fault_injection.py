"""SIGKILL at random points of ``prov push`` and ``prov pull`` between clones of one
``file://`` bare remote: every clone stays valid and nothing is ever lost.

Each trial records new runs in some clones (Python API), starts ``prov push`` or
``prov pull`` in one clone as a real subprocess in its own process group, and kills the
whole group (prov and its git children: ``git fetch``, ``git push`` and, over
``file://``, the remote's ``git receive-pack``) with SIGKILL after a seeded random
delay. The delay is drawn over the operation's measured duration on this machine, so
kills land at every phase (start-up, ls-remote, fetch, validation, merge, push, tracking
refs) however slow the machine is. After every kill, every clone and the remote pass
``git fsck --strict``, every clone passes ``prov verify`` and still holds every run made
in it. After a final clean push/pull round, every clone holds every run ever created
and all ledger trees (and notes) are byte-identical.

A SIGKILL can leave a ``*.lock`` file behind (git's own lock protocol: no process can
release a lock it held when killed); prov reports such a lock by name and tells the user
to remove it. The test removes stale locks after the group is dead, as a user would, and
counts them.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import GitRepo
from tests.exchange.clones import (
    assert_converged,
    clone,
    ledger_run_ids,
    ledger_tree,
    listed_run_ids,
    make_run,
    prov_ok,
    seed_bare,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.gitbin,
    pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads process groups from /proc (Linux)"),
]

#: killed operations per test; two seeds give 56 trials in all
TRIALS = 28


def _prov_argv() -> list[str]:
    exe = Path(sys.executable).with_name("prov")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gitprov.cli.entry"]


def _group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, command name) of live processes in process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            members.append((int(entry), comm))
    return members


class Outcome:
    def __init__(self) -> None:
        self.killed = 0  # prov was still running when the group was killed
        self.killed_with_git = 0  # ... with a git child (fetch, push, receive-pack) alive
        self.completed = 0  # prov finished before the delay ran out
        self.stale_locks: list[str] = []


def _has_git_child(pgid: int) -> bool:
    return any(comm.startswith("git") for pid, comm in _group_members(pgid) if pid != pgid)


def _run_and_kill(path: Path, op: str, delay: float, after_git: bool, outcome: Outcome) -> float | None:
    """Start ``prov OP`` in its own process group and SIGKILL the group ``delay`` seconds
    after it started (``after_git``: after its first git child appeared, so the kill
    lands past interpreter start-up). The duration when prov finished first, else None."""
    start = time.monotonic()
    proc = subprocess.Popen([*_prov_argv(), op], cwd=path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    if after_git:
        deadline = time.monotonic() + 300
        while proc.poll() is None and not _has_git_child(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        outcome.killed += 1
        outcome.killed_with_git += _has_git_child(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=120)
        deadline = time.monotonic() + 120
        while _group_members(proc.pid) and time.monotonic() < deadline:  # receive-pack too
            time.sleep(0.01)
        assert not _group_members(proc.pid), "the killed process group did not die"
        return None
    # finished before the kill (stale locks of earlier kills are gone): it must have succeeded
    stderr = proc.communicate(timeout=120)[1].decode(errors="replace")
    outcome.completed += 1
    assert proc.returncode == 0 and "Traceback" not in stderr, (op, proc.returncode, stderr)
    return None if after_git else time.monotonic() - start


def _remove_stale_locks(git_dirs: list[Path], outcome: Outcome) -> None:
    """Nothing runs any more: a ``*.lock`` left now is stale; remove it as a user would."""
    for git_dir in git_dirs:
        for lock in git_dir.rglob("*.lock"):
            outcome.stale_locks.append(str(lock.relative_to(git_dir)))
            lock.unlink()


def _check_all(clones: list[GitRepo], bare: GitRepo, made_in: dict[str, set[str]]) -> None:
    """fsck --strict everywhere, prov verify in every clone (in parallel), no local run lost."""
    errors: list[str] = []

    def check(repo: GitRepo) -> None:
        fsck = subprocess.run(["git", "fsck", "--strict", "--no-progress"], cwd=repo.path,
                              capture_output=True, text=True)
        if fsck.returncode != 0:
            errors.append(f"git fsck --strict in {repo.path.name}: {fsck.stdout}{fsck.stderr}")
        if repo is bare:
            return
        verify = subprocess.run([*_prov_argv(), "verify"], cwd=repo.path, capture_output=True, text=True)
        if verify.returncode != 0:
            errors.append(f"prov verify in {repo.path.name}: {verify.stdout}{verify.stderr}")

    threads = [threading.Thread(target=check, args=(r,)) for r in [*clones, bare]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, "\n".join(errors)
    for repo in clones:
        missing = made_in[repo.path.name] - ledger_run_ids(repo)
        assert not missing, f"{repo.path.name} lost runs {sorted(missing)}"


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("seed", [20261122, 7])
def test_sigkill_during_push_and_pull_loses_nothing(make_repo, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    bare = seed_bare(make_repo)
    url = f"file://{bare.path}"
    clones = [clone(url, tmp_path / name) for name in ("a", "b", "c")]
    made_in: dict[str, set[str]] = {c.path.name: set() for c in clones}
    created: set[str] = set()
    serial = iter(range(10**6))

    def new_run(repo: GitRepo) -> None:
        run_id = make_run(repo.path, f"{repo.path.name}-{next(serial)}", loss=rng.random())
        made_in[repo.path.name].add(run_id)
        created.add(run_id)

    # calibrate: how long a clean push and a clean pull take on this machine right now
    durations: dict[str, list[float]] = {"push": [], "pull": []}
    for repo in clones:
        new_run(repo)
        for op in ("push", "pull"):
            start = time.monotonic()
            prov_ok(repo.path, op)
            durations[op].append(time.monotonic() - start)

    outcome = Outcome()
    git_dirs = [c.path / ".git" for c in clones] + [bare.path]
    for trial in range(TRIALS):
        for repo in rng.sample(clones, rng.randint(1, 2)):
            for _ in range(rng.randint(1, 2)):
                new_run(repo)
        if trial % 4 == 3:  # now and then a clean push moves the remote on, so pulls have work
            pusher = rng.choice(clones)
            start = time.monotonic()
            prov_ok(pusher.path, "push")
            durations["push"].append(time.monotonic() - start)
        target = rng.choice(clones)
        op = rng.choice(("push", "pull"))
        typical = statistics.median(durations[op][-6:])
        # half the kills anywhere in the operation, half after it started talking to git
        after_git = rng.random() < 0.5
        delay = rng.uniform(0.0, (0.8 if after_git else 1.2) * typical)
        took = _run_and_kill(target.path, op, delay, after_git, outcome)
        if took is not None:
            durations[op].append(took)
        _check_all(clones, bare, made_in)  # valid right after the kill, stale locks and all
        _remove_stale_locks(git_dirs, outcome)

    # a final clean round: everything ever created reaches every clone
    for repo in clones:
        prov_ok(repo.path, "push")
    for repo in clones:
        prov_ok(repo.path, "pull")
    assert_converged(clones, created)
    assert ledger_run_ids(bare.path) == created
    assert ledger_tree(bare.path) == ledger_tree(clones[0])
    _check_all(clones, bare, made_in)
    for repo in clones:
        assert listed_run_ids(repo.path) == created
    print(f"\nseed {seed}: {TRIALS} trials, {outcome.killed} killed mid-operation "
          f"({outcome.killed_with_git} with a git child alive), {outcome.completed} finished first; "
          f"{len(created)} runs; stale locks removed: {outcome.stale_locks or 'none'}")
    # the kills must really interrupt operations, or the test proves nothing
    assert outcome.killed >= TRIALS // 3, vars(outcome)
