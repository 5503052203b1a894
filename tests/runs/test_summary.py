"""Summaries of long metric series (``runs/summary.py``): the kept points are exactly
the first, lowest, highest and last point of every bucket (numpy and pure Python alike),
only long series get one, it names the chunks it stands for, a failed spill adds
nothing to it, and it travels with the run: validated on pull, clean under verify."""

from __future__ import annotations

import math
import random
from pathlib import Path

import msgspec
import pytest

import gitprov
from gitprov.errors import DataError, FormatVersionError
from gitprov.model.common import FORMAT_VERSION
from gitprov.runs import summary as summary_mod
from gitprov.runs.reading import metric_chunks, metric_summary_ids
from gitprov.runs.series import decode_metric_chunk, pack_values
from gitprov.runs.summary import SeriesSummary, decode_metric_summary
from gitprov.store.ledger import run_dir
from tests.conftest import GitRepo, run_prov
from tests.runs.test_full_disk import full_disk  # noqa: F401  (a fixture)


def _m4(values: list[float], width: int) -> set[int]:
    """Indices of the finite points an exact M4 keeps: per bucket of ``width`` finite
    points, the first, the first lowest, the first highest and the last."""
    finite = [i for i, v in enumerate(values) if math.isfinite(v)]
    out: set[int] = set()
    for b in range(0, len(finite), width):
        bucket = finite[b:b + width]
        vals = [values[i] for i in bucket]
        out |= {bucket[0], bucket[vals.index(min(vals))], bucket[vals.index(max(vals))], bucket[-1]}
    return out


@pytest.mark.parametrize("numpy_path", [True, False], ids=["numpy", "python"])
def test_kept_points_are_the_m4_of_every_bucket(monkeypatch: pytest.MonkeyPatch, numpy_path: bool) -> None:
    monkeypatch.setattr(summary_mod, "SUMMARY_FROM", 0)
    monkeypatch.setattr(summary_mod, "MAX_BUCKETS", 8)
    if not numpy_path:
        monkeypatch.setattr(summary_mod, "_numpy_values", lambda values, packed: None)
    rng = random.Random(7)
    for _ in range(30):
        sizes = [rng.randint(1, 60) for _ in range(rng.randint(1, 6))]
        values = [rng.choice([rng.uniform(-5, 5), float(rng.randint(-2, 2)), math.nan, math.inf, -math.inf])
                  if rng.random() < 0.2 else rng.uniform(-5, 5) for _ in range(sum(sizes))]
        summary, at = SeriesSummary(), 0
        for seq, size in enumerate(sizes):
            part = values[at:at + size]
            summary.add(f"0123abcd-{seq:08d}", "ab" * 20, list(range(at, at + size)),
                        [10 * i for i in range(at, at + size)], part, pack_values(part) if seq % 2 else None)
            at += size
        got = decode_metric_summary(summary.encode())
        assert got["count"] == len(values)
        assert got["nan"] == sum(1 for v in values if v != v)
        assert got["inf"] == sum(1 for v in values if math.isinf(v))
        assert got["chunks"] == [(f"0123abcd-{s:08d}", "ab" * 20) for s in range(len(sizes))]
        want = sorted(_m4(values, summary.width))
        assert got["step"] == want and got["timestamp"] == [10 * i for i in want]
        assert got["value"] == [values[i] for i in want]
        assert -(-(len(values) - got["nan"] - got["inf"]) // summary.width) <= 8


def test_a_short_series_keeps_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary_mod, "SUMMARY_FROM", 100)
    summary = SeriesSummary()
    summary.add("0123abcd-00000000", "ab" * 20, list(range(60)), list(range(60)), [1.0] * 60)
    assert summary.encode() is None and summary.buckets == []
    summary.add("0123abcd-00000001", "cd" * 20, list(range(60, 120)), list(range(60, 120)), [2.0] * 60)
    got = decode_metric_summary(summary.encode())  # from the chunk that took it past SUMMARY_FROM
    assert got["chunks"] == [("0123abcd-00000001", "cd" * 20)] and got["count"] == 60


