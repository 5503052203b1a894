"""prov fetch / pull / push over real transports: a ``git daemon`` on 127.0.0.1 started
and stopped by the tests (``git://``), and bare repositories over ``file://``.

Three clones exchange runs in every order and converge to byte-identical ledger trees;
three clones push at the same moment; remotes that refuse writes or cannot be reached
fail with exit code 11 and one line; a plain ``git push`` carries provenance through the
pre-push hook. No mocks: the real git binary and the installed ``prov`` script.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import GitRepo, run_git, run_prov
from tests.exchange.clones import (
    LEDGER,
    assert_converged,
    assert_valid,
    clone,
    ledger_run_ids,
    ledger_tree,
    listed_run_ids,
    make_run,
    notes_content,
    prov_ok,
    prov_refs,
    seed_bare,
)

pytestmark = pytest.mark.gitbin


# -- a real git daemon ------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class GitDaemon:
    """``git daemon`` serving ``base`` on 127.0.0.1 (receive-pack optional)."""

    def __init__(self, base: Path, log: Path, receive_pack: bool = True) -> None:
        self.base = base
        self.log_path = log
        self.receive_pack = receive_pack
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> GitDaemon:
        for _ in range(5):  # another process may take the free port first: pick again
            self.port = _free_port()
            argv = ["git", "daemon", "--reuseaddr", "--export-all", "--informative-errors",
                    f"--base-path={self.base}", "--listen=127.0.0.1", f"--port={self.port}"]
            if self.receive_pack:
                argv.append("--enable=receive-pack")
            self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
            self.proc = subprocess.Popen([*argv, str(self.base)], stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _accepts(self.port):
                    return self
                time.sleep(0.05)
            self.stop()
        raise AssertionError(f"git daemon did not start: {self.log_path.read_text(errors='replace')}")

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[Callable[..., GitDaemon]]:
    """Start ``git daemon``s over a directory; every one is stopped at teardown."""
    started: list[GitDaemon] = []

    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip()
    if not os.path.exists(os.path.join(exec_path, "git-daemon")):
        pytest.skip("this git has no 'git daemon' (install git's daemon package)")

    def start(base: Path, receive_pack: bool = True) -> GitDaemon:
        daemon = GitDaemon(base, tmp_path / f"daemon{len(started)}.log", receive_pack).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def served(make_repo, git_daemon, tmp_path: Path) -> tuple[GitDaemon, GitRepo]:
    """A bare repository with one commit, served read-write over git://."""
    base = tmp_path / "served"
    base.mkdir()
    seed = seed_bare(make_repo)
    bare_path = base / "proj.git"
    seed.path.rename(bare_path)
    return git_daemon(base), GitRepo(bare_path)


# -- three clones, every order, over git:// ------------------------------------------
def test_three_clones_over_git_daemon_converge_in_every_order(served, tmp_path: Path) -> None:
    daemon, bare = served
    url = daemon.url("proj.git")
    clones = [clone(url, tmp_path / name) for name in ("a", "b", "c")]
    created: set[str] = set()

    # a run made on a commit only one clone has (never pushed as a branch) travels too
    clones[2].commit("local-only")
    created.add(make_run(clones[2].path, "on-unpushed-commit", loss=0.5))

    for round_no, order in enumerate(itertools.permutations(clones)):
        for repo in order:  # each clone records a run, then pushes (merging whatever came first)
            created.add(make_run(repo.path, f"r{round_no}-{repo.path.name}", loss=float(round_no)))
            prov_ok(repo.path, "push")
        # the last pusher holds everything; the remote too
        assert ledger_tree(order[-1]) == run_git(bare.path, "rev-parse", f"{LEDGER}^{{tree}}").strip()
        for repo in order:
            prov_ok(repo.path, "pull")
        assert_converged(clones, created)

    # pulls before pushes, a fetch that moves nothing live, and re-pulls that are no-ops
    for repo, other in zip(clones, clones[1:] + clones[:1], strict=True):
        created.add(make_run(repo.path, f"late-{repo.path.name}"))
        before = prov_refs(other)
        prov_ok(other.path, "fetch")
        after = prov_refs(other)
        assert {k: v for k, v in after.items() if not k.startswith("refs/prov-remotes/")} == \
            {k: v for k, v in before.items() if not k.startswith("refs/prov-remotes/")}
        prov_ok(repo.path, "pull")
        prov_ok(repo.path, "push")
    for repo in clones:
        prov_ok(repo.path, "pull")
    assert_converged(clones, created)
    assert ledger_tree(bare.path) == ledger_tree(clones[0])
    for repo in clones:
        again = json.loads(prov_ok(repo.path, "pull", "--json").stdout)
        assert again["runs_added"] == 0 and again["notes_changed"] == 0
        assert_valid(repo)
        assert listed_run_ids(repo.path) == created
    bare.fsck()

    # a fresh clone plus prov init plus prov pull sees everything
    fresh = tmp_path / "fresh"
    run_git(tmp_path, "clone", "-q", url, str(fresh))
    prov_ok(fresh, "init", "--no-hooks", "--no-pull")
    assert ledger_run_ids(fresh) == set()  # git clone does not bring the prov refs
    pulled = json.loads(prov_ok(fresh, "pull", "--json").stdout)
    assert set(pulled["run_ids_added"]) == created
    assert listed_run_ids(fresh) == created
    assert ledger_tree(fresh) == ledger_tree(clones[0])
    assert notes_content(fresh) == notes_content(clones[0])
    assert_valid(GitRepo(fresh))


