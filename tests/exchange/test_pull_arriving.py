"""A pull checks records and states as git receives the pack (``exchange/arriving.py``):
the verdict is the one validation reaches without it, a pack that breaks or dies
mid-stream ends the pull in one error with nothing moved and nothing left behind, and a
user's own ``GIT_TRACE_PACKFILE`` is left to them."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from gitprov import codec
from gitprov.exchange import remote as exchange
from gitprov.exchange.arriving import Cleared
from gitprov.exchange.blob_content import precheck
from gitprov.exchange.remote_values import check_record_values, check_state_values
from gitprov.exchange.validate import validate_ledger
from gitprov.model import FORMAT_VERSION, RunRecord, RunState
from gitprov.store.ledger import LEDGER_REF
from gitprov.store.repo import GitRepository
from tests.conftest import GitRepo, run_git, run_prov
from tests.exchange.clones import clone, ledger_run_ids, make_run, prov_ok, prov_refs, seed_bare
from tests.exchange.test_validate_decode import EDITS, STATE
from tests.test_codec import run_record

RUNS = 6
#: what arriving clears, counted against format 3's records and states (a log's run
#: blobs: ``test_run_blobs_checked_as_they_arrive_give_the_same_verdict``)
FORMAT3_CLEARING = pytest.mark.format3


@pytest.fixture
def remote(make_repo, object_format) -> GitRepo:
    return seed_bare(make_repo, object_format)


@pytest.fixture
def published(remote: GitRepo, tmp_path: Path) -> GitRepo:
    """The remote, holding RUNS runs pushed from a first clone."""
    first = clone(remote, tmp_path / "first")
    for i in range(RUNS):
        make_run(first.path, f"r{i}", loss=0.5 + i)
    prov_ok(first.path, "push")
    return remote


def _verdict(repo: GitRepository, cleared: Cleared | None):
    theirs = repo.refs.read(exchange.tracking_ref("origin", LEDGER_REF))
    verdict = validate_ledger(repo, None, repo.read_commit(theirs).tree, None, cleared)
    return sorted(verdict.problems), sorted(verdict.pinned), sorted(verdict.added), verdict.checked


def _clone(remote: GitRepo, path: Path) -> GitRepo:
    """A clone that gets the ledger through git's transport (a local clone would link it)."""
    return clone(f"file://{remote.path}", path)


@FORMAT3_CLEARING
def test_blobs_checked_as_they_arrive_give_the_same_verdict(published: GitRepo, tmp_path: Path) -> None:
    mine = _clone(published, tmp_path / "mine")
    repo = GitRepository.open(str(mine.path))
    result = exchange.fetch(repo, "origin", check_arriving=True)
    cleared = result.cleared
    assert cleared is not None and len(cleared) >= 3 * RUNS  # every record, state and metric chunk
    assert _verdict(repo, cleared) == _verdict(repo, None)
    assert _verdict(repo, cleared)[2] and not _verdict(repo, cleared)[0]
    assert not [p for p in os.listdir(repo.git_dir) if p.startswith("prov-pack-")]
    # ids cleared as the wrong kind are read again: the verdict does not change
    listing = run_git(mine.path, "ls-tree", "-r", "-d", "--name-only", exchange.tracking_ref("origin", LEDGER_REF),
                      "runs/")
    records = [p.split("/")[2] for p in listing.splitlines() if p.count("/") == 2]
    assert len(records) == RUNS
    wrong = Cleared({bytes.fromhex(oid): ("state", None) for oid in records})
    assert _verdict(repo, wrong) == _verdict(repo, None)


def test_a_pull_through_the_stream_merges_every_run(published: GitRepo, tmp_path: Path) -> None:
    mine = _clone(published, tmp_path / "mine")
    # what a killed pull left: removed when an hour old, a live one's copy kept
    stale, live = mine.path / ".git" / "prov-pack-killed.pack", mine.path / ".git" / "prov-pack-live.pack"
    stale.write_bytes(b"PACK")
    live.write_bytes(b"PACK")
    os.utime(stale, (1, 1))
    prov_ok(mine.path, "pull")
    assert len(ledger_run_ids(mine)) == RUNS
    assert sorted(p for p in os.listdir(mine.path / ".git") if p.startswith("prov-pack-")) == [live.name]


