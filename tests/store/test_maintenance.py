"""prov's packs and git's maintenance, with the real git binary: past
``prov.autoPackLimit`` packs outside a geometric progression a transaction starts
``git repack --geometric=4 -d`` detached and returns; git rolls prov's packs up with
deltas; prov never rewrites a pack git wrote; ``git gc`` and ``git gc --auto`` work on
a prov repository as on any other and never make it larger; nothing is ever lost."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gitprov
from gitprov.store import gitbin, maintenance, packs
from gitprov.store.config import GitConfig
from gitprov.store.ledger import LEDGER_REF, Ledger
from gitprov.store.packfile import Pack
from gitprov.store.repo import GitRepository
from tests.conftest import GitRepo
from tests.store.test_packs import all_objects

pytestmark = pytest.mark.gitbin


@pytest.fixture
def object_format() -> str:
    return "sha1"


def pack_names(repo: GitRepo) -> set[str]:
    return {p.name for p in (repo.path / ".git" / "objects" / "pack").glob("*.pack")}


def objects_bytes(repo: GitRepo) -> int:
    """What ``du -sb .git/objects`` counts: the bytes of every file under it."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(repo.path / ".git" / "objects") for f in fs)


def wait_for_repack(repo: GitRepo, timeout: float = 60.0) -> None:
    """Until no repack prov started in ``repo`` runs (polled; fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while maintenance.running(str(repo.path / ".git")) is not None:
        assert time.monotonic() < deadline, "the repack prov started did not finish"
        time.sleep(0.05)


def settle(repo: GitRepo, limit: int) -> None:
    """Runs, each once the last repack finished, until no more than
    ``limit`` packs lie outside the geometric progression: packs written while a repack
    ran wait for the next transactions, as after a burst of runs."""
    fmt = GitRepository.open(str(repo.path)).fmt
    for i in range(4 * limit):
        wait_for_repack(repo)
        counts = [Pack(str(p.with_suffix(".idx")), fmt).count for p in (repo.path / ".git" / "objects" / "pack").glob("*.pack")]
        if packs.packs_to_roll_up(counts) <= limit:
            return
        complete_runs(repo, 1, start=1000 + i)
    raise AssertionError(f"more than {limit} packs outside the progression after {4 * limit} transactions")


def complete_runs(repo: GitRepo, n: int, start: int = 0) -> list[str]:
    """``n`` runs (three params, 100 metric points each); their ids."""
    api = gitprov.Repository(repo.path)
    ids = []
    for k in range(start, start + n):
        run = api.start_run(name=f"run-{k}", experiment="packs", params={"lr": 0.1 / (k + 1), "bs": 32, "opt": "adam"},
                            code=False, environment=False)
        for i in range(100):
            run.log_metric("loss", 1.0 / (i + 1 + k), step=i)
        run.end()
        ids.append(run.id)
    return ids


def assert_nothing_lost(repo: GitRepo, ids: list[str]) -> None:
    api = gitprov.Repository(repo.path)  # a fresh reader
    for k, run_id in enumerate(ids):
        run = api.get_run(run_id)
        assert run.status == "finished"
        assert [p.value for p in run.get_metric_history("loss")] == [1.0 / (i + 1 + k) for i in range(100)]
    assert api.verify().ok
    repo.fsck()


def delta_entries(repo: GitRepo, among: set[str] | None = None) -> int:
    """How many entries of the repository's packs are deltas (of ``among``, if given)."""
    found = 0
    for name in pack_names(repo):
        out = repo.git("verify-pack", "-v", str(repo.path / ".git" / "objects" / "pack" / name.replace(".pack", ".idx")))
        found += sum(1 for line in out.splitlines()
                     if len(line.split()) == 7 and (among is None or line.split()[0] in among))
    return found


# -- when a repack is due --------------------------------------------------------------
@pytest.mark.parametrize(("sizes", "rolled"), [
    ([], 0),
    ([50], 0),
    ([3, 12, 48, 192], 0),  # a progression: nothing to do
    ([2000, *[30] * 13], 13),  # prov's small packs under git's large one
    ([30, 40], 2),
    ([3, 6, 12, 24, 48], 5),  # git's usual factor of 2 is not enough here
    ([10, 10, 10, 100], 4),  # the roll-up (30) is more than a quarter of the next pack: that joins too
    ([10, 10, 10, 120], 3),
    ([5, 100, 101, 800], 4),  # 800 is less than four times the roll-up of 206
    ([5, 100, 101, 1000], 3),
])
def test_packs_to_roll_up_counts_what_git_repack_rolls_up(make_repo, sizes: list[int], rolled: int) -> None:
    """The count that decides whether a repack is due, checked against ``git repack
    --geometric=4 -d`` itself (the factor prov starts it with): the packs it removed
    are the ones counted."""
    assert packs.packs_to_roll_up(sizes) == rolled
    repo = make_repo(commits=0)
    git = GitRepository.open(str(repo.path))
    made = []
    for n, size in enumerate(sizes):
        objects = [(git.fmt.hash_object("blob", data), packs.pack_entry("blob", data))
                   for data in (b"pack %d object %d\n" % (n, i) for i in range(size))]
        made.append(Path(packs.write_pack(str(repo.path / ".git/objects/pack"), git.fmt, objects)).with_suffix(".pack").name)
    repo.git("repack", f"--geometric={packs.GEOMETRIC_FACTOR}", "-d", "-q")
    assert len(set(made) - pack_names(repo)) == (rolled if rolled > 1 else 0)  # one pack alone is left as it is


