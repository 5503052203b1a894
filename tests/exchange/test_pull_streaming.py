"""Pulls that cost what git costs: validation streamed through git (sizes before
contents, artifacts never read), bounded memory with a big artifact, progress on a
terminal only, and the ``--json`` summaries of fetch, pull and push."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gitprov import codec
from gitprov.api import Repository
from gitprov.errors import RemoteDataError
from gitprov.exchange import blobs, validate
from gitprov.model import RunRecord
from gitprov.store import catfile
from gitprov.store.ledger import LEDGER_REF, run_dir, run_link_path
from gitprov.store.trees import edit_tree, read_path
from tests.conftest import GitRepo, run_prov
from tests.exchange.clones import clone, formats_in_turn, make_run, prov_ok, prov_refs, seed_bare
from tests.exchange.test_remote import _forge, assert_forgery_rejected

#: format 3's tree: the module forges remote ledgers in format 3's terms: paths, sizes and links of its tree
pytestmark = pytest.mark.format3


@pytest.fixture
def remote(make_repo, object_format) -> GitRepo:
    return seed_bare(make_repo, object_format)


def _local(repo: GitRepo) -> dict[str, str]:
    return {k: v for k, v in prov_refs(repo).items() if not k.startswith("refs/prov-remotes/")}


def _record_of(odb, tree: str, run_id: str) -> RunRecord:
    return codec.decode(odb.read_typed(run_id, "blob"), RunRecord)


# -- what the streamed validation refuses, beyond tests/exchange/test_remote.py -------------
FORGERIES = {
    # a run directory already merged loses its state: the directory changed, so it is checked
    "missing state": lambda run_id: lambda odb, tree: edit_tree(odb, tree, {f"{run_dir(run_id)}/state": None}),
    "must be a directory": lambda run_id: lambda odb, tree: edit_tree(
        odb, tree, {f"{run_dir(run_id)}/series": b"not a directory"}),
    "ledger format marker": lambda run_id: lambda odb, tree: edit_tree(odb, tree, {"format": b"\xff not json"}),
    "not a commits/": lambda run_id: lambda odb, tree: edit_tree(odb, tree, {"commits/zz/evil": b"x"}),
    # the run's listing under a commit must be its record: another blob is refused by name
    "not the record of run": lambda run_id: lambda odb, tree: edit_tree(
        odb, tree, {run_link_path(_record_of(odb, tree, run_id).code.commit, run_id): b"{}"}),
}


@pytest.mark.parametrize(("object_format", "what"), formats_in_turn(FORGERIES))
def test_more_malformed_remote_ledgers_are_rejected(remote: GitRepo, tmp_path: Path, what: str) -> None:
    assert_forgery_rejected(remote, tmp_path, FORGERIES[what], what, pull_first=True)


def test_a_run_listed_under_another_commit_than_its_own_is_rejected(remote: GitRepo, tmp_path: Path) -> None:
    evil = clone(remote, tmp_path / "evil")
    run_id = make_run(evil.path, "evil")
    prov_ok(evil.path, "push")
    other = "1" * len(run_id)
    _forge(evil, lambda odb, tree: edit_tree(odb, tree, {run_link_path(other, run_id): run_id}))
    victim = clone(remote, tmp_path / "victim")
    proc = run_prov(victim.path, "pull")
    assert proc.returncode == 5 and f"not {other[:12]}" in proc.stderr, proc.stderr


# -- sizes before contents ------------------------------------------------------------------
class _Spy:
    """Records the object names prov asks ``git cat-file --batch`` (contents) and
    ``--batch-check`` (sizes) for."""

    def __init__(self, monkeypatch) -> None:
        self.read: list[str] = []
        self.sized: list[str] = []
        real = catfile.start

        def start(repo, *, check=False, buffered=True, config=()):
            proc = real(repo, check=check, buffered=buffered, config=config)
            proc.stdin = _Tee(proc.stdin, self.sized if check else self.read)
            return proc

        monkeypatch.setattr(catfile, "start", start)


class _Tee:
    def __init__(self, pipe, seen: list[str]) -> None:
        self.pipe, self.seen = pipe, seen

    def write(self, data: bytes) -> int:
        self.seen.extend(data.decode().split())
        return self.pipe.write(data)

    def close(self) -> None:
        self.pipe.close()

    def __getattr__(self, name):
        return getattr(self.pipe, name)


def test_an_oversized_state_is_rejected_by_its_size_without_being_decoded(remote: GitRepo, tmp_path: Path,
                                                                           monkeypatch) -> None:
    a = clone(remote, tmp_path / "a")
    run_id = make_run(a.path, "big", loss=1.0)
    prov_ok(a.path, "push")
    b = clone(remote, tmp_path / "b")
    git = Repository(a.path).git
    state = read_path(git.odb, git.read_commit(git.refs.read(LEDGER_REF)).tree, f"{run_dir(run_id)}/state").oid
    spy = _Spy(monkeypatch)
    checked: list[str] = []
    content = validate._LedgerCheck.content
    monkeypatch.setattr(validate._LedgerCheck, "content",
                        lambda self, job, data: (checked.append(job.oid), content(self, job, data))[1])
    monkeypatch.setitem(validate.LIMITS, "state", 10)
    before = _local(b)
    with pytest.raises(RemoteDataError, match="more than the 10 accepted"):
        Repository(b.path).pull()
    # its size came first, in git's answer: the content was passed over, never held or decoded ...
    assert state in spy.read and state not in checked
    assert run_id in checked  # ... the record's was
    assert _local(b) == before


def test_a_blob_over_its_limit_is_passed_over_in_pieces(tmp_path: Path) -> None:
    """What follows an oversized answer is still read in step (the pieces add up)."""
    import io

    stream = io.BytesIO(b"x" * (3 * blobs._SKIP + 5) + b"\nnext")
    assert blobs._pass_over(stream.read, 3 * blobs._SKIP + 6)
    assert stream.read() == b"next"
    assert not blobs._pass_over(io.BytesIO(b"short").read, 10)


def test_artifacts_are_checked_by_size_and_never_read(remote: GitRepo, tmp_path: Path, monkeypatch) -> None:
    a = clone(remote, tmp_path / "a")
    run_id = make_run(a.path, "with artifact")
    artifact = Repository(a.path).git.odb.write("blob", b"weights" * 1000)
    _forge(a, lambda odb, tree: edit_tree(odb, tree, {f"{run_dir(run_id)}/artifacts/model.pt": artifact}))
    b = clone(remote, tmp_path / "b")
    spy = _Spy(monkeypatch)
    result = Repository(b.path).pull()
    assert result.runs_added == [run_id] and result.runs_checked == 1
    assert artifact in spy.sized and artifact not in spy.read
    c = clone(remote, tmp_path / "c")
    monkeypatch.setitem(validate.LIMITS, "artifact", 6999)
    with pytest.raises(RemoteDataError, match=r"artifacts/model\.pt: 7,000 bytes, more than the 6,999 accepted"):
        Repository(c.path).pull()


_PEAK = """
import sys
from gitprov.api import Repository
import resource
result = Repository(sys.argv[1]).pull()
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB: git fetch, index-pack, cat-file
print(len(result.runs_added), int(peak.split()[1]) // 1024, children // 1024)
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from /proc")
def test_a_pull_bringing_a_big_artifact_stays_in_bounded_memory(remote: GitRepo, tmp_path: Path) -> None:
    size = 192 << 20
    a = clone(remote, tmp_path / "a")
    run_id = make_run(a.path, "big artifact")
    # a 192 MiB blob streamed into git (zeros: the pack stays small, the blob does not)
    with subprocess.Popen(["git", "hash-object", "-w", "--stdin"], cwd=a.path, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as proc:
        zeros = bytes(1 << 20)
        for _ in range(size >> 20):
            proc.stdin.write(zeros)
        blob = proc.communicate()[0].decode().strip()
    _forge(a, lambda odb, tree: edit_tree(odb, tree, {f"{run_dir(run_id)}/artifacts/model.pt": blob}))
    # a server keeps what it receives in packs (a small push is unpacked loose, and a loose
    # blob is read whole by the server's pack-objects: over file:// that is a child here)
    remote.git("repack", "-adq")
    b = clone(f"file://{remote.path}", tmp_path / "b")  # the artifact is fetched, not hard-linked
    out = subprocess.run([sys.executable, "-c", _PEAK, str(b.path)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    added, peak_mib, git_mib = map(int, out.stdout.split())
    assert added == 1
    assert peak_mib < 120, f"the pull's process peaked at {peak_mib} MiB with a {size >> 20} MiB artifact"
    # git's index-pack streams the artifact instead of holding it (core.bigFileThreshold)
    assert git_mib < 120, f"a git process of the pull peaked at {git_mib} MiB with a {size >> 20} MiB artifact"


# -- progress ------------------------------------------------------------------------------
def _on_a_terminal(cwd: Path, *args: str) -> tuple[int, str]:
    """Run prov with stderr on a pseudo-terminal; its exit status and what the terminal got."""
    exe = Path(sys.executable).with_name("prov")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "gitprov.cli.entry"]
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen([*cmd, *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=secondary)
        os.close(secondary)
        seen = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal is closed once prov exits
                break
            if not chunk:
                break
            seen.append(chunk)
        proc.stdout.read()
        proc.stdout.close()
        return proc.wait(), b"".join(seen).decode("utf-8", "replace")
    finally:
        os.close(primary)


def test_pull_shows_progress_on_a_terminal_and_nothing_when_piped(remote: GitRepo, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    for i in range(3):
        make_run(a.path, f"r{i}", loss=float(i))
    prov_ok(a.path, "push")
    b = clone(f"file://{remote.path}", tmp_path / "b")  # not a local clone: its objects are fetched
    status, terminal = _on_a_terminal(b.path, "pull")
    assert status == 0, terminal
    assert "prov: checking runs: 3, done." in terminal
    assert re.search(r"prov: merging refs/prov/ledger: 3 runs added \((fast-forward|merged)\), done\.", terminal)
    assert "remote: Total" in terminal  # git's own progress, passed through
    assert str(remote.path) not in terminal  # not git's "From URL" line
    c = clone(f"file://{remote.path}", tmp_path / "c")
    piped = prov_ok(c.path, "pull")
    assert piped.stderr == ""
    assert "3 new run(s)" in piped.stdout


# -- --json -----------------------------------------------------------------------------------
def test_json_summaries_of_fetch_pull_and_push(remote: GitRepo, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    runs = {make_run(a.path, f"r{i}", loss=float(i)) for i in range(2)}
    pushed = json.loads(prov_ok(a.path, "push", "--json").stdout)
    assert {o["ref"] for o in pushed["pushed"]} == {"refs/prov/ledger", "refs/notes/prov"}
    assert isinstance(pushed["elapsed"], float) and pushed["elapsed"] >= 0
    b = clone(f"file://{remote.path}", tmp_path / "b")
    fetched = json.loads(prov_ok(b.path, "fetch", "--json").stdout)
    assert fetched["merged"] == [] and fetched["runs_added"] == 0
    assert [m["phase"] for m in fetched["refs_moved"]] == ["fetched", "fetched"]
    assert fetched["objects_received"] > 0
    pulled = json.loads(prov_ok(b.path, "pull", "--json").stdout)
    assert pulled["runs_added"] == 2 and set(pulled["run_ids_added"]) == runs
    assert pulled["runs_checked"] == 2 and pulled["notes_checked"] == 1
    assert {(m["phase"], m["ref"]) for m in pulled["refs_moved"]} == {
        ("merged", "refs/prov/ledger"), ("merged", "refs/notes/prov")}
    assert all(m["before"] != m["after"] for m in pulled["refs_moved"])
    assert pulled["objects_received"] is None  # the fetch before had brought everything
    assert isinstance(pulled["elapsed"], float)
    again = json.loads(prov_ok(b.path, "pull", "--json").stdout)
    assert again["refs_moved"] == [] and again["runs_added"] == 0 and again["runs_checked"] == 0
