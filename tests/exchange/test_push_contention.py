"""Pushes under contention: many clones push at the same moment and every push lands.

Real git, a bare remote over ``file://`` and ``git daemon``, the installed ``prov``
script and plain ``git push`` with the pre-push hook. Also: both prov refs move
together (``--atomic``) or, on a remote without it, the ledger first; retries back off
with full jitter; a refusal that retrying cannot fix fails at once.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from pathlib import Path

import pytest

from gitprov.api import Repository
from gitprov.errors import ConfigError, RemoteError
from gitprov.exchange import push as push_mod
from gitprov.exchange.push import BACKOFF_BASE, BACKOFF_CAP, backoff_delay
from gitprov.exchange.transport import PushReply, PushStatus
from tests.conftest import GitRepo, run_git, run_prov
from tests.exchange.clones import (
    LEDGER,
    NOTES,
    assert_converged,
    assert_valid,
    clone,
    ledger_run_ids,
    ledger_tree,
    make_run,
    notes_content,
    prov_ok,
    seed_bare,
)
from tests.exchange.test_transports import _assert_one_line_exit_11, git_daemon  # noqa: F401 (fixture)

pytestmark = pytest.mark.gitbin

CLONES = 16


def _at_once(argvs: dict[Path, list[str]]) -> tuple[dict[str, subprocess.CompletedProcess], float]:
    """Run each argv in its clone at the same moment (one thread each); results and seconds."""
    barrier = threading.Barrier(len(argvs))
    results: dict[str, subprocess.CompletedProcess] = {}

    def one(path: Path, argv: list[str]) -> None:
        barrier.wait(timeout=120)
        results[path.name] = subprocess.run(argv, cwd=path, capture_output=True, text=True)

    threads = [threading.Thread(target=one, args=item) for item in argvs.items()]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads)
    return results, time.monotonic() - started


def _prov(*args: str) -> list[str]:
    import sys

    exe = Path(sys.executable).with_name("prov")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "gitprov.cli.entry", *args]


def test_many_clones_pushing_at_once_all_land_and_converge(make_repo, tmp_path: Path) -> None:
    bare = seed_bare(make_repo)
    url = f"file://{bare.path}"
    clones = [clone(url, tmp_path / f"c{i:02d}") for i in range(CLONES)]
    created = {make_run(c.path, f"{c.path.name}-{i}", loss=float(i)) for c in clones for i in range(2)}

    results, seconds = _at_once({c.path: _prov("push", "--json") for c in clones})
    failed = {name: p.stderr for name, p in results.items() if p.returncode != 0}
    assert not failed, failed
    attempts = sorted(json.loads(p.stdout)["push_attempts"] for p in results.values())
    assert attempts[-1] > 1, attempts  # they did race: someone lost and merged
    assert ledger_run_ids(bare.path) == created, f"{len(ledger_run_ids(bare.path))}/{len(created)} runs arrived"
    bare.fsck()
    for c in clones:  # nothing left pending
        assert not (c.path / ".git" / "prov" / "outbox.json").exists()

    for c in clones:  # one pull each and every clone holds the remote's state
        prov_ok(c.path, "pull")
    assert_converged(clones, created)
    assert ledger_tree(bare.path) == ledger_tree(clones[0])
    assert notes_content(bare.path) == notes_content(clones[0])
    assert_valid(clones[0])
    print(f"{CLONES} clones x 2 runs pushed at once in {seconds:.1f} s; attempts {attempts}")


def test_git_push_with_the_hook_from_many_clones_at_once_over_git_daemon(make_repo, git_daemon, tmp_path: Path) -> None:  # noqa: F811
    base = tmp_path / "served"
    base.mkdir()
    seed_bare(make_repo).path.rename(base / "proj.git")
    bare = GitRepo(base / "proj.git")
    url = git_daemon(base).url("proj.git")
    clones = []
    for i in range(10):
        path = tmp_path / f"h{i:02d}"
        run_git(tmp_path, "clone", "-q", url, str(path))
        prov_ok(path, "init", "--no-pull")  # installs the hooks
        clones.append(GitRepo(path))
    created = set()
    for c in clones:
        created.add(make_run(c.path, f"{c.path.name}-run"))
        c.commit(f"work of {c.path.name}")  # post-commit captures it

    results, _ = _at_once({c.path: ["git", "push", "-q", "origin", f"HEAD:refs/heads/{c.path.name}"] for c in clones})
    for name, proc in sorted(results.items()):
        assert proc.returncode == 0, (name, proc.stderr)
        assert "provenance not" not in proc.stderr, (name, proc.stderr)
    assert ledger_run_ids(bare.path) == created
    captured = notes_content(bare.path)
    for c in clones:
        assert c.git("rev-parse", "HEAD").strip() in captured
        assert not (c.path / ".git" / "prov" / "outbox.json").exists()
    for c in clones:
        prov_ok(c.path, "pull")
    assert_converged(clones, created)
    bare.fsck()


# -- both refs together ------------------------------------------------------------
@pytest.mark.parametrize("atomic", [True, False])
def test_both_refs_move_together_or_the_ledger_first(make_repo, tmp_path: Path, atomic: bool) -> None:
    bare = seed_bare(make_repo)
    if not atomic:
        bare.git("config", "receive.advertiseAtomic", "false")
    a, b = clone(f"file://{bare.path}", tmp_path / "a"), clone(f"file://{bare.path}", tmp_path / "b")
    ra = make_run(a.path, "a")
    a.commit("a")
    prov_ok(a.path, "capture")
    trace = tmp_path / "trace.log"
    proc = run_prov(a.path, "push", "--json", env={"GIT_TRACE": str(trace)})
    assert proc.returncode == 0, proc.stderr
    pushes = [line for line in trace.read_text().splitlines() if "git push" in line and "built-in" in line]
    if atomic:
        assert len(pushes) == 1 and "--atomic" in pushes[0], pushes
        assert LEDGER in pushes[0] and NOTES in pushes[0]
    else:  # tried atomic once, then one ref at a time, the ledger first
        assert len(pushes) == 3, pushes
        assert "--atomic" in pushes[0]
        assert LEDGER in pushes[1] and NOTES not in pushes[1]
        assert NOTES in pushes[2] and LEDGER not in pushes[2]
    assert ledger_run_ids(bare.path) == {ra}

    # b races a: b's push is rejected on both refs, b merges and lands everything
    rb = make_run(b.path, "b")
    b.commit("b")
    prov_ok(b.path, "capture")
    out = json.loads(prov_ok(b.path, "push", "--json").stdout)
    assert out["push_attempts"] == 2
    assert ledger_run_ids(bare.path) == {ra, rb}
    prov_ok(a.path, "pull")
    assert_converged([a, b], {ra, rb})


@pytest.mark.parametrize("atomic", [True, False])
def test_a_push_rejected_on_one_ref_moves_the_other_only_without_atomic(make_repo, tmp_path: Path,
                                                                        atomic: bool) -> None:
    """The remote's notes moved on, its ledger did not: an atomic push leaves both alone;
    a remote without ``--atomic`` takes the ledger first (documented), then the notes."""
    bare = seed_bare(make_repo)
    if not atomic:
        bare.git("config", "receive.advertiseAtomic", "false")
    a, b = clone(f"file://{bare.path}", tmp_path / "a"), clone(f"file://{bare.path}", tmp_path / "b")
    make_run(a.path, "a")
    prov_ok(a.path, "push")
    prov_ok(b.path, "pull")
    b.commit("b")
    prov_ok(b.path, "capture")
    prov_ok(b.path, "push")  # only the notes move there
    a.commit("a")
    prov_ok(a.path, "capture")
    make_run(a.path, "a2")
    remote_ledger = bare.git("rev-parse", LEDGER).strip()
    remote_notes = bare.git("rev-parse", NOTES).strip()
    git = Repository(a.path).git
    local = {ref: git.refs.read(ref) for ref in (LEDGER, NOTES)}
    statuses, _, used_atomic = push_mod._send(push_mod.Transport(git, "origin"), local, True)
    assert used_atomic is atomic
    by_ref = {s.ref: s for s in statuses}
    assert by_ref[NOTES].rejected and by_ref[NOTES].needs_fetch
    assert bare.git("rev-parse", NOTES).strip() == remote_notes
    if atomic:
        assert by_ref[LEDGER].atomic_casualty, by_ref
        assert bare.git("rev-parse", LEDGER).strip() == remote_ledger  # neither moved
    else:
        assert LEDGER not in by_ref  # not rejected (git --quiet lists rejected refs only)
        assert bare.git("rev-parse", LEDGER).strip() == local[LEDGER]  # the ledger went first, alone
    out = json.loads(prov_ok(a.path, "push", "--json").stdout)  # and a full push lands both
    assert out["push_attempts"] == 2
    assert bare.git("rev-parse", NOTES).strip() == git.refs.read(NOTES)
    assert bare.git("rev-parse", LEDGER).strip() == git.refs.read(LEDGER)


# -- retries -------------------------------------------------------------------------
def test_backoff_is_exponential_with_full_jitter() -> None:
    rng = random.Random(15)
    for attempt in (1, 2, 3, 5, 8, 40):
        bound = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt)
        delays = [backoff_delay(attempt, rng) for _ in range(400)]
        assert all(0 <= d < bound for d in delays)
        assert len(set(delays)) == len(delays)  # jitter: no two pushers wait alike
        assert min(delays) < 0.1 * bound and max(delays) > 0.9 * bound  # the full range, from 0
    # the same seed, the same waits: injectable for tests and reproducible
    assert [backoff_delay(3, random.Random(1)) for _ in range(3)] == [backoff_delay(3, random.Random(1))] * 3


def test_the_backoff_unit_is_how_long_an_attempt_took() -> None:
    """A crowd on a busy machine (attempts of seconds) spreads out in fewer rounds; a quick
    attempt never waits less than the base unit allows."""
    rng = random.Random(16)
    slow = [backoff_delay(2, rng, unit=1.5) for _ in range(400)]
    assert all(0 <= d < 6.0 for d in slow) and max(slow) > 5.0  # 1.5 s × 2²
    quick = [backoff_delay(2, rng, unit=0.001) for _ in range(400)]
    assert all(d < BACKOFF_BASE * 4 for d in quick) and max(quick) > 0.9 * BACKOFF_BASE * 4
    assert max(backoff_delay(9, rng, unit=2.0) for _ in range(100)) <= BACKOFF_CAP


class _Racing:
    """A transport whose pushes are rejected ``lose`` times (the remote moving or not)."""

    def __init__(self, lose: int, summary: str) -> None:
        self.lose = lose
        self.summary = summary
        self.pushes = 0

    def push(self, refspecs, *, atomic=False) -> PushReply:
        self.pushes += 1
        refs = [spec.split(":", 1)[1] for spec in refspecs]
        if self.pushes <= self.lose:
            first, *rest = refs
            return PushReply([PushStatus(first, "!", self.summary)]
                             + [PushStatus(r, "!", "[rejected] (atomic push failed)") for r in rest], [])
        return PushReply([PushStatus(r, " ", "ok") for r in refs], [])


def _fake_remote(monkeypatch, racing: _Racing, moves: bool) -> list[int]:
    fetched = []

    def fake_fetch(repo, remote=None, result=None):
        fetched.append(1)
        result.fetched.append(push_mod.RefOutcome(LEDGER, None, None, "fetched" if moves else "up to date"))
        return result

    monkeypatch.setattr(push_mod, "Transport", lambda repo, remote: racing_transport(racing, remote))
    monkeypatch.setattr(push_mod, "fetch", fake_fetch)
    monkeypatch.setattr(push_mod, "_fetch_moved", lambda repo, remote, transport, refs, result:
                        fake_fetch(repo, remote, result))
    monkeypatch.setattr(push_mod, "merge_fetched", lambda repo, remote, result: None)
    return fetched


def racing_transport(racing: _Racing, remote: str):
    racing.where = remote
    return racing


def test_retries_go_on_while_the_remote_keeps_moving(make_repo, monkeypatch) -> None:
    repo = make_repo()
    assert run_prov(repo.path, "init", "--no-hooks", "--no-pull").returncode == 0
    make_run(repo.path, "r")
    racing = _Racing(lose=30, summary="[rejected] (fetch first)")  # far past the old limit of 10
    _fake_remote(monkeypatch, racing, moves=True)
    waits: list[float] = []
    result = push_mod.push(Repository(repo.path).git, "origin", timeout=3600, sleep=waits.append,
                             rng=random.Random(7))
    assert result.push_attempts == 31 and len(waits) == 30
    assert len(set(waits)) == 30 and max(waits) <= BACKOFF_CAP
    assert waits[:4] != sorted(waits[:4]) or waits[0] < BACKOFF_BASE * 2  # jittered, not a fixed ladder


def test_a_push_that_keeps_losing_stops_at_its_deadline_and_names_it(make_repo, monkeypatch) -> None:
    repo = make_repo()
    assert run_prov(repo.path, "init", "--no-hooks", "--no-pull").returncode == 0
    make_run(repo.path, "r")
    _fake_remote(monkeypatch, _Racing(lose=10**6, summary="[rejected] (fetch first)"), moves=True)
    clock = [0.0]
    monkeypatch.setattr(push_mod.time, "monotonic", lambda: clock[0])

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    git = Repository(repo.path).git
    with pytest.raises(RemoteError, match=r"within 60 s: others landed \d+ time\(s\) first.*prov.push.timeout"):
        push_mod.push(git, "origin", timeout=60, sleep=sleep, rng=random.Random(3))
    assert 50 < clock[0] <= 60
    from gitprov.exchange.outbox import pending

    [entry] = pending(git)
    assert entry.remote == "origin" and "within 60 s" in entry.last_error and entry.attempts == 1


def test_a_remote_that_rejects_without_moving_fails_soon(make_repo, monkeypatch) -> None:
    repo = make_repo()
    assert run_prov(repo.path, "init", "--no-hooks", "--no-pull").returncode == 0
    make_run(repo.path, "r")
    racing = _Racing(lose=10**6, summary="[remote rejected] (failed to lock)")
    _fake_remote(monkeypatch, racing, moves=False)
    waits: list[float] = []
    with pytest.raises(RemoteError, match="rejected 8 times in a row while it did not move.*stale lock"):
        push_mod.push(Repository(repo.path).git, "origin", timeout=3600, sleep=waits.append, rng=random.Random(1))
    assert racing.pushes == push_mod.MAX_STALLED and len(waits) == push_mod.MAX_STALLED


def test_push_timeout_setting(make_repo) -> None:
    repo = make_repo()
    assert run_prov(repo.path, "init", "--no-hooks", "--no-pull").returncode == 0
    repo.git("config", "prov.push.timeout", "soon")
    proc = run_prov(repo.path, "push", "file:///nonexistent.git")
    assert proc.returncode == ConfigError.exit_code and "prov.push.timeout" in proc.stderr, proc.stderr


def test_a_pre_receive_refusal_fails_at_once(make_repo, tmp_path: Path) -> None:
    bare = seed_bare(make_repo)
    a = clone(f"file://{bare.path}", tmp_path / "a")
    hook = bare.path / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'provenance is not accepted here' >&2\nexit 1\n")
    hook.chmod(0o755)
    make_run(a.path, "r")
    trace = tmp_path / "trace.log"
    started = time.monotonic()
    proc = run_prov(a.path, "push", env={"GIT_TRACE": str(trace)})
    took = time.monotonic() - started
    _assert_one_line_exit_11(proc, "origin", "pre-receive hook declined", "provenance is not accepted here")
    pushes = [line for line in trace.read_text().splitlines() if "built-in: git push" in line]
    assert len(pushes) == 1, pushes  # no retry: retrying cannot change the server's mind
    assert took < 30
    entry = json.loads((a.path / ".git" / "prov" / "outbox.json").read_text())["pending"]["origin"]
    assert "pre-receive hook declined" in entry["last_error"]