def _blob(**fields) -> bytes:
    base = {"format_version": FORMAT_VERSION, "kind": "metric-summary", "count": 2, "nan": 0, "inf": 0,
            "chunks": [["0123abcd-00000000", "ab" * 20]], "points": 2, "step": pack_values([0.0, 0.0]),
            "timestamp": bytes(16), "value": bytes(16)}
    base.update(fields)
    return msgspec.msgpack.encode(base)


@pytest.mark.parametrize("fields, message", [
    ({"kind": "metric-chunk"}, "not a metric-summary"),
    ({"format_version": "1"}, "not a positive integer"),
    ({"points": 3, "count": 3}, "does not hold 3"),
    ({"count": 1}, "more than it may"),
    ({"nan": -1}, "not a count"),
    ({"chunks": [["x", "ab" * 20]]}, "pairs"),
    ({"chunks": []}, "pairs"),
    ({"chunks": [["0123abcd-00000000", "ab" * 20]] * 2}, "twice"),
    ({"value": b"x"}, "8-byte values"),
])
def test_the_decoder_refuses_what_a_writer_never_writes(fields: dict, message: str) -> None:
    decode_metric_summary(_blob())
    with pytest.raises(DataError, match=message):
        decode_metric_summary(_blob(**fields))


def test_a_newer_summary_names_the_upgrade() -> None:
    with pytest.raises(FormatVersionError, match="upgrade"):
        decode_metric_summary(_blob(format_version=FORMAT_VERSION + 1))
    with pytest.raises(DataError, match="corrupt"):
        decode_metric_summary(b"\xc1")


def _long_run(path: Path, points: int = 1_000, spill: int = 100) -> gitprov.Run:
    run = gitprov.Repository(path).start_run("long", code=False, environment=False, spill_points=spill,
                                             spill_seconds=3600)  # chunks by count only
    for step in range(points):
        run.log_metric("loss", 1.0 / (step + 1) + (9.0 if step == 777 else 0.0), step)
        if step < 20:
            run.log_metric("short", step, step)
    return run


def test_a_long_series_gets_one_summary_when_its_run_ends(prov_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary_mod, "SUMMARY_FROM", 300)
    monkeypatch.setattr(summary_mod, "MAX_BUCKETS", 16)
    run = _long_run(prov_repo.path)
    run.flush()
    store = gitprov.Repository(prov_repo.path).store
    assert metric_summary_ids(store.ledger, run.id, "loss") == []  # a running run has none yet
    run.end()
    (oid,) = metric_summary_ids(store.ledger, run.id, "loss")
    assert metric_summary_ids(store.ledger, run.id, "short") == []
    got = decode_metric_summary(store.git.odb.read_typed(oid, "blob"))
    chunks = metric_chunks(store.ledger, run.id, "loss")
    sizes = [len(decode_metric_chunk(store.git.odb.read_typed(oid, "blob"))[0]) for _, oid in chunks]
    first = next(i for i in range(len(sizes)) if sum(sizes[:i + 1]) >= 300)  # the chunk that reaches SUMMARY_FROM
    assert first > 0 and got["chunks"] == chunks[first:]
    assert got["count"] == sum(sizes[first:]) and 777 in got["step"] and got["step"][-1] == 999
    assert len(got["step"]) <= 4 * 16


def test_a_short_run_writes_no_summaries_directory(prov_repo: GitRepo) -> None:
    run = gitprov.Repository(prov_repo.path).start_run("short", code=False, environment=False)
    for step in range(100):
        run.log_metric("loss", step * 0.5, step)
    run.end()
    ledger = gitprov.Repository(prov_repo.path).store.ledger
    assert ledger.run_folder(run.id, "summaries/loss") == {} and ledger.run_folder(run.id, "series/loss")


