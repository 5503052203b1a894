"""``prov fetch`` / ``pull`` / ``push``: exchanging provenance through any git remote.

- **fetch** copies the remote's ``refs/notes/prov`` and ``refs/prov/ledger`` into
  ``refs/prov-remotes/<remote>/…``: never into the live refs, so nothing local moves.
- **pull** fetches, validates what the remote adds (``validate.py``), then merges it
  into the live refs (``merge.py``): a fast-forward when one side contains the other,
  else a merge commit with both tips as parents. The ref update is a compare-and-swap
  retried on a lost race, so a concurrent local run is never overwritten.
- **push** pushes the live refs without force; when the remote moved (someone else
  pushed), it pulls, merges and pushes again, up to ``MAX_PUSH_ATTEMPTS`` times.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConcurrentUpdateError, RemoteDataError, RemoteError, UsageError
from ..store import gitbin
from ..store.ledger import LEDGER_REF
from ..store.notes import NOTES_REF, merge_notes_trees
from ..store.repo import GitRepository
from ..store.transaction import commit_object
from ..store.trees import read_tree
from .diff import ledger_diff, runs_added
from .merge import merge_ledger_trees
from .transport import Transport
from .validate import validate_ledger, validate_notes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .progress import Progress

__all__ = ["EXCHANGED_REFS", "ExchangeResult", "default_remote", "fetch", "pull", "push", "tracking_ref", "unpushed_runs"]

#: The refs prov exchanges, and how two versions of each are merged.
EXCHANGED_REFS = (LEDGER_REF, NOTES_REF)
MAX_PUSH_ATTEMPTS = 10
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


@dataclass
class RefOutcome:
    ref: str
    before: str | None
    after: str | None
    action: str  # "up to date", "fast-forward", "merged", "created", "pushed", "absent"


@dataclass
class ExchangeResult:
    """What moved: per ref, and how many runs and notes the local refs gained."""

    remote: str
    fetched: list[RefOutcome] = field(default_factory=list)
    merged: list[RefOutcome] = field(default_factory=list)
    pushed: list[RefOutcome] = field(default_factory=list)
    runs_added: list[str] = field(default_factory=list)
    notes_changed: int = 0
    push_attempts: int = 0
    #: run directories and notes the remote added or changed, validated before merging
    runs_checked: int = 0
    notes_checked: int = 0
    #: what git said about the transfer (None: nothing fetched, or git did not say)
    objects_received: int | None = None
    bytes_received: int | None = None
    #: seconds the whole command took (set by its caller)
    elapsed: float | None = None
    #: commits the runs that came in were made against (validated records), for refs/prov/keep.
    pinned: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["pinned"]
        data["remote"] = _label(self.remote)  # a URL's credentials never reach the output
        data["runs_added"] = len(self.runs_added)
        data["run_ids_added"] = self.runs_added
        data["refs_moved"] = [{"phase": phase, "ref": o.ref, "before": o.before, "after": o.after}
                              for phase, outcomes in (("fetched", self.fetched), ("merged", self.merged),
                                                      ("pushed", self.pushed))
                              for o in outcomes if o.before != o.after]
        data["elapsed"] = None if self.elapsed is None else round(self.elapsed, 3)
        return data


def default_remote(repo: GitRepository) -> str:
    """The current branch's upstream remote, else ``origin``, else the only remote."""
    branch = repo.refs.symbolic_target("HEAD")
    if branch and branch.startswith("refs/heads/"):
        upstream = repo.config.get(f"branch.{branch[len('refs/heads/'):]}.remote")
        if upstream and upstream != ".":
            return upstream
    remotes = repo.config.remote_names()
    if "origin" in remotes:
        return "origin"
    if len(remotes) == 1:
        return remotes[0]
    if not remotes:
        raise UsageError("this repository has no remote; add one with 'git remote add origin URL' or name it: prov pull URL")
    raise UsageError(f"several remotes ({', '.join(remotes)}) and no upstream; name one: prov pull REMOTE")


def tracking_ref(remote: str, ref: str) -> str:
    """Where a remote's copy of ``ref`` is kept: ``refs/prov-remotes/<remote>/<ref minus refs/>``.

    A URL (not a configured remote name) gets a stable name from its hash."""
    name = remote if _NAME.match(remote) else "url-" + hashlib.sha256(remote.encode()).hexdigest()[:12]
    return f"refs/prov-remotes/{name}/{ref.removeprefix('refs/')}"


