"""Streamed listings (``iter_runs``): the same runs as ``find_runs``, in the same order,
read a page at a time through one ``git cat-file``, the first runs before the last are
read."""

from __future__ import annotations

import pytest
from synthetic_ledger import build_ledger

import gitprov
from gitprov.index import reading, search
from gitprov.index.reading import read_run_blobs
from gitprov.runs.reading import all_run_entries

QUERIES = [
    (None, None, None),
    ({}, None, 7),
    ({"status": "finished"}, None, None),
    ("params.optimizer = 'adam'", "metrics.acc desc", None),
    ("metrics.acc >= 0.5", "metrics.acc desc", 9),
    (None, "params.lr, created", None),
    (None, "name desc", 0),
    ({"tags.team": {"$in": ["vision", "nlp"]}}, "experiment", 30),
]


@pytest.fixture
def ledger_repo(repo):
    build_ledger(str(repo.path), 40, seed=5, series_fraction=0.1)
    return gitprov.Repository(repo.path)


@pytest.fixture
def small_pages(monkeypatch):
    """Pages of a few runs, so 40 runs take the whole streamed path: first page, then
    pages through ``git cat-file`` without ``--buffer``."""
    monkeypatch.setattr(search, "FIRST_PAGE", 4)
    monkeypatch.setattr(reading, "PAGE", 3)
    monkeypatch.setattr(reading, "BULK_MIN", 2)


def state_of(runs):
    return [(r.id, r.record, r.state) for r in runs]


@pytest.mark.parametrize(("query", "order", "limit"), QUERIES)
def test_iter_runs_yields_what_find_runs_returns(ledger_repo, small_pages, query, order, limit):
    expected = state_of(ledger_repo.find_runs(query, order, limit))
    assert state_of(ledger_repo.iter_runs(query, order, limit)) == expected
    if limit is None:
        assert len(expected) > search.FIRST_PAGE


def test_iter_runs_checks_its_arguments_when_called(ledger_repo):
    with pytest.raises(gitprov.UsageError):
        ledger_repo.iter_runs(limit=-1)
    with pytest.raises(gitprov.QueryError):
        ledger_repo.iter_runs("params.lr >")


def test_the_first_runs_come_before_the_last_is_read(ledger_repo, small_pages, monkeypatch):
    events: list[str] = []

    def recording(real):
        def read(repo, runs, **kw):
            for blobs in real(repo, runs, **kw):
                events.append(f"read {blobs.run_id}")
                yield blobs
        return read

    for name in ("read_run_blobs", "read_run_pages"):
        monkeypatch.setattr(search, name, recording(getattr(search, name)))
    runs = ledger_repo.iter_runs()
    next(runs)
    events.append("first yielded")
    rest = list(runs)
    assert len(rest) == 39
    assert events.index("first yielded") < events.index(f"read {rest[-1].id}")
    # and pages are asked for as they are needed, not all at once
    asked: list[int] = []
    real_trees = ledger_repo.index().run_trees
    monkeypatch.setattr(ledger_repo.index(), "run_trees", lambda ids: asked.append(len(ids)) or real_trees(ids))
    runs = ledger_repo.iter_runs()
    next(runs)
    assert sum(asked) <= search.FIRST_PAGE
    list(runs)
    # the first page's trees come with the answer of the index, the rest a page at a time
    assert sum(asked) == 40 - search.FIRST_PAGE and max(asked) <= reading.PAGE


def test_a_listing_changed_in_between_repeats_no_run(ledger_repo, small_pages, monkeypatch):
    real = search._select
    calls = []

    def changing(index, query, order_by, limit, include_deleted, **options):
        found = real(index, query, order_by, limit, include_deleted, **options)
        calls.append(limit)
        return found if len(calls) == 1 else found[::-1]  # the second answer comes in another order

    monkeypatch.setattr(search, "_select", changing)
    ids = [r.id for r in ledger_repo.iter_runs()]
    assert sorted(ids) == sorted(r.id for r in ledger_repo.find_runs()) and len(set(ids)) == 40


def test_streamed_reads_fall_back_when_git_dies(ledger_repo, monkeypatch):
    monkeypatch.setattr(reading, "PAGE", 7)
    runs = all_run_entries(ledger_repo.ledger, ledger_repo.ledger.tip())
    expected = list(read_run_blobs(ledger_repo.git, runs, bulk=False))
    git_dir = ledger_repo.git.common_dir

    def truncated(repo, buffered=True):  # the answers stop mid-object, after a page or so
        import subprocess

        return subprocess.Popen(["sh", "-c", f"git --git-dir '{git_dir}' cat-file --batch | head -c 30000"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    monkeypatch.setattr(reading, "_start_cat_file", truncated)
    assert list(read_run_blobs(ledger_repo.git, iter(runs), bulk=True)) == expected


def test_a_streamed_read_stopped_early_ends_git(ledger_repo, monkeypatch):
    monkeypatch.setattr(reading, "PAGE", 5)
    started = []
    real = reading._start_cat_file
    monkeypatch.setattr(reading, "_start_cat_file", lambda repo, buffered=True: started.append(real(repo, buffered))
                        or started[-1])
    runs = all_run_entries(ledger_repo.ledger, ledger_repo.ledger.tip())
    blobs = read_run_blobs(ledger_repo.git, iter(runs), bulk=True)
    next(blobs)
    blobs.close()
    assert len(started) == 1 and started[0].poll() is not None
    assert "--buffer" not in started[0].args  # answers flushed one by one: no page waits on the next
