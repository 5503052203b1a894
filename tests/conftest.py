"""Shared fixtures. Every test runs with git config isolated from the machine:
``HOME`` is a fresh directory, ``GIT_CONFIG_NOSYSTEM=1``, a fixed identity, and no
repack started behind a test's back (``prov.autoPackLimit = 0``). Hypothesis runs
without deadlines."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

# No per-example deadline: a deadline is a timed assertion, and these machines are
# shared and noisy (a summary test once missed the default 200 ms under load 8).
settings.register_profile("gitprov", deadline=None)
settings.load_profile("gitprov")

#: the project checkout (tests read docs/, the lexicon, pyproject.toml from it)
ROOT = Path(__file__).resolve().parents[1]
# the benchmarks' data generators (synthetic_ledger, _harness) are shared with tests
sys.path.insert(0, str(ROOT / "benchmarks"))

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


@pytest.fixture(autouse=True, scope="session")
def memory_twin_oracle() -> None:
    """Every object a memory twin stores is checked by dulwich (tests/oracles.py)."""
    from gitprov.store.odb import MemoryObjectDatabase
    from tests.oracles import dulwich_check

    MemoryObjectDatabase.write_check = staticmethod(dulwich_check)


@pytest.fixture(autouse=True)
def ledger_layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The layout new ledgers get: the default (format 4's log), or format 3's tree for
    tests marked ``format3`` (they read format 3's paths with git, or test what format 3
    does)."""
    if request.node.get_closest_marker("format3"):
        monkeypatch.setenv("GIT_PROV_LEDGER_LAYOUT", "tree")
        return "tree"
    monkeypatch.delenv("GIT_PROV_LEDGER_LAYOUT", raising=False)
    return "log"


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME with a minimal git config; no system or user config leaks in."""
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
        # no background git repack racing a test's own checks (tests/store/test_maintenance.py turns it on)
        "[prov]\n\tautoPackLimit = 0\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "PROV_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)
    return home


def run_git(cwd: Path | str, *args: str, check: bool = True, input: str | None = None, env: dict | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, input=input,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


class GitRepo:
    """A real repository made with the git binary, for tests."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str, **kw) -> str:
        return run_git(self.path, *args, **kw)

    def commit(self, message: str = "change", files: dict[str, str] | None = None) -> str:
        for name, text in (files or {f"file-{message}.txt": message}).items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            self.git("add", name)
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def fsck(self) -> None:
        self.git("fsck", "--strict", "--no-progress")


def unpack_all(repo_path: Path) -> None:
    """Turn every pack of the repository into loose objects (prov writes one pack per
    transaction; tests that damage a single object file need it loose)."""
    for pack in (repo_path / ".git" / "objects" / "pack").glob("*.pack"):
        data = pack.read_bytes()
        pack.with_suffix(".idx").unlink()
        pack.unlink()
        subprocess.run(["git", "unpack-objects", "-q"], cwd=repo_path, input=data, check=True)


@pytest.fixture(params=["sha1", "sha256"])
def object_format(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., GitRepo]:
    counter = iter(range(1000))

    def make(object_format: str = "sha1", commits: int = 1, bare: bool = False) -> GitRepo:
        path = tmp_path / f"repo{next(counter)}"
        args = ["init", "-q", f"--object-format={object_format}"]
        run_git(tmp_path, *args, *(["--bare"] if bare else []), str(path))
        repo = GitRepo(path)
        for i in range(0 if bare else commits):
            repo.commit(f"c{i}")
        return repo

    return make


@pytest.fixture
def repo(make_repo: Callable[..., GitRepo], object_format: str) -> GitRepo:
    """A real repository (SHA-1 and SHA-256) with one commit."""
    return make_repo(object_format)


@pytest.fixture
def prov_repo(repo: GitRepo) -> GitRepo:
    """``repo`` after ``prov init`` without hooks (a module that wants one object format
    overrides the ``object_format`` fixture)."""
    import gitprov

    gitprov.init(repo.path, hooks=False)
    return repo


@pytest.fixture
def memory_store(object_format: str):
    """A ``ProvStore`` over an in-memory repository (no disk, no git binary)."""
    from gitprov.store.objects import SHA1, SHA256
    from gitprov.store.prov_store import ProvStore

    return ProvStore.memory(SHA1 if object_format == "sha1" else SHA256)


def run_prov(cwd: Path | str, *args: str, env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``prov`` console script in a real subprocess."""
    exe = Path(sys.executable).with_name("prov")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "gitprov.cli.entry"]
    return subprocess.run(
        [*cmd, *args], cwd=cwd, capture_output=True, text=True, input=input,
        env={**os.environ, **(env or {})},
    )
