"""Provenance across history rewrites git's hooks do not see, and against garbage collection.

- ``relink``: a squash merge (or ``git filter-repo``, BFG…) replaces commits without a
  ``post-rewrite`` hook. Relinking copies each old commit's note lines (its capture
  and ``run`` links) onto the new commit, as ``notes.rewriteMode=cat_sort_uniq`` does
  for amend and rebase, and records a ``rewrite`` link on both.
- ``keep``: ``refs/prov/keep`` is a chain of commits whose extra parents are the
  commits runs pin, so ``git gc`` never prunes the code a run was made with, even after
  its branch is deleted. It is local (never pushed); ``prov.keep=false`` turns it off.
- ``unreachable_runs``: runs whose commit no branch, tag or remote-tracking branch reaches.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import UsageError
from .store.note_queue import settle
from .store.objects import encode_commit
from .store.transaction import identity_line

if TYPE_CHECKING:
    from .api import Repository

__all__ = ["KEEP_REF", "RelinkResult", "keep_pinned", "parse_commit_map", "range_pairs", "relink", "rewrite_link", "unreachable_runs"]

KEEP_REF = "refs/prov/keep"
#: Parents per keep commit (git handles octopus commits of any size; keep them readable).
_KEEP_BATCH = 500
_ZERO = frozenset("0")


@dataclass
class RelinkResult:
    new: list[str] = field(default_factory=list)
    old: list[str] = field(default_factory=list)
    runs: int = 0  # run links copied onto new commits


def rewrite_link(old: str, new: str, how: str) -> bytes:
    """The canonical note line saying ``new`` replaced ``old``."""
    from . import codec
    from .clock import utc_timestamp
    from .model import RewriteLink
    from .schema import current_pin

    return codec.encode(RewriteLink(old=old, new=new, how=how, recorded_at=utc_timestamp(), schema=current_pin()))


def parse_commit_map(text: str, is_id) -> list[tuple[str, str]]:
    """``old new`` pairs from a commit map (``git filter-repo``'s ``commit-map``, BFG's
    ``object-id-map.old-new.txt``, or any ``OLD NEW`` lines). A header line ``old new``,
    blank lines and ``#`` comments are skipped; a new id of zeros (a dropped commit) too."""
    pairs = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.lower().split() == ["old", "new"]:
            continue
        fields = line.split()
        if len(fields) != 2 or not all(is_id(f.lower()) for f in fields):
            raise UsageError(f"commit map line {number}: expected 'OLD NEW' full commit ids, got {raw.strip()[:80]!r}")
        old, new = fields[0].lower(), fields[1].lower()
        if set(new) != _ZERO and old != new:
            pairs.append((old, new))
    if not pairs:
        raise UsageError("the commit map holds no 'OLD NEW' pairs")
    return pairs


def range_pairs(repo: Repository, old_range: str, new: str) -> list[tuple[str, str]]:
    """``(old, new)`` for every commit in ``old_range``: ``A..B`` or ``^A B`` as git
    means them; a single commit is that commit alone (not its whole history)."""
    target = repo.git.resolve(new)
    if ".." not in old_range and not old_range.startswith("^") and len(old_range.split()) == 1:
        olds = [c for c in [repo.git.resolve(old_range)] if c != target]
    else:
        include, exclude = repo.git.resolve_range(old_range)
        olds = [c for c in repo.git.walk(include, exclude) if c != target]
    if not olds:
        raise UsageError(f"{old_range!r} names no commits other than {new!r}")
    return [(old, target) for old in olds]


def relink(repo: Repository, pairs: list[tuple[str, str]], how: str) -> RelinkResult:
    """Link each new commit to the provenance of the old commits it replaced."""
    for _, new in pairs:
        if not repo.git.odb.contains(new):
            raise UsageError(f"new commit {new[:12]} is not in this repository; fetch it first")
    settle(repo.notes)  # run links waiting in a note queue are copied too
    tip = repo.notes.tip()
    add: dict[str, list[bytes]] = {}
    result = RelinkResult()
    for old, new in pairs:
        link = rewrite_link(old, new, how)
        copied = repo.notes.read(old, tip)
        result.runs += sum(1 for line in copied if b'"kind":"run"' in line)
        add.setdefault(new, []).extend(copied)
        add[new].append(link)
        add.setdefault(old, []).append(link)
    repo.notes.add(add, f"prov: relink {len(pairs)} commit(s) ({how})")
    result.new = sorted({n for _, n in pairs})
    result.old = sorted({o for o, _ in pairs})
    keep_pinned(repo, [o for o, _ in pairs if repo.git.odb.contains(o)])
    return result


def _git(repo: Repository, *args: str) -> str:
    proc = subprocess.run(["git", "--git-dir", repo.git.git_dir or ".", *args], capture_output=True, text=True, check=False)
    return proc.stdout if proc.returncode == 0 else ""


def kept_commits(repo: Repository) -> set[str]:
    """Every commit ``refs/prov/keep`` reaches."""
    tip = repo.git.refs.read(KEEP_REF)
    return set(_git(repo, "rev-list", tip).split()) if tip else set()


def keep_enabled(repo: Repository) -> bool:
    value = (repo.git.config.get("prov.keep") or "true").strip().lower()
    return value not in ("false", "no", "off", "0")


def pinned_commits(repo: Repository) -> set[str]:
    """Commits that runs were made against (from the run index)."""
    db = repo.index().connection()
    return {row[0] for row in db.execute("SELECT DISTINCT commit_id FROM runs WHERE commit_id IS NOT NULL AND commit_id != ''")}


def keep_pinned(repo: Repository, commits: list[str] | None = None) -> list[str]:
    """Add commits (default: every commit a run pins) to ``refs/prov/keep``; returns
    those newly kept. Commits missing from this clone (shallow, never fetched) are skipped."""
    if not keep_enabled(repo):
        return []
    wanted = set(commits) if commits is not None else pinned_commits(repo)
    wanted = {c for c in wanted if c and repo.git.fmt.is_id(c) and repo.git.odb.contains(c)}
    if not wanted:
        return []
    new = sorted(wanted - kept_commits(repo))
    if not new:
        return []
    empty_tree = repo.git.odb.write("tree", b"")
    for _attempt in range(100):
        tip = repo.git.refs.read(KEEP_REF)
        head = tip
        for start in range(0, len(new), _KEEP_BATCH):
            batch = new[start:start + _KEEP_BATCH]
            parents = ([head] if head else []) + batch
            body = encode_commit(empty_tree, parents, identity_line(repo.git), f"prov: keep {len(batch)} commit(s) runs pin")
            head = repo.git.odb.write("commit", body)
        if repo.git.refs.compare_and_swap(KEEP_REF, tip, head):
            return new
    return []


def unreachable_runs(repo: Repository) -> list[tuple[str, str]]:
    """``(run id, commit)`` for runs whose commit neither HEAD nor a branch, tag or remote
    branch reaches."""
    pinned: dict[str, list[str]] = {}
    db = repo.index().connection()
    for run_id, commit in db.execute("SELECT id, commit_id FROM runs WHERE commit_id IS NOT NULL AND commit_id != ''"):
        pinned.setdefault(commit, []).append(run_id)
    if not pinned:
        return []
    heads = ["HEAD"] if repo.git.refs.read("HEAD") else []
    reachable = set(_git(repo, "rev-list", "--branches", "--tags", "--remotes", *heads).split())
    return sorted((run, commit) for commit, runs in pinned.items() if commit not in reachable for run in runs)