@pytest.mark.parametrize(("config", "limit"), [
    ({}, packs.DEFAULT_AUTO_PACK_LIMIT),
    ({"prov.autopacklimit": ["3"]}, 3),
    ({"prov.autopacklimit": ["1k"]}, 1024),
    ({"prov.autopacklimit": ["0"]}, None),
    ({"prov.autopacklimit": ["many"]}, None),  # git would reject it: nothing is started
    ({"gc.auto": ["0"]}, None),
    ({"gc.autopacklimit": ["0"]}, None),
    ({"gc.autopacklimit": ["-1"]}, None),
    ({"maintenance.auto": ["false"]}, None),
    ({"gc.auto": ["100"], "gc.autopacklimit": ["70"], "maintenance.auto": ["true"]}, packs.DEFAULT_AUTO_PACK_LIMIT),
])
def test_the_limit_and_gits_own_switches(config: dict, limit: int | None) -> None:
    assert packs.auto_pack_limit(GitConfig(config)) == limit


# -- git rolls prov's packs up -----------------------------------------------------------
def test_many_runs_start_gits_repack_and_prov_objects_get_deltas(prov_repo: GitRepo) -> None:
    repo = prov_repo
    repo.git("config", "prov.autoPackLimit", "4")
    ids = complete_runs(repo, 60)
    settle(repo, 4)
    assert (repo.path / ".git" / "prov" / maintenance.LOCK).exists(), "a repack was started"
    assert len(pack_names(repo)) < 15, "git rolled prov's packs up"
    ledger_objects = {line.split()[0] for line in repo.git("rev-list", "--objects", LEDGER_REF).splitlines()}
    assert delta_entries(repo, ledger_objects) > 60, "prov's objects are stored as deltas"
    counts = dict(line.split(": ") for line in repo.git("count-objects", "-v").splitlines())
    assert counts["count"] == "0" and counts["garbage"] == "0"
    assert_nothing_lost(repo, ids)
    # the commit-graph written after the repack: git reads it, and it holds the ledger's commits
    assert (repo.path / ".git" / "objects" / "info" / "commit-graphs").is_dir()
    repo.git("commit-graph", "verify", "--no-progress")


def test_a_pack_git_wrote_is_never_rewritten_by_prov(make_repo) -> None:
    """A pack ``git gc --aggressive`` wrote, with deltas, stays byte for byte through 30
    runs, whether git's repack of prov's packs is off (prov alone never touches it) or
    on (git leaves a pack that large out of the roll-up)."""
    repo = make_repo(commits=0)
    lines = [f"line {i}: {'x' * 60}\n" for i in range(400)]
    stream = []
    for rev in range(600):
        lines[rev * 7 % 400] = f"changed in revision {rev}\n"
        text = "".join(lines).encode()
        stream.append(b"commit refs/heads/main\ncommitter T <t@x> %d +0000\ndata 4\nrev\n" % (1700000000 + rev)
                      + b"M 100644 inline big.txt\ndata %d\n%s\n" % (len(text), text))
    repo.git("fast-import", "--quiet", input=b"".join(stream).decode())
    repo.git("reset", "-q", "--hard", "main")
    repo.git("gc", "--aggressive", "-q")
    [name] = pack_names(repo)
    path = repo.path / ".git" / "objects" / "pack" / name
    before, objects = path.read_bytes(), all_objects(repo)
    assert delta_entries(repo) > 100
    gitprov.init(repo.path, hooks=False)
    repo.git("config", "prov.autoPackLimit", "0")
    ids = complete_runs(repo, 15)
    assert path.read_bytes() == before and len(pack_names(repo)) > 15
    repo.git("config", "prov.autoPackLimit", "3")
    ids += complete_runs(repo, 15, start=15)
    settle(repo, 3)
    assert path.read_bytes() == before, "git's pack is as git wrote it"
    assert len(pack_names(repo)) < 10, "prov's packs were rolled up around it"
    assert objects.items() <= all_objects(repo).items()
    assert_nothing_lost(repo, ids)


