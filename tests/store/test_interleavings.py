"""Random interleavings of runs, commits, amends, ``git gc``, git's automatic
maintenance and the repacks prov starts in the background, in one real repository,
never lose a run or its link to its commit."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import gitprov
from tests.conftest import run_git


class Interleavings(RuleBasedStateMachine):
    """The model: every finished run (id -> commit, loss values) must read back whole."""

    @initialize()
    def make_repository(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="prov-interleave-"))
        self.path = self.dir / "repo"
        run_git(self.dir, "init", "-q", "-b", "main", str(self.path))
        # git's own maintenance as low as it goes, so the interleavings reach it
        run_git(self.path, "config", "gc.autoPackLimit", "2")
        run_git(self.path, "config", "gc.auto", "5")
        run_git(self.path, "config", "gc.autoDetach", "false")
        run_git(self.path, "config", "prov.autoPackLimit", "2")  # prov starts git's geometric repack too
        (self.path / "f.txt").write_text("0\n")
        run_git(self.path, "add", "f.txt")
        run_git(self.path, "commit", "-q", "-m", "start")
        gitprov.init(self.path, hooks=True)
        self.runs: dict[str, tuple[str, list[float]]] = {}
        self.commits = 1

    def teardown(self) -> None:
        shutil.rmtree(getattr(self, "dir", ""), ignore_errors=True)

    def _head(self) -> str:
        return run_git(self.path, "rev-parse", "HEAD").strip()

    @rule(points=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=0, max_size=5), batched=st.booleans())
    def a_run(self, points: list[float], batched: bool) -> None:
        repo = gitprov.Repository(self.path)
        with repo.start_run(name=f"r{len(self.runs)}", environment=False) as run:
            for step, value in enumerate(points):
                run.log_metric("loss", value, step=step)
            if batched:
                run.flush()
        self.runs[run.id] = (self._head(), points)

    @rule()
    def a_commit(self) -> None:
        self.commits += 1
        (self.path / "f.txt").write_text(f"{self.commits}\n")
        run_git(self.path, "commit", "-q", "-am", f"commit {self.commits}")

    @precondition(lambda self: self.commits > 1)
    @rule()
    def an_amend(self) -> None:
        run_git(self.path, "commit", "-q", "--amend", "-m", f"amended {self.commits}")

    @rule()
    def git_gc(self) -> None:
        run_git(self.path, "gc", "--quiet", check=False)  # may lose a race with prov's own repack, as two repacks may

    @rule()
    def git_gc_auto(self) -> None:
        run_git(self.path, "gc", "--auto", "--quiet", check=False)  # may lose a race with prov's own repack, as two repacks may

    @rule()
    def git_repack_geometric(self) -> None:
        run_git(self.path, "repack", "--geometric=2", "-d", "-q", check=False)  # may lose a race with prov's own repack, as two repacks may

    @invariant()
    def nothing_is_lost(self) -> None:
        if not getattr(self, "runs", None):
            return
        repo = gitprov.Repository(self.path)
        listed: dict[str, set[str]] = {}
        for run_id, (commit, points) in self.runs.items():
            run = repo.get_run(run_id)
            assert run.status == "finished"
            assert [p.value for p in run.get_metric_history("loss")] == points
            listed.setdefault(commit, set()).add(run_id)
        for commit, ids in listed.items():
            assert ids <= set(repo.store.ledger.commit_run_ids(commit)), commit
            assert ids <= {link.run for link in repo.show(commit).runs}, commit


@pytest.mark.slow
def test_interleavings_never_lose_a_run() -> None:
    machine = Interleavings.TestCase
    machine.settings = settings(max_examples=8, stateful_step_count=12, deadline=None,
                                suppress_health_check=[HealthCheck.too_slow])
    machine().runTest()


def test_the_end_state_passes_git_fsck_and_prov_verify(tmp_path: Path) -> None:
    """One fixed interleaving, checked with git's and prov's own checkers."""
    machine = Interleavings()
    machine.make_repository()
    try:
        machine.a_run([1.0, 2.0], False)
        machine.git_gc_auto()
        machine.a_commit()
        machine.a_run([3.0], True)
        machine.an_amend()
        machine.git_repack_geometric()
        machine.a_run([], False)
        machine.git_gc()
        machine.nothing_is_lost()
        run_git(machine.path, "fsck", "--strict")
        report = gitprov.Repository(machine.path).verify()
        assert report.ok, report.problems
    finally:
        machine.teardown()
