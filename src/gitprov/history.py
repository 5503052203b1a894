"""Provenance across history rewrites git's hooks do not see, and against garbage collection.

- ``relink``: a squash merge (or ``git filter-store``, BFG…) replaces commits without a
  ``post-rewrite`` hook. Relinking copies each old commit's note lines (its capture
  and ``run`` links) onto the new commit, as ``notes.rewriteMode=cat_sort_uniq`` does
  for amend and rebase, and records a ``rewrite`` link on both.
- ``keep``: ``refs/prov/keep`` is a chain of commits whose extra parents are the
  commits runs pin, so ``git gc`` never prunes the code a run was made with, even after
  its branch is deleted. It is local (never pushed); ``prov.keep=false`` turns it off.
- ``unreachable_runs``: runs whose commit no branch, tag or remote-tracking branch reaches;
  ``pending_relinks``: those of them no rewrite link carried on (``prov status``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import DataError, UsageError, WriteError
from .store.prov_store import ProvStore
from .store.transaction import commit_object

__all__ = ["KEEP_REF", "RelinkResult", "keep_pinned", "keep_quietly", "parse_commit_map", "pending_relinks",
           "range_pairs", "relink", "rewrite_link", "unreachable_commits", "unreachable_runs"]

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
    from ._util.clock import utc_timestamp
    from .model import RewriteLink
    from .schema import current_pin

    return codec.encode(RewriteLink(old=old, new=new, how=how, recorded_at=utc_timestamp(), schema=current_pin()))


def parse_commit_map(text: str, is_id) -> list[tuple[str, str]]:
    """``old new`` pairs from a commit map (``git filter-store``'s ``commit-map``, BFG's
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


def range_pairs(store: ProvStore, old_range: str, new: str) -> list[tuple[str, str]]:
    """``(old, new)`` for every commit in ``old_range``: ``A..B`` or ``^A B`` as git
    means them; a single commit is that commit alone (not its whole history)."""
    store = ProvStore.of(store)
    target = store.git.resolve(new)
    if ".." not in old_range and not old_range.startswith("^") and len(old_range.split()) == 1:
        olds = [c for c in [store.git.resolve(old_range)] if c != target]
    else:
        include, exclude = store.git.resolve_range(old_range)
        olds = [c for c in store.git.walk(include, exclude) if c != target]
    if not olds:
        raise UsageError(f"{old_range!r} names no commits other than {new!r}")
    return [(old, target) for old in olds]


def relink(store: ProvStore, pairs: list[tuple[str, str]], how: str) -> RelinkResult:
    """Link each new commit to the provenance of the old commits it replaced."""
    store = ProvStore.of(store)
    for _, new in pairs:
        if not store.git.odb.contains(new):
            raise UsageError(f"new commit {new[:12]} is not in this repository; fetch it first")
    tip, ledger_tip = store.notes.tip(), store.ledger.tip()
    add: dict[str, list[bytes]] = {}
    result = RelinkResult()
    for old, new in pairs:
        link = rewrite_link(old, new, how)
        copied = store.notes.read(old, tip)
        result.runs += _runs_linked(store, copied, ledger_tip)
        add.setdefault(new, []).extend(copied)
        add[new].append(link)
        add.setdefault(old, []).append(link)
    store.notes.add(add, f"prov: relink {len(pairs)} commit(s) ({how})")
    result.new = sorted({n for _, n in pairs})
    result.old = sorted({o for o, _ in pairs})
    keep_pinned(store, [o for o, _ in pairs if store.git.odb.contains(o)])
    return result


def _runs_linked(store: ProvStore, lines: list[bytes], ledger_tip: str | None) -> int:
    """How many runs copied note lines link: a format-1 ``run`` line each, a ``runs``
    line (``{"commit":"<id>",...``) all the runs the ledger lists under its commit."""
    count = 0
    for line in lines:
        if b'"kind":"run",' in line:
            count += 1
        elif b'"kind":"runs",' in line and ledger_tip is not None:
            commit = line[11:11 + store.git.fmt.hex_len].decode("ascii", "replace")
            count += len(store.ledger.commit_run_ids(commit, ledger_tip)) if store.git.fmt.is_id(commit) else 0
    return count


def _git(store: ProvStore, *args: str) -> str:
    """git's output, or nothing when it fails (a commit missing from a shallow clone)."""
    from .store import gitbin

    proc = gitbin.run(args, git_dir=store.git.git_dir or ".", text=True)
    return proc.stdout if proc.returncode == 0 else ""


def kept_commits(store: ProvStore) -> set[str]:
    """Every commit ``refs/prov/keep`` reaches."""
    store = ProvStore.of(store)
    tip = store.git.refs.read(KEEP_REF)
    return set(_git(store, "rev-list", tip).split()) if tip else set()


def keep_enabled(store: ProvStore) -> bool:
    value = (store.git.config.get("prov.keep") or "true").strip().lower()
    return value not in ("false", "no", "off", "0")


def pinned_commits(store: ProvStore) -> set[str]:
    """Commits that runs were made against (from the run index)."""
    from .index.store import index_of  # the index (and the records' codec) only for keep/verify

    return {commit for _, commit in index_of(store).run_commits()}


def keep_pinned(store: ProvStore, commits: list[str] | None = None) -> list[str]:
    """Add commits (default: every commit a run pins) to ``refs/prov/keep``; returns
    those newly kept. Commits missing from this clone (shallow, never fetched) are skipped."""
    store = ProvStore.of(store)
    if not keep_enabled(store):
        return []
    wanted = set(commits) if commits is not None else pinned_commits(store)
    wanted = {c for c in wanted if c and store.git.fmt.is_id(c) and store.git.odb.contains(c)}
    if not wanted:
        return []
    new = sorted(wanted - kept_commits(store))
    if not new:
        return []
    empty_tree = store.git.odb.write("tree", b"")
    message = f"prov: keep {len(new)} commit(s) runs pin"
    for _attempt in range(100):
        tip = store.git.refs.read(KEEP_REF)
        head = tip
        for start in range(0, len(new), _KEEP_BATCH):
            batch = new[start:start + _KEEP_BATCH]
            parents = ([head] if head else []) + batch
            body = commit_object(store.git, empty_tree, parents, f"prov: keep {len(batch)} commit(s) runs pin")
            head = store.git.odb.write("commit", body)
        if store.git.refs.compare_and_swap(KEEP_REF, tip, head, message):
            return new
    return []


def unreachable_runs(store: ProvStore) -> list[tuple[str, str]]:
    """``(run id, commit)`` for runs whose commit neither HEAD nor a branch, tag or remote
    branch reaches (or that this clone lacks)."""
    store = ProvStore.of(store)
    commits, runs_of = _run_commits(store)
    lost = unreachable_commits(store, commits) | {c for c in commits if not store.git.odb.contains(c)}
    return sorted((run, commit) for commit in commits if commit in lost for run in runs_of(commit))


def pending_relinks(store: ProvStore) -> list[tuple[str, list[str]]]:
    """``(commit, run ids)`` for commits runs were made against that no branch, tag, remote
    branch or HEAD reaches any more and that no rewrite link leads away from: history
    rewritten where no hook saw it (a squash merge, a deleted branch), so ``prov relink``
    has yet to carry their runs to the commits that replaced them."""
    store = ProvStore.of(store)
    commits, runs_of = _run_commits(store)
    lost = unreachable_commits(store, commits)
    if not lost:
        return []
    from . import codec
    from .model import RewriteLink

    tip = store.notes.tip()
    out = []
    for commit in sorted(lost):
        lines = [line for line in store.notes.read(commit, tip) if b'"rewrite"' in line and commit.encode() in line]
        linked = False
        for line in lines:
            try:
                record = codec.decode_note_line(line, f"note of commit {commit[:12]}")
            except DataError:
                continue
            linked = linked or (isinstance(record, RewriteLink) and record.old == commit)
        if not linked:
            out.append((commit, sorted(runs_of(commit))))
    return out


def unreachable_commits(store: ProvStore, commits: list[str]) -> set[str]:
    """Those of ``commits`` present here that neither HEAD nor a branch, tag or remote
    branch reaches: ``git rev-list`` walks from them only until it meets history the
    refs reach (not the whole history)."""
    if not commits:
        return set()
    from .store import gitbin

    heads = ["HEAD"] if store.git.refs.read("HEAD") else []
    proc = gitbin.run(["rev-list", "--ignore-missing", "--stdin", "--not", "--branches", "--tags", "--remotes", *heads],
                      git_dir=store.git.git_dir or ".", input="".join(c + "\n" for c in commits), text=True)
    if proc.returncode != 0:
        raise DataError(f"cannot tell which commits runs pin are reachable: {gitbin.failure(proc)}")
    wanted = set(commits)
    return {c for c in proc.stdout.split() if c in wanted}


def _run_commits(store: ProvStore) -> tuple[list[str], Callable[[str], list[str]]]:
    """The commits runs were made against, and a function naming the runs of one."""
    if store.ledger.lists_run_commits():
        return store.ledger.commits_with_runs(), store.ledger.commit_run_ids
    # a ledger not upgraded yet: the index knows each run's commit
    from .index.store import index_of

    pinned: dict[str, list[str]] = {}
    for run_id, commit in index_of(store).run_commits():
        pinned.setdefault(commit, []).append(run_id)
    return list(pinned), pinned.__getitem__


def keep_quietly(store: ProvStore, commits: list[str] | None = None) -> None:
    """``keep_pinned``, with a failure reported on stderr (pull and push go on)."""
    try:
        keep_pinned(store, commits)
    except (DataError, WriteError) as exc:
        import sys

        print(f"prov: warning: cannot update refs/prov/keep: {exc}", file=sys.stderr)