def test_a_failed_spill_adds_nothing_to_the_summary(prov_repo: GitRepo, full_disk,  # noqa: F811
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary_mod, "SUMMARY_FROM", 100)
    run = gitprov.Repository(prov_repo.path).start_run("r", code=False, environment=False, spill_points=50,
                                                       spill_seconds=3600, flush_seconds=1e-9)
    for step in range(150):
        run.log_metric("loss", float(step), step)
    full_disk(True)
    for step in range(150, 400):  # spills fail: the points stay buffered, the summary unchanged
        run.log_metric("loss", float(step), step)
    full_disk(False)
    run.end()
    store = gitprov.Repository(prov_repo.path).store
    (oid,) = metric_summary_ids(store.ledger, run.id, "loss")
    got = decode_metric_summary(store.git.odb.read_typed(oid, "blob"))
    chunks = metric_chunks(store.ledger, run.id, "loss")
    assert got["chunks"] == chunks[1:]  # the first chunk (50 points) is below SUMMARY_FROM
    assert got["count"] == 350 and got["step"][0] == 50 and got["step"][-1] == 399


def test_a_summary_travels_with_its_run(remote_pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pushed and pulled like the chunks (validated), verify is clean in both clones, and
    the pulled clone's chart is cut from it."""
    np = pytest.importorskip("numpy")
    from gitprov.ui.series import SeriesCache, series_payload

    a, b = remote_pair
    monkeypatch.setattr(summary_mod, "SUMMARY_FROM", 300)
    run = _long_run(a.path, 3_000)
    run.end()
    assert run_prov(a.path, "push").returncode == 0
    proc = run_prov(b.path, "pull")
    assert proc.returncode == 0, proc.stderr
    for clone in (a, b):
        proc = run_prov(clone.path, "verify")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    store = gitprov.Repository(b.path).store
    cache = SeriesCache()
    chart = cache._summarised(store, run.id, "loss", (), 200, "step")
    assert chart is not None and not cache._entries  # no chunk decoded whole
    assert chart["total"] == 3_000 and 777 in chart["step"] and chart["step"][-1] == 2_999
    whole = series_payload(cache.columns(store, run.id, "loss"), 200)
    assert chart["total"] == whole["total"] and chart["step"][0] == whole["step"][0]
    assert np.isclose(max(chart["value"]), max(whole["value"]))


@pytest.fixture
def remote_pair(make_repo, object_format, tmp_path: Path):
    from tests.exchange.clones import clone, seed_bare

    remote = seed_bare(make_repo, object_format)
    return clone(remote, tmp_path / "a"), clone(remote, tmp_path / "b")


def test_a_summary_of_other_chunks_is_not_used(prov_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader trusts a summary only for the chunks stored under the names it gives:
    one naming another blob (a chunk it never stood for) is passed over, and the chart
    is cut from the chunks."""
    pytest.importorskip("numpy")
    from gitprov.ui.series import SeriesCache

    monkeypatch.setattr(summary_mod, "SUMMARY_FROM", 300)
    run = _long_run(prov_repo.path)
    run.end()
    store = gitprov.Repository(prov_repo.path).store
    assert SeriesCache()._summarised(store, run.id, "loss", (), 100, "step")["summary"] is True
    (oid,) = metric_summary_ids(store.ledger, run.id, "loss")
    obj = msgspec.msgpack.decode(store.git.odb.read_typed(oid, "blob"))
    obj["chunks"][0][1] = "0" * len(obj["chunks"][0][1])
    (name,) = store.ledger.run_folder(run.id, "summaries/loss")
    store.ledger.apply({f"{run_dir(run.id)}/summaries/loss/{name}": msgspec.msgpack.encode(obj)}, "stale summary")
    cache = SeriesCache()
    assert cache._summarised(store, run.id, "loss", (), 100, "step") is None
    chart = cache.payload(store, run.id, "loss", 100)
    assert "summary" not in chart and chart["total"] == 1_000 and 777 in chart["step"]


def test_a_short_run_loads_no_numpy(prov_repo: GitRepo) -> None:
    """What a short run pays for summaries: not even numpy's import (a long series
    loads it, when installed, at its first summarised spill)."""
    import subprocess
    import sys

    code = ("import sys, gitprov\n"
            f"run = gitprov.Repository({str(prov_repo.path)!r}).start_run('s', code=False, environment=False)\n"
            "for step in range(100):\n    run.log_metric('loss', step * 0.5, step)\n"
            "run.end()\nprint('numpy' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"