def fetch(repo: GitRepository, remote: str | None = None, result: ExchangeResult | None = None,
          progress: Progress | None = None) -> ExchangeResult:
    """Copy the remote's prov refs into ``refs/prov-remotes/<remote>/`` (git's own
    progress to ``progress``)."""
    remote = remote or default_remote(repo)
    result = result or ExchangeResult(remote)
    transport = Transport(repo, remote)
    theirs = transport.list_refs(EXCHANGED_REFS)
    refspecs = []
    for ref in EXCHANGED_REFS:
        local = tracking_ref(remote, ref)
        before = repo.refs.read(local)
        after = theirs.get(ref)
        if after is None:
            result.fetched.append(RefOutcome(ref, before, before, "absent"))
        elif after == before and repo.odb.contains(after):
            result.fetched.append(RefOutcome(ref, before, after, "up to date"))
        else:
            refspecs.append(f"+{ref}:{local}")
            result.fetched.append(RefOutcome(ref, before, after, "fetched"))
            repo.refs.ensure_reflog(local)  # git logs its update there when the log exists
    stats = transport.fetch(refspecs, progress)
    if stats.objects is not None:
        result.objects_received = (result.objects_received or 0) + stats.objects
    if stats.bytes is not None:
        result.bytes_received = (result.bytes_received or 0) + stats.bytes
    return result


def pull(repo: GitRepository, remote: str | None = None, progress: Progress | None = None) -> ExchangeResult:
    """Fetch, validate and merge the remote's provenance into the live refs (counts of
    each phase to ``progress``)."""
    remote = remote or default_remote(repo)
    result = fetch(repo, remote, progress=progress)
    _merge_fetched(repo, remote, result, progress)
    return result


def _merge_fetched(repo: GitRepository, remote: str, result: ExchangeResult, progress: Progress | None = None) -> None:
    # validate everything before moving anything: a rejected remote leaves both refs alone
    plans = []
    problems: list[str] = []
    for ref in EXCHANGED_REFS:
        theirs = repo.refs.read(tracking_ref(remote, ref))
        ours = repo.refs.read(ref)
        if theirs is None or theirs == ours or (ours is not None and _is_ancestor(repo, theirs, ours)):
            result.merged.append(RefOutcome(ref, ours, ours, "up to date"))
            continue
        ours_tree, their_tree = _tree(repo, ours), _tree(repo, theirs)
        if ref == LEDGER_REF:
            verdict = validate_ledger(repo, ours_tree, their_tree, progress)
            result.pinned.update(verdict.pinned)
            result.runs_checked += verdict.checked
        else:
            verdict = validate_notes(repo, ours_tree, their_tree)
            result.notes_checked += verdict.checked
        problems.extend(f"{ref}: {p}" for p in verdict.problems)
        plans.append((ref, theirs, (ours_tree, verdict.added)))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise RemoteDataError(f"rejected provenance from {Transport(repo, remote).where}, nothing merged: {shown}")
    for ref, theirs, known in plans:
        outcome = merge_into(repo, ref, theirs, f"prov: merge {ref} from {_label(remote)}", result, known)
        result.merged.append(outcome)
        if progress is not None and ref == LEDGER_REF:
            progress.done(f"merging {ref}", len(result.runs_added), note=f" runs added ({outcome.action})")


def _label(remote: str) -> str:
    from ..scrub import scrub_url

    return scrub_url(remote)


def _tree(repo: GitRepository, commit: str | None) -> str | None:
    return repo.read_commit(commit).tree if commit else None


def _is_ancestor(repo: GitRepository, ancestor: str, descendant: str) -> bool:
    """``git merge-base --is-ancestor`` (git's commit-graph makes it fast on long chains)."""
    return gitbin.run(["merge-base", "--is-ancestor", ancestor, descendant], git_dir=repo.git_dir or ".").returncode == 0


def merge_into(repo: GitRepository, ref: str, theirs: str, message: str, result: ExchangeResult | None = None,
               known: tuple[str | None, list[str]] | None = None) -> RefOutcome:
    """Merge the commit ``theirs`` into the local ``ref`` (compare-and-swap, retried).
    ``known``: a ledger tree and the runs ``theirs`` adds to it (from validation), so
    they are not listed again when the ref still holds that tree."""
    merge_tree: Callable[[Any, str | None, str | None], str | None] = (
        merge_ledger_trees if ref == LEDGER_REF else merge_notes_trees)
    for attempt in range(100):
        ours = repo.refs.read(ref)
        before_tree = _tree(repo, ours)
        their_tree = _tree(repo, theirs)
        if ours is None or _is_ancestor(repo, ours, theirs):
            new, action = theirs, "fast-forward"
        elif _is_ancestor(repo, theirs, ours):
            return RefOutcome(ref, ours, ours, "up to date")
        else:
            tree = merge_tree(repo.odb, before_tree, their_tree)
            if tree == their_tree:
                new, action = theirs, "fast-forward"
            else:
                body = commit_object(repo, tree, [ours, theirs], message)
                new, action = repo.odb.write("commit", body), "merged"
        if repo.refs.compare_and_swap(ref, ours, new, f"{message}: {action}"):
            if result is not None:
                _count_changes(repo, ref, before_tree, _tree(repo, new), result, known)
            return RefOutcome(ref, ours, new, action if ours else "created")
        time.sleep(min(0.002 * 2**attempt, 0.1))
    raise ConcurrentUpdateError(f"{ref} kept changing during the merge; try again")