def test_sha256_repository_over_git_daemon(make_repo, git_daemon, tmp_path: Path) -> None:
    base = tmp_path / "served256"
    base.mkdir()
    seed = seed_bare(make_repo, "sha256")
    seed.path.rename(base / "p.git")
    daemon = git_daemon(base)
    a, b = (clone(daemon.url("p.git"), tmp_path / n) for n in ("a", "b"))
    assert a.git("rev-parse", "--show-object-format").strip() == "sha256"
    ra, rb = make_run(a.path, "a"), make_run(b.path, "b")
    prov_ok(a.path, "push")
    prov_ok(b.path, "push")  # the remote moved: pulls, merges, pushes again
    prov_ok(a.path, "pull")
    assert_converged([a, b], {ra, rb})
    assert len(ledger_tree(a)) == 64
    for repo in (a, b):
        assert_valid(repo)


# -- three clones pushing at the same moment, over file:// -----------------------------
def at_once(clones: list[GitRepo], *args: str) -> dict[str, subprocess.CompletedProcess]:
    """Run ``prov ARGS`` in every clone at the same moment (one thread each)."""
    barrier = threading.Barrier(len(clones))
    results: dict[str, subprocess.CompletedProcess] = {}

    def one(repo: GitRepo) -> None:
        barrier.wait(timeout=120)
        results[repo.path.name] = run_prov(repo.path, *args)

    threads = [threading.Thread(target=one, args=(repo,)) for repo in clones]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads)
    return results


def test_three_clones_pushing_concurrently_over_file(make_repo, tmp_path: Path) -> None:
    bare = seed_bare(make_repo)
    url = f"file://{bare.path}"
    clones = [clone(url, tmp_path / name) for name in ("a", "b", "c")]
    created: set[str] = set()
    for round_no in range(3):
        for repo in clones:
            for i in range(2):
                created.add(make_run(repo.path, f"c{round_no}-{repo.path.name}-{i}", step=float(i)))
        results = at_once(clones, "push", "--json")
        for name, proc in sorted(results.items()):
            assert proc.returncode == 0, f"{name}: {proc.stderr}"
            assert "Traceback" not in proc.stderr
            assert json.loads(proc.stdout)["push_attempts"] >= 1
        assert len(results) == len(clones)
        # every run of every clone landed on the remote
        assert ledger_run_ids(bare.path) == created
        bare.fsck()
    for repo in clones:
        prov_ok(repo.path, "pull")
    assert_converged(clones, created)
    assert ledger_tree(bare.path) == ledger_tree(clones[0])
    for repo in clones:
        assert_valid(repo)
        assert listed_run_ids(repo.path) == created


# -- remotes that refuse writes, remotes that are not there ---------------------------
def _assert_one_line_exit_11(proc: subprocess.CompletedProcess, *names: str) -> None:
    assert proc.returncode == 11, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert not lines[0].rstrip().endswith(":"), lines[0]  # the reason is on the line, not cut off


def _without_keep(refs: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in refs.items() if k != "refs/prov/keep"}  # local archive ref, never pushed


def test_git_daemon_without_receive_pack_is_a_read_only_remote(make_repo, git_daemon, tmp_path: Path) -> None:
    base = tmp_path / "ro"
    base.mkdir()
    seed_bare(make_repo).path.rename(base / "proj.git")
    writer = git_daemon(base)
    reader = git_daemon(base, receive_pack=False)
    a = clone(writer.url("proj.git"), tmp_path / "a")
    ra = make_run(a.path, "shared")
    prov_ok(a.path, "push")

    b = clone(reader.url("proj.git"), tmp_path / "b")
    prov_ok(b.path, "pull")  # reading works
    rb = make_run(b.path, "unpublished")
    before = prov_refs(b)
    remote_before = run_git(base / "proj.git", "for-each-ref", "refs/prov", "refs/notes")
    proc = run_prov(b.path, "push")
    _assert_one_line_exit_11(proc, "origin")
    assert _without_keep(prov_refs(b)) == _without_keep(before)
    assert run_git(base / "proj.git", "for-each-ref", "refs/prov", "refs/notes") == remote_before
    assert ledger_run_ids(b) == {ra, rb}  # nothing local lost

    by_url = run_prov(b.path, "push", reader.url("proj.git"))
    _assert_one_line_exit_11(by_url, reader.url("proj.git"))
    assert _without_keep(prov_refs(b)) == _without_keep(before)
    assert_valid(b)