# -- git's own maintenance ----------------------------------------------------------------
def test_git_gc_and_gc_auto_fire_as_in_any_repository_and_never_grow_it(prov_repo: GitRepo) -> None:
    """With prov's repack off, packs pile up as in a repository that fetched many times:
    ``git gc --auto`` does nothing below ``gc.autoPackLimit`` and repacks past it; ``git
    gc`` and ``git gc --auto`` never make the objects larger."""
    repo = prov_repo
    repo.git("config", "prov.autoPackLimit", "0")
    repo.git("config", "gc.autoDetach", "false")
    repo.git("config", "gc.autoPackLimit", "20")
    ids = complete_runs(repo, 18)
    size, names = objects_bytes(repo), pack_names(repo)
    repo.git("gc", "--auto", "-q")
    assert pack_names(repo) == names and objects_bytes(repo) == size, "below git's limit gc --auto does nothing"
    ids += complete_runs(repo, 5, start=18)
    assert len(pack_names(repo)) > 20
    size = objects_bytes(repo)
    repo.git("gc", "--auto", "-q")
    assert len(pack_names(repo)) == 1, "past git's limit, gc --auto repacked"
    assert objects_bytes(repo) < size / 2
    ids += complete_runs(repo, 5, start=23)
    size = objects_bytes(repo)
    repo.git("gc", "-q")
    assert objects_bytes(repo) <= size
    assert_nothing_lost(repo, ids)


@pytest.mark.format3  # transactions of made-up runs' paths: format 3's tree
@pytest.mark.parametrize("switch", ["gc.auto", "gc.autoPackLimit", "maintenance.auto", "prov.autoPackLimit"])
def test_nothing_is_started_when_automatic_maintenance_is_off(prov_repo: GitRepo, monkeypatch, switch: str) -> None:
    repo = prov_repo
    repo.git("config", "prov.autoPackLimit", "2")
    repo.git("config", switch, "false" if switch == "maintenance.auto" else "0")
    started = []
    monkeypatch.setattr(gitbin, "detach", lambda *a, **kw: started.append(a))
    ledger = Ledger(GitRepository.open(str(repo.path)))
    for i in range(20):
        ledger.apply({f"runs/{i:02x}/r{i}/state": b"%d" % i}, f"t{i}")
    assert started == []
    assert not (repo.path / ".git" / "prov" / maintenance.LOCK).exists()
    assert len(pack_names(repo)) >= 20


def slow_git(tmp_path: Path, seconds: float, *, after: bool = False) -> tuple[Path, Path]:
    """A ``git`` on ``PATH`` that records each ``repack`` it is asked for (its parent's
    pid: the process prov started) and sleeps ``seconds`` before it (``after``: after
    it), running the real git."""
    real = gitbin.output(["--exec-path"])[1].decode().strip() + "/git"
    assert os.access(real, os.X_OK)
    folder, record = tmp_path / "slow-git", tmp_path / "repacks"
    folder.mkdir()
    script = folder / "git"
    if after:
        body = (f'case " $* " in *" repack "*) echo $PPID >> "{record}"; "{real}" "$@" || exit $?; '
                f'sleep {seconds}; exit 0;; esac\nexec "{real}" "$@"\n')
    else:
        body = f'case " $* " in *" repack "*) echo $PPID >> "{record}"; sleep {seconds};; esac\nexec "{real}" "$@"\n'
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder, record


@pytest.mark.format3  # transactions of made-up runs' paths: format 3's tree
def test_a_transaction_never_waits_for_the_repack_and_starts_one_at_a_time(prov_repo: GitRepo, tmp_path, monkeypatch) -> None:
    repo = prov_repo
    repo.git("config", "prov.autoPackLimit", "2")
    folder, record = slow_git(tmp_path, 3)
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{path}")
    ledger = Ledger(GitRepository.open(str(repo.path)))
    common = str(repo.path / ".git")
    slowest = 0.0
    for i in range(12):
        t = time.monotonic()
        ledger.apply({f"runs/{i:02x}/r{i}/state": b"%d" % i}, f"t{i}")
        slowest = max(slowest, time.monotonic() - t)
    assert slowest < 1.5, "a transaction waited for git"
    pid = maintenance.running(common)
    assert pid is not None, "the repack is still running after the transactions returned"
    assert os.getsid(pid) == pid != os.getsid(0), "in a session of its own"
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10), "nicer than prov"
    assert set(record.read_text().split()) == {str(pid)}, "one repack at a time: all from the one prov started"
    monkeypatch.setenv("PATH", path)
    settle(repo, 2)
    assert len(pack_names(repo)) < 12
    assert len(ledger.list_dir("runs")) == 12
    repo.fsck()