def _wrap_upload_pack(repo: GitRepo, tmp_path: Path, mode: str) -> None:
    """The remote's upload-pack behind a relay that, once the pack has started, ``cut``s
    the stream (the remote dies mid-pack) or ``flip``s a byte of it."""
    script = tmp_path / f"upload-pack-{mode}.py"
    script.write_text(f"""import subprocess, sys
child = subprocess.Popen(["git", "upload-pack", *sys.argv[1:]], stdout=subprocess.PIPE, bufsize=0)
out, seen, done = sys.stdout.buffer, 0, False
while True:
    chunk = child.stdout.read(256)
    if not chunk:
        break
    if not done and seen > 0:
        if {mode!r} == "cut":
            out.flush()
            child.kill()
            sys.exit(1)
        chunk = chunk[:50] + bytes([chunk[50] ^ 0xFF]) + chunk[51:]
        done = True
    if b"PACK" in chunk:
        seen += 1
    out.write(chunk)
    out.flush()
sys.exit(child.wait())
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    run_git(repo.path, "config", "remote.origin.uploadpack", f"{sys.executable} {script}")


@pytest.mark.parametrize("mode", ["cut", "flip"])
def test_a_pack_broken_mid_stream_ends_in_one_error_nothing_moved(published: GitRepo, tmp_path: Path,
                                                                   mode: str) -> None:
    mine = _clone(published, tmp_path / "mine")
    before = prov_refs(mine)
    _wrap_upload_pack(mine, tmp_path, mode)
    proc = run_prov(mine.path, "pull")
    assert proc.returncode in (5, 11), proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert prov_refs(mine) == before  # neither the live refs nor the tracking refs moved
    assert not [p for p in os.listdir(mine.path / ".git") if p.startswith("prov-pack-")]
    # the same clone pulls once the remote is whole again
    run_git(mine.path, "config", "--unset", "remote.origin.uploadpack")
    prov_ok(mine.path, "pull")
    assert len(ledger_run_ids(mine)) == RUNS


def test_a_users_own_pack_trace_is_left_to_them(published: GitRepo, tmp_path: Path) -> None:
    mine = _clone(published, tmp_path / "mine")
    trace = tmp_path / "mine.pack"
    proc = run_prov(mine.path, "pull", env={"GIT_TRACE_PACKFILE": str(trace)})
    assert proc.returncode == 0, proc.stderr
    assert trace.read_bytes()[:4] == b"PACK"
    assert len(ledger_run_ids(mine)) == RUNS


def _full_check(data: bytes, model, check) -> bool:
    from gitprov.errors import ProvError
    from gitprov.exchange.blob_content import decode_model

    try:
        check(decode_model(data, model, "run {}/x", "0123456789abcdef"))
    except ProvError:
        return False
    return True


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_state_is_cleared_only_when_its_full_check_passes(edit: str) -> None:
    # compact, as git-prov writes it (other spacing is never cleared: read again in full)
    data = json.dumps(EDITS[edit](dict(STATE)), separators=(",", ":")).encode()
    passes = _full_check(data, RunState, check_state_values)
    cleared = precheck(data) == ("state", None)
    assert passes or not cleared  # never cleared unless its full check passes
    assert cleared or not passes or b'"kind":"run-state"' not in data  # a state as stored is cleared
    assert precheck(json.dumps(EDITS[edit](dict(STATE))).encode()) is None


@pytest.mark.parametrize("change", ["as written", "a control character in the name", "a NaN param", "a bad key"])
def test_a_record_is_cleared_only_when_its_full_check_passes(change: str) -> None:
    record = json.loads(codec.encode(run_record({"lr": 0.1})))
    if change == "a control character in the name":
        record["name"] = "bad\x01name"
    elif change == "a NaN param":
        record["params"] = {"lr": {"$float": "NaN"}}
    elif change == "a bad key":
        record["params"] = {"": 1}
    data = json.dumps(record, separators=(",", ":")).encode()
    passes = _full_check(data, RunRecord, check_record_values)
    assert passes == (change == "as written")
    assert (precheck(data) is not None) == passes
    if passes:
        assert precheck(data) == ("record", record["code"]["commit"])


def test_a_chunk_is_cleared_as_its_kind_only_when_its_check_passes(monkeypatch) -> None:
    from gitprov.runs import summary as summary_mod
    from gitprov.runs.series import encode_metric_chunk, encode_observation_chunk

    monkeypatch.setattr(summary_mod, "SUMMARY_FROM", 0)  # a summary of a short series
    metric = encode_metric_chunk([0, 1, 2], [1000, 1001, 1002], [0.5, float("nan"), 0.25])
    observation = encode_observation_chunk([0, 1], [1000, 1001], [{"text": "a"}, "b"])
    series = summary_mod.SeriesSummary()
    series.add("0123abcd-00000000", "ab" * 20, list(range(300)), list(range(300)), [0.5] * 300)
    summary = series.encode()
    assert summary is not None
    assert precheck(metric) == ("series", None)
    assert precheck(observation) == ("observations", None)
    assert precheck(summary) == ("summaries", None)
    for damaged in (metric[:-3], metric.replace(b"metric-chunk", b"metric-chunx"), metric[:10] + b"\xc1" + metric[11:],
                    observation[:-1], summary[:-2]):
        assert precheck(damaged) is None  # read again, and reported, when listed
    newer = metric.replace(b"\xaeformat_version" + bytes([FORMAT_VERSION]), b"\xaeformat_version\x63")
    assert newer != metric and precheck(newer) is None
    assert precheck(b"\x80") is None and precheck(b"") is None


def _log_verdict(repo: GitRepository, cleared: Cleared | None):
    from gitprov.exchange.validate_log import validate_log

    theirs = repo.refs.read(exchange.tracking_ref("origin", LEDGER_REF))
    verdict = validate_log(repo, repo.refs.read(LEDGER_REF), theirs, None, cleared)
    return sorted(verdict.problems), sorted(verdict.pinned), sorted(verdict.added), verdict.checked


def test_run_blobs_checked_as_they_arrive_give_the_same_verdict(published: GitRepo, tmp_path: Path,
                                                                monkeypatch) -> None:
    """Format 4: each run blob is checked as it arrives (record, state, kept artifacts'
    names) and said with its record's id; validation reads only what was not cleared,
    and one cleared as another run's, or as another kind, is read again."""
    from gitprov.exchange import validate_log

    mine = _clone(published, tmp_path / "mine")
    repo = GitRepository.open(str(mine.path))
    cleared = exchange.fetch(repo, "origin", check_arriving=True).cleared
    assert cleared is not None
    cleared.wait()
    runs = {oid: found for oid, found in cleared._ids.items() if found[0] == "run"}
    assert len(runs) == RUNS  # every run blob
    ids = ledger_run_ids(published)
    assert {found[1].split()[0] for found in runs.values()} == ids  # the record's id: the run's
    read: list[str] = []
    content = validate_log._LogCheck.content
    monkeypatch.setattr(validate_log._LogCheck, "content", lambda self, job, data: (
        read.append(job.kind), content(self, job, data))[1])
    with_cleared = _log_verdict(repo, cleared)
    assert "run" not in read  # none read again
    assert with_cleared == _log_verdict(repo, None) and with_cleared[2] and not with_cleared[0]
    assert read.count("run") == RUNS
    other_run = "0" * len(next(iter(ids)))
    for wrong in ({oid: ("run", f"{other_run} {found[1].split()[1]}") for oid, found in runs.items()},
                  {oid: ("state", None) for oid in runs}):
        read.clear()
        assert _log_verdict(repo, Cleared(wrong)) == with_cleared
        assert read.count("run") == RUNS  # each read again


def test_a_run_blob_is_cleared_only_when_its_full_check_passes() -> None:
    from gitprov.store import ledger_log as log

    record = codec.encode(run_record({"lr": 0.1}))
    state = json.dumps(STATE, separators=(",", ":")).encode()
    blob = log.encode_run_blob(record, state, {"model.txt": b"weights"})
    found = precheck(blob)
    assert found is not None and found[0] == "run"
    import hashlib

    assert found[1] == f"{hashlib.sha1(b'blob %d' % len(record) + bytes(1) + record).hexdigest()} " \
                       f"{json.loads(record)['code']['commit'] or ''}"
    assert precheck(blob, "sha256")[1].split()[0] == hashlib.sha256(b"blob %d\0" % len(record) + record).hexdigest()
    bad_record = json.loads(record)
    bad_record["name"] = "bad\x01name"
    for damaged in (log.encode_run_blob(json.dumps(bad_record, separators=(",", ":")).encode(), state),
                    log.encode_run_blob(record, b"{}"),
                    log.encode_run_blob(record, state, {"": b"x"}),
                    blob[:-3]):
        assert precheck(damaged) is None  # read again, and reported, when listed


def test_a_chunk_cleared_as_another_kind_is_read_again(published: GitRepo, tmp_path: Path) -> None:
    mine = _clone(published, tmp_path / "mine")
    repo = GitRepository.open(str(mine.path))
    cleared = exchange.fetch(repo, "origin", check_arriving=True).cleared
    assert cleared is not None
    cleared.wait()  # a forked reader may still be sending
    chunks = {oid: found for oid, found in cleared._ids.items() if found[0] == "series"}
    assert len(chunks) == RUNS  # one metric, one chunk, a run
    wrong = Cleared({oid: ("observations", None) for oid in chunks})
    assert _verdict(repo, wrong) == _verdict(repo, None)


# -- the reader in a process of its own ---------------------------------------------------
def _fetch_counting_forks(repo: GitRepository, monkeypatch) -> tuple[exchange.ExchangeResult, list[int]]:
    forks: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return exchange.fetch(repo, "origin", check_arriving=True), forks


@FORMAT3_CLEARING
@pytest.mark.parametrize("forked", [True, False], ids=["forked", "thread"])
def test_a_forked_reader_and_a_thread_clear_the_same_blobs(published: GitRepo, tmp_path: Path, monkeypatch,
                                                           forked: bool) -> None:
    from gitprov.exchange import arriving

    monkeypatch.setattr(arriving, "FORK", forked)
    mine = _clone(published, tmp_path / "mine")
    repo = GitRepository.open(str(mine.path))
    result, forks = _fetch_counting_forks(repo, monkeypatch)
    assert len(forks) == (1 if forked else 0)
    cleared = result.cleared
    assert cleared is not None and len(cleared) >= 2 * RUNS and cleared.finished
    assert _verdict(repo, cleared) == _verdict(repo, None)
    if forked:  # the reader has ended and was waited for: no process is left behind
        with pytest.raises(ChildProcessError):
            os.waitpid(forks[0], os.WNOHANG)
    assert not [p for p in os.listdir(repo.git_dir) if p.startswith("prov-pack-")]


@FORMAT3_CLEARING
@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_reader_that_stops_midway_leaves_the_rest_to_git(published: GitRepo, tmp_path: Path, monkeypatch,
                                                           how: str) -> None:
    from gitprov.exchange import arriving

    checked: list[bytes] = []

    def precheck_then_stop(data: bytes, *args):
        if len(checked) == 3:
            if how == "dies":
                os._exit(3)  # the forked reader is killed: its last frame never leaves
            raise RuntimeError("the reader broke")
        checked.append(data)
        return precheck(data, *args)

    monkeypatch.setattr(arriving, "precheck", precheck_then_stop)
    mine = _clone(published, tmp_path / "mine")
    repo = GitRepository.open(str(mine.path))
    result, forks = _fetch_counting_forks(repo, monkeypatch)
    assert len(forks) == 1
    cleared = result.cleared
    assert cleared is not None
    if how == "dies":
        assert len(cleared) == 0
    else:  # what was cleared of the three blobs checked before it broke stands
        assert 1 <= len(cleared) <= 3
    assert _verdict(repo, cleared) == _verdict(repo, None)


class _Late:
    """A ``Cleared`` whose ids come in while validation lists (a reader still running)."""

    def __init__(self, ids: dict[bytes, tuple[str, str | None]], after: float) -> None:
        import threading

        self.done = threading.Event()
        self.ids: dict[bytes, tuple[str, str | None]] = {}
        self.cleared = Cleared(self.ids, self.done)

        def fill() -> None:
            self.done.wait(after)
            self.ids.update(ids)
            self.done.set()

        self.thread = threading.Thread(target=fill)
        self.thread.start()


@FORMAT3_CLEARING
@pytest.mark.parametrize("aside", [1 << 16, 2], ids=["all set aside", "two at most"])
def test_jobs_not_cleared_yet_are_set_aside_until_the_reader_is_done(published: GitRepo, tmp_path: Path,
                                                                     monkeypatch, aside: int) -> None:
    from gitprov.exchange import validate

    mine = _clone(published, tmp_path / "mine")
    repo = GitRepository.open(str(mine.path))
    whole = exchange.fetch(repo, "origin", check_arriving=True).cleared
    assert whole is not None and len(whole) >= 2 * RUNS
    expected = _verdict(repo, None)
    monkeypatch.setattr(validate, "_DEFERRED", aside)
    late = _Late(dict(whole._ids), after=0.3)
    assert not late.cleared.finished
    asked: list[str] = []
    real = validate.check_blobs

    def counting(repo, jobs, verdict, check):
        def listed():
            for job in jobs:
                asked.append(job.kind)
                yield job
        return real(repo, listed(), verdict, check)

    monkeypatch.setattr(validate, "check_blobs", counting)
    verdict = _verdict(repo, late.cleared)
    late.thread.join()
    assert verdict == expected
    # what the reader cleared after the listing set it aside was not read from git
    assert asked and not [kind for kind in asked if kind in ("record", "state", "link", "series")]
    assert _verdict(repo, Cleared({})) == expected


def test_a_forked_reader_holds_no_pipe_of_its_parent(published: GitRepo, tmp_path: Path, monkeypatch) -> None:
    import select
    import time

    from gitprov.exchange import arriving

    def slow_precheck(data: bytes, *args):
        time.sleep(0.2)  # the reader is still running when the fetch returns
        return precheck(data, *args)

    monkeypatch.setattr(arriving, "precheck", slow_precheck)
    mine = _clone(published, tmp_path / "mine")
    repo = GitRepository.open(str(mine.path))
    read_end, write_end = os.pipe()  # as a caller reading prov's output to its end holds
    try:
        result, forks = _fetch_counting_forks(repo, monkeypatch)
        assert len(forks) == 1 and result.cleared is not None and not result.cleared.finished
        os.close(write_end)
        waiting = select.poll()  # the descriptor may be past select()'s 1,024 in a long test run
        waiting.register(read_end, select.POLLIN | select.POLLHUP)
        assert waiting.poll(1000) and os.read(read_end, 1) == b""  # the end: no copy of the write end in the reader
        assert _verdict(repo, result.cleared) == _verdict(repo, None)
    finally:
        os.close(read_end)


@FORMAT3_CLEARING
def test_a_forked_reader_clears_blobs_when_this_process_holds_many_descriptors(published: GitRepo,
                                                                                 tmp_path: Path) -> None:
    """Its pipes past 1,024 (a long-lived process, a test suite): select() cannot watch
    them, poll() can."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip("the descriptor limit is under 1,200")
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        mine = _clone(published, tmp_path / "mine")
        repo = GitRepository.open(str(mine.path))
        result = exchange.fetch(repo, "origin", check_arriving=True)
        assert result.cleared is not None and len(result.cleared) >= 3 * RUNS
    finally:
        for fd in held:
            os.close(fd)
