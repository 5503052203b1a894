"""A full disk during a spill, a flush or the end of a run loses no point (issue 16):
the points stay buffered, logging goes on, and the write is tried again."""

from __future__ import annotations

import errno

import pytest

import gitprov
from gitprov.errors import WriteError
from gitprov.store import packs

from ..conftest import GitRepo


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch):
    """``full_disk(True)`` makes every pack write fail with ENOSPC until ``full_disk(False)``."""
    real = packs.write_pack
    state = {"full": False, "refused": 0}

    def write_pack(*args, **kwargs):
        if state["full"]:
            state["refused"] += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(packs, "write_pack", write_pack)

    def switch(full: bool) -> dict:
        state["full"] = full
        return state

    return switch


def test_spills_that_cannot_write_keep_every_point(prov_repo: GitRepo, full_disk) -> None:
    repo = gitprov.Repository(prov_repo.path)
    run = repo.start_run(name="r", code=False, environment=False, spill_points=50, flush_seconds=1e-9)
    for step in range(100):
        run.log_metric("loss", step * 0.5)
    state = full_disk(True)
    for step in range(100, 400):  # spills (and flushes) fail here: logging goes on
        run.log_metric("loss", step * 0.5)
        run.log_metric("acc", step / 400)
    assert state["refused"] >= 2
    with pytest.raises(WriteError, match="No space left"):
        run.flush()
    with pytest.raises(WriteError, match="No space left"):
        run.end()
    assert run.status == "running"
    full_disk(False)
    for step in range(400, 410):
        run.log_metric("loss", step * 0.5)
    run.end()
    stored = repo.get_run(run.id)
    assert stored.status == "finished"
    assert [p.step for p in stored.get_metric_history("loss")] == list(range(410))
    assert [p.value for p in stored.get_metric_history("loss")] == [s * 0.5 for s in range(410)]
    assert [p.step for p in stored.get_metric_history("acc")] == list(range(300))
    prov_repo.fsck()


def test_a_failed_first_write_leaves_no_run_behind_and_a_retry_stores_it(prov_repo: GitRepo, full_disk) -> None:
    repo = gitprov.Repository(prov_repo.path)
    run = repo.start_run(name="r", code=False, environment=False)
    run.log_metric("loss", 1.0)
    full_disk(True)
    with pytest.raises(WriteError):
        run.end()
    assert repo.find_runs() == []
    full_disk(False)
    run.end()
    assert [r.id for r in repo.find_runs()] == [run.id]