def _count_changes(repo: GitRepository, ref: str, before: str | None, after: str | None, result: ExchangeResult,
                   known: tuple[str | None, list[str]] | None = None) -> None:
    if ref == LEDGER_REF:
        if known is not None and known[0] == before:
            # the merge is a union: it adds to ``before`` exactly the runs ``theirs`` adds to it
            result.runs_added.extend(sorted(known[1]))
        elif repo.git_dir is not None:
            result.runs_added.extend(runs_added(repo, before, after))
        else:
            result.runs_added.extend(added_runs(repo, before, after))
    else:
        from ..store.notes import note_entries

        old = dict(note_entries(repo.odb, before))
        result.notes_changed += sum(1 for c, b in note_entries(repo.odb, after) if old.get(c) != b)


def added_runs(repo: GitRepository, before: str | None, after: str | None) -> list[str]:
    """Run ids in the ledger tree ``after`` but not in ``before`` (reads changed shards only)."""
    def shards(tree: str | None) -> dict[str, Any]:
        runs = read_tree(repo.odb, tree).get("runs")
        return read_tree(repo.odb, runs.oid) if runs is not None else {}

    old, new = shards(before), shards(after)
    added = []
    for name, entry in new.items():
        if old.get(name) != entry:
            have = read_tree(repo.odb, old[name].oid) if name in old else {}
            added.extend(r for r in read_tree(repo.odb, entry.oid) if r not in have)
    return sorted(added)


def unpushed_runs(repo: GitRepository, remote: str) -> list[str] | None:
    """Runs in the local ledger that ``remote`` did not have when last seen (None:
    never exchanged with it, so possibly all)."""
    theirs = repo.refs.read(tracking_ref(remote, LEDGER_REF))
    ours = repo.refs.read(LEDGER_REF)
    if theirs is None or ours is None or not repo.odb.contains(theirs):
        return None
    diff = ledger_diff(repo, _tree(repo, theirs), _tree(repo, ours))
    return sorted(diff.added) if diff is not None else added_runs(repo, _tree(repo, theirs), _tree(repo, ours))


def push(repo: GitRepository, remote: str | None = None) -> ExchangeResult:
    """Push the live prov refs; on a non-fast-forward, pull, merge and push again."""
    remote = remote or default_remote(repo)
    result = ExchangeResult(remote)
    transport = Transport(repo, remote)
    for attempt in range(1, MAX_PUSH_ATTEMPTS + 1):
        result.push_attempts = attempt
        local = {ref: repo.refs.read(ref) for ref in EXCHANGED_REFS}
        refs = [ref for ref, oid in local.items() if oid]
        if not refs:
            return result
        reply = transport.push([f"{oid}:{ref}" for ref, oid in local.items() if oid])
        by_ref = {s.ref: s for s in reply.statuses}
        retry = False
        for ref in refs:
            status = by_ref.get(ref)
            if status is None or not status.rejected:
                continue
            if status.needs_fetch or status.lock_race:
                retry = True
            else:
                reason = status.summary.replace("[", "").replace("]", "").strip()
                said = f"; the remote said: {' / '.join(reply.remote_says[:3])}" if reply.remote_says else ""
                raise RemoteError(f"{transport.where} refused {ref}: {reason}{said}")
        if not retry:
            result.pushed = [
                RefOutcome(ref, repo.refs.read(tracking_ref(remote, ref)), local[ref],
                           "up to date" if by_ref.get(ref) and by_ref[ref].flag == "=" else "pushed")
                for ref in refs
            ]
            for ref in refs:  # the remote now holds our tips: remember them as its copy
                _set_tracking(repo, tracking_ref(remote, ref), local[ref], f"prov: push {ref} to {_label(remote)}")
            return result
        fetch(repo, remote, result)
        _merge_fetched(repo, remote, result)
        time.sleep(min(0.05 * attempt, 0.5))
    raise RemoteError(f"{transport.where} kept moving; gave up after {MAX_PUSH_ATTEMPTS} push attempts, try again")


def _set_tracking(repo: GitRepository, ref: str, oid: str | None, message: str) -> None:
    if oid is None:
        return
    for _ in range(10):
        current = repo.refs.read(ref)
        if current == oid or repo.refs.compare_and_swap(ref, current, oid, message):
            return