def test_pre_receive_refusal_over_git_daemon(served, tmp_path: Path) -> None:
    daemon, bare = served
    a = clone(daemon.url("proj.git"), tmp_path / "a")
    make_run(a.path, "first")
    prov_ok(a.path, "push")
    hook = bare.path / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'read-only mirror: pushes are disabled' >&2\nexit 1\n")
    hook.chmod(0o755)
    make_run(a.path, "second")
    before = prov_refs(a)
    remote_before = bare.git("for-each-ref", "refs/prov", "refs/notes")
    proc = run_prov(a.path, "push")
    _assert_one_line_exit_11(proc, "origin")
    assert "refused" in proc.stderr and "pre-receive hook declined" in proc.stderr, proc.stderr
    assert "the remote said: read-only mirror: pushes are disabled" in proc.stderr, proc.stderr
    assert "]" not in proc.stderr, proc.stderr  # git's "[remote rejected]" bracket, not half of it
    assert _without_keep(prov_refs(a)) == _without_keep(before)
    assert bare.git("for-each-ref", "refs/prov", "refs/notes") == remote_before
    assert_valid(a)
    bare.fsck()


@pytest.mark.parametrize("command", ["push", "pull", "fetch"])
def test_unreachable_remotes_are_exit_11(make_repo, tmp_path: Path, command: str) -> None:
    repo = make_repo()
    assert run_prov(repo.path, "init", "--no-hooks", "--no-pull").returncode == 0
    make_run(repo.path, "local")
    before = prov_refs(repo)
    closed = _free_port()  # nothing listens there
    for url, reason in ((f"git://127.0.0.1:{closed}/x.git", "refused"),
                        (f"file://{tmp_path}/nonexistent.git", "does not appear to be a git repository")):
        proc = run_prov(repo.path, command, url)
        _assert_one_line_exit_11(proc, url, reason)
        assert _without_keep(prov_refs(repo)) == _without_keep(before)
    repo.git("remote", "add", "origin", f"git://127.0.0.1:{closed}/x.git")
    _assert_one_line_exit_11(run_prov(repo.path, command), "origin")
    assert _without_keep(prov_refs(repo)) == _without_keep(before)


# -- plain git push carries provenance through the pre-push hook ----------------------
@pytest.mark.parametrize("transport", ["git", "file"])
def test_git_push_carries_and_merges_provenance(make_repo, git_daemon, tmp_path: Path, transport: str) -> None:
    base = tmp_path / "hooked"
    base.mkdir()
    seed_bare(make_repo).path.rename(base / "proj.git")
    bare = GitRepo(base / "proj.git")
    url = git_daemon(base).url("proj.git") if transport == "git" else f"file://{bare.path}"
    a, b = GitRepo(tmp_path / "a"), GitRepo(tmp_path / "b")
    for repo in (a, b):
        run_git(tmp_path, "clone", "-q", url, str(repo.path))
        prov_ok(repo.path, "init", "--no-pull")  # installs the hooks
        assert (repo.path / ".git" / "hooks" / "pre-push").exists()

    rb = make_run(b.path, "from-b")
    b.commit("b-work")
    proc = subprocess.run(["git", "push", "-q", "origin", "HEAD:refs/heads/feature-b"], cwd=b.path,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "provenance not" not in proc.stderr, proc.stderr
    assert ledger_run_ids(bare.path) == {rb}  # the hook carried b's provenance

    ra = make_run(a.path, "from-a")
    a_commit = a.commit("a-work")  # post-commit hook captures it in a note
    proc = subprocess.run(["git", "push", "-q", "origin", "main"], cwd=a.path, capture_output=True, text=True)
    assert proc.returncode == 0 and "provenance not" not in proc.stderr, proc.stderr
    assert bare.git("rev-parse", "refs/heads/main").strip() == a_commit
    # the remote had b's provenance: the hook pulled, merged and pushed the union
    assert ledger_run_ids(bare.path) == {ra, rb}
    assert ledger_tree(bare.path) == ledger_tree(a)
    assert a_commit in notes_content(bare.path)
    assert notes_content(bare.path) == notes_content(a)

    prov_ok(b.path, "pull")
    assert_converged([a, b], {ra, rb})

    # prov's refs named by hand beside a branch: git pushes them, the hook leaves them to it
    rc = make_run(b.path, "from-b-by-hand")
    b.commit("b-more")
    proc = subprocess.run(["git", "push", "origin", "HEAD:refs/heads/feature-b", "refs/prov/*:refs/prov/*",
                           "refs/notes/prov:refs/notes/prov"], cwd=b.path, capture_output=True, text=True)
    assert proc.returncode == 0 and "cannot lock ref" not in proc.stderr, proc.stderr
    assert ledger_run_ids(bare.path) == {ra, rb, rc} and ledger_tree(bare.path) == ledger_tree(b)
    prov_ok(a.path, "pull")
    for repo in (a, b):
        assert_valid(repo)
        assert not (repo.path / ".git" / "prov" / "hook-failures.log").exists() or \
            "pre-push" not in (repo.path / ".git" / "prov" / "hook-failures.log").read_text()
    bare.fsck()