@pytest.mark.format3  # transactions of made-up runs' paths: format 3's tree
def test_packs_written_while_the_repack_ran_are_rolled_up_without_another_transaction(
        prov_repo: GitRepo, tmp_path, monkeypatch) -> None:
    repo = prov_repo
    repo.git("config", "prov.autoPackLimit", "2")
    folder, record = slow_git(tmp_path, 2, after=True)  # each repack holds on after its work
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    ledger = Ledger(GitRepository.open(str(repo.path)))
    for i in range(4):  # the repack starts after the 3rd: the 4th meets it
        ledger.apply({f"runs/{i:02x}/r{i}/state": b"%d" % i}, f"t{i}")
    pid = maintenance.running(str(repo.path / ".git"))
    assert pid is not None
    time.sleep(0.5)  # the first round's git repack is done; it lingers
    for i in range(4, 10):  # these wait for the first round to end
        ledger.apply({f"runs/{i:02x}/r{i}/state": b"%d" % i}, f"t{i}")
    assert len(pack_names(repo)) > 2
    wait_for_repack(repo)  # no transaction since
    assert len(record.read_text().split()) >= 2, "the loop ran the repack again"
    assert len(pack_names(repo)) <= 2
    assert len(ledger.list_dir("runs")) == 10
    repo.fsck()


@pytest.mark.format3  # transactions of made-up runs' paths: format 3's tree
def test_a_repack_that_cannot_start_is_logged_and_the_transaction_succeeds(prov_repo: GitRepo, monkeypatch) -> None:
    repo = prov_repo
    repo.git("config", "prov.autoPackLimit", "2")
    ledger = Ledger(GitRepository.open(str(repo.path)))
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))  # no git on PATH
    for i in range(6):
        ledger.apply({f"runs/{i:02x}/r{i}/state": b"%d" % i}, f"t{i}")
    monkeypatch.setenv("PATH", path)
    log = (repo.path / ".git" / "prov" / maintenance.LOG).read_text()
    assert "prov: git repack not started: cannot run git" in log
    assert not (repo.path / ".git" / "prov" / maintenance.LOCK).exists()
    assert len(ledger.list_dir("runs")) == 6


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["run", "commit", "gc", "gc --auto", "repack", "wait"]), min_size=4, max_size=14))
def test_runs_commits_gc_and_repacks_in_any_order_lose_nothing(make_repo, steps: list[str]) -> None:
    """Runs, user commits, ``git gc``, ``git gc --auto`` (with a low pack limit), a
    manual geometric repack and prov's own repacks (limit 2, left running while the
    next step goes on) interleaved: every run reads back, ``prov verify`` and ``git
    fsck --strict`` pass. A git repack or gc that meets prov's running repack may fail,
    as two repacks at once may in any repository; it loses nothing."""
    repo = make_repo()
    repo.git("config", "prov.autoPackLimit", "2")
    repo.git("config", "gc.autoPackLimit", "4")
    repo.git("config", "gc.autoDetach", "false")
    gitprov.init(repo.path, hooks=False)
    ids: list[str] = []
    for n, step in enumerate(steps):
        if step == "run":
            ids += complete_runs(repo, 2, start=len(ids))
        elif step == "commit":
            repo.commit(f"user {n}")
        elif step == "wait":
            wait_for_repack(repo)
        else:
            racing = maintenance.running(str(repo.path / ".git")) is not None
            command = ["repack", "--geometric=2", "-d"] if step == "repack" else step.split()
            repo.git(*command, "-q", check=not racing)
    wait_for_repack(repo)
    assert_nothing_lost(repo, ids)


def test_a_write_after_a_repack_pruned_its_loose_folder_recreates_it(make_repo) -> None:
    """A repack (prov's own, detached, or ``git gc``) packs the loose objects and removes
    their emptied folders while a long-lived process keeps writing (a ``prov push`` that
    retries for minutes): the next object of that folder is written all the same."""
    repo = make_repo()
    git = GitRepository.open(str(repo.path))
    first = git.odb.write("blob", b"first")
    repo.git("update-ref", "refs/test/first", first)  # reachable, so repacked
    repo.git("repack", "-q", "-d")  # packs it and prunes .git/objects/<first[:2]>/
    folder = repo.path / ".git" / "objects" / first[:2]
    assert not folder.exists()
    n = 0
    while git.fmt.hash_object("blob", b"more %d" % n)[:2] != first[:2]:
        n += 1
    again = git.odb.write("blob", b"more %d" % n)  # the folder was known to exist: it is made again
    assert again[:2] == first[:2] and (folder / again[2:]).exists()
    assert repo.git("cat-file", "-p", again) == f"more {n}"
