"""The format-4 study (``benchmarks/study_format4.py``) measures what it claims to: its
format-3 replay is the real runs' ledger tree for tree, the runs it makes past the real
ones are what git-prov itself would have stored for that run of the workload (``prov
verify`` and the public API read them back), and every candidate layout is valid git."""

from __future__ import annotations

import math

import pytest
from bench_growth import artifact_of, params_of, series_of
from study_format4 import (
    CANDIDATES,
    flushes,
    listing_seconds,
    migrate,
    new_repo,
    read_back,
    real_runs,
    replay,
    synthesise,
)

import gitprov
from tests.conftest import run_git

#: the study replays real runs of format 3's tree (what 0.4 still writes with
#: GIT_PROV_LEDGER_LAYOUT=tree). What an older release does on the log as built is
#: tested with 0.3.0's own source: tests/test_format4_log.py
pytestmark = pytest.mark.format3


@pytest.fixture
def real(tmp_path):
    path = new_repo(str(tmp_path / "real"))
    real_runs(path, 3)
    return path, read_back(path)


def test_the_format3_replay_is_the_real_ledger_tree_for_tree(real, tmp_path):
    path, runs = real
    assert len(runs) == 3 and all(r.record and r.state and r.chunks and r.artifacts for r in runs)
    target = new_repo(str(tmp_path / "replay"))
    _seconds, kinds, trees = replay("A", target, runs)
    assert trees == run_git(path, "log", "--reverse", "--format=%T", "refs/prov/ledger").split()
    assert sorted(set(kinds.values())) == ["artifact blob", "metric chunk blob", "record blob", "state blob"]


def test_runs_made_past_the_real_ones_read_back_as_that_run_of_the_workload(real, tmp_path):
    _path, runs = real
    target = new_repo(str(tmp_path / "more"))
    made = list(synthesise(runs, 7))
    assert len({r.id for r in made}) == 7
    replay("A", target, made)
    prov = gitprov.Repository(target)
    report = prov.verify()
    assert report.ok, report.problems
    assert report.runs == 7
    for k in (3, 6):  # made from real runs 0 and 2
        run = prov.get_run(made[k].id)
        assert run.record.name == f"run-{k:06d}"
        assert run.record.params == params_of(k)
        history = run.get_metric_history("loss")
        assert [p.value for p in history] == series_of(k, 100)
        assert math.isclose(run.state.metrics["loss"].value, series_of(k, 100)[-1])
        assert run.get_artifact("summary.json") == artifact_of(k, "json")[1]  # its sha256 checked on reading


def test_every_candidate_layout_passes_git_fsck_strict(real, tmp_path):
    _path, runs = real
    for name in CANDIDATES:
        target = new_repo(str(tmp_path / f"cand-{name}"))
        replay(name, target, list(synthesise(runs, 5)))
        run_git(target, "fsck", "--strict", "--no-progress")
        assert int(run_git(target, "rev-list", "--count", "refs/prov/ledger")) == 6  # init + a transaction a run


def test_the_upgrade_to_format_4_gives_the_tree_g_writes_run_by_run(real, tmp_path):
    _path, runs = real
    made = list(synthesise(runs, 5))
    a, g = new_repo(str(tmp_path / "a")), new_repo(str(tmp_path / "g"))
    replay("A", a, made)
    _s, _k, g_trees = replay("G", g, made)
    upgrade = migrate(a, made, str(tmp_path / "scratch"))
    assert upgrade["fsck"]
    assert upgrade["tree"] == g_trees[-1]
    assert upgrade["left"] > 0


def test_the_log_j_holds_each_transaction_alone_and_its_union_is_g(real, tmp_path):
    """J's commits hold their own run's entries (beside ``format`` and the constant
    ``runs/`` sentinel), and the union of those entries is G's last tree, name for name
    (a shard's ``<xx>/`` dropped)."""
    _path, runs = real
    made = list(synthesise(runs, 5))
    j, g = new_repo(str(tmp_path / "j")), new_repo(str(tmp_path / "g"))
    _s, _k, j_trees = replay("J", j, made)
    _s, _k, g_trees = replay("G", g, made)
    union: dict[str, str] = {}
    sentinels = set()
    for run, tree in zip(made, j_trees[1:], strict=True):  # the first tree is prov init's
        entries = dict(line.split("\t")[::-1] for line in run_git(j, "ls-tree", tree).splitlines())
        sentinels.add(entries.pop("runs"))
        entries.pop("format")
        assert all(name.startswith(run.id) for name in entries)
        union.update({name: meta.split()[2] for name, meta in entries.items()})
    assert len(sentinels) == 1
    g_last = {line.split("\t")[1].split("/", 1)[1]: line.split()[2]
              for line in run_git(g, "ls-tree", "-r", g_trees[-1]).splitlines() if "/" in line.split("\t")[1]}
    assert union == g_last
    assert listing_seconds(j, log=True)["entries"] == len(union) == 10
    assert listing_seconds(g, log=False)["entries"] == 10


def test_a_run_written_in_flushes_is_the_run_in_parts(real, tmp_path):
    """``--writes``: a run as several ledger writes, each with its state at that moment
    and the points logged since the last; the last write is the run as it ended."""
    import msgspec

    from gitprov.runs.series import decode_metric_chunk

    _path, runs = real
    run = runs[0]
    parts = flushes(run, 4)
    assert [p.id for p in parts] == [run.id] * 4 and all(p.record == run.record for p in parts)
    points = [decode_metric_chunk(data) for p in parts for data in p.chunks.values()]
    assert [v for _s, _t, values in points for v in values] == decode_metric_chunk(next(iter(run.chunks.values())))[2]
    states = [msgspec.json.decode(p.state) for p in parts]
    assert [s["status"] for s in states] == ["running"] * 3 + ["finished"]
    assert [s["lamport"] for s in states] == [1, 2, 3, 4]
    assert states[-1] == {**msgspec.json.decode(run.state), "lamport": 4}
    assert [bool(p.artifacts) for p in parts] == [False, False, False, True]
    for name in ("A", "J"):
        target = new_repo(str(tmp_path / f"cand-{name}"))
        replay(name, target, list(synthesise(runs, 4)), writes=3)
        run_git(target, "fsck", "--strict", "--no-progress")
        assert int(run_git(target, "rev-list", "--count", "refs/prov/ledger")) == 1 + 4 * 3
