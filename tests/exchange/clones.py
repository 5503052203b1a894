"""Helpers shared by the exchange tests: clones of a real remote, runs made in them, and
what git itself reads back from their prov refs."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from gitprov.api import Repository
from tests.conftest import GitRepo, run_git, run_prov

LEDGER = "refs/prov/ledger"
NOTES = "refs/notes/prov"


def formats_in_turn(cases: Iterable[str], first: str = "sha1") -> list[tuple[str, str]]:
    """``(object format, case)`` for a ``parametrize`` of many cases of one check: each
    case once, SHA-1 and SHA-256 in turn from ``first`` (what the check refuses does not
    depend on the object format; each format still meets half of them, at half the cost
    of both; a second layout of the same cases starts with the other format)."""
    other = "sha256" if first == "sha1" else "sha1"
    return [(first if i % 2 == 0 else other, case) for i, case in enumerate(sorted(cases))]


def make_run(path: Path, name: str, **metrics: float) -> str:
    """A finished run made with the Python API in the clone at ``path``."""
    run = Repository(path).start_run(name=name, experiment="exchange")
    for key, value in metrics.items():
        run.log_metric(key, value)
    run.end()
    return run.id


def clone(source: str | GitRepo, path: Path) -> GitRepo:
    """``git clone`` of a URL or a local repository + ``prov init`` (no hooks, no pull)."""
    url = str(source.path) if isinstance(source, GitRepo) else source
    run_git(path.parent, "clone", "-q", url, str(path))
    proc = run_prov(path, "init", "--no-hooks", "--no-pull")
    assert proc.returncode == 0, proc.stderr
    return GitRepo(path)


def prov_ok(path: Path, *args: str) -> subprocess.CompletedProcess:
    proc = run_prov(path, *args)
    assert proc.returncode == 0, f"prov {' '.join(args)} in {path.name} failed ({proc.returncode}): {proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def ledger_tree(repo: GitRepo | Path) -> str:
    return run_git(repo.path if isinstance(repo, GitRepo) else repo, "rev-parse", f"{LEDGER}^{{tree}}").strip()


def notes_content(repo: GitRepo | Path) -> dict[str, bytes]:
    """Annotated commit -> note bytes, read with git itself."""
    cwd = repo.path if isinstance(repo, GitRepo) else repo
    listing = run_git(cwd, "notes", f"--ref={NOTES}", "list")
    pairs = [line.split() for line in listing.splitlines() if line.strip()]
    out = {}
    for blob, commit in pairs:
        out[commit] = subprocess.run(["git", "cat-file", "blob", blob], cwd=cwd, capture_output=True,
                                     check=True).stdout
    return out


def ledger_run_ids(repo: GitRepo | Path) -> set[str]:
    """Run ids in the ledger, read with git itself: format 3's tree (``runs/<xx>/<id>``),
    or format 4's log (each run blob ``<id>`` or ``<id>^<commit>`` some commit wrote, a
    checkpoint's ``<xx>/…`` too)."""
    cwd = repo.path if isinstance(repo, GitRepo) else repo
    if b'"layout"' in subprocess.run(["git", "cat-file", "blob", f"{LEDGER}:format"], cwd=cwd,
                                     capture_output=True).stdout:
        names = {line.rsplit("/", 1)[-1] for tree in run_git(cwd, "log", "--format=%T", LEDGER).split()
                 for line in run_git(cwd, "ls-tree", "-r", "--name-only", tree).splitlines()}
        return {m[1] for name in names if (m := re.fullmatch(r"([0-9a-f]{40}|[0-9a-f]{64})(\^[0-9a-f]+)?", name))}
    out = run_git(cwd, "ls-tree", "-r", "-d", "--name-only", LEDGER, "runs/")
    return {p.split("/")[2] for p in out.splitlines() if p.count("/") == 2}


def listed_run_ids(path: Path) -> set[str]:
    """Run ids ``prov runs --json`` lists."""
    return {r["id"] for r in json.loads(prov_ok(path, "runs", "--json").stdout)}


def prov_refs(repo: GitRepo) -> dict[str, str]:
    out = repo.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/prov", "refs/notes", "refs/prov-remotes")
    return dict(line.split() for line in out.splitlines())


def assert_valid(repo: GitRepo) -> None:
    """``git fsck --strict`` clean and ``prov verify`` ok."""
    repo.fsck()
    proc = run_prov(repo.path, "verify")
    assert proc.returncode == 0, f"prov verify in {repo.path.name}: {proc.stdout}{proc.stderr}"


def assert_converged(clones: list[GitRepo], expected_runs: set[str]) -> None:
    trees = {c.path.name: ledger_tree(c) for c in clones}
    assert len(set(trees.values())) == 1, trees
    notes = [notes_content(c) for c in clones]
    assert all(n == notes[0] for n in notes[1:])
    for c in clones:
        assert ledger_run_ids(c) == expected_runs, c.path.name


def seed_bare(make_repo: Callable[..., GitRepo], object_format: str = "sha1") -> GitRepo:
    """A bare repository holding one commit on ``main``."""
    bare = make_repo(object_format, bare=True)
    seed = make_repo(object_format)
    seed.git("push", "-q", str(bare.path), "HEAD:refs/heads/main")
    return bare
