"""``prov fetch`` / ``pull``: exchanging provenance through any git remote.

- **fetch** copies the remote's ``refs/notes/prov`` and ``refs/prov/ledger`` into
  ``refs/prov-remotes/<remote>/…``: never into the live refs, so nothing local moves.
- **pull** fetches, validates what the remote adds (``validate.py``), then merges it
  into the live refs (``merge.py``): a fast-forward when one side contains the other,
  else a merge commit with both tips as parents. The ref update is a compare-and-swap
  retried on a lost race, so a concurrent local run is never overwritten.
- **push** lives in ``push.py``; it uses the tracking refs and merges defined here.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import (
    ConcurrentUpdateError,
    RemoteDataError,
    RemoteError,
    UsageError,
)
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
    from .arriving import Cleared
    from .progress import Progress

__all__ = ["EXCHANGED_REFS", "ExchangeResult", "RefOutcome", "default_remote", "fetch", "is_ancestor", "merge_fetched",
           "merge_into", "pull", "remote_label", "set_tracking", "tracking_ref", "unpushed_notes", "unpushed_runs"]

#: The refs prov exchanges, and how two versions of each are merged.
EXCHANGED_REFS = (LEDGER_REF, NOTES_REF)
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
    #: blobs of the fetched ledger whose content was checked as it arrived (``arriving.py``)
    cleared: Cleared | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(replace(self, cleared=None))
        del data["pinned"], data["cleared"]
        data["remote"] = remote_label(self.remote)  # a URL's credentials never reach the output
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
        raise UsageError("this repository has no remote; add one with 'git remote add origin URL', or name a URL "
                         "after the command (prov pull URL, prov push URL)")
    raise UsageError(f"several remotes ({', '.join(remotes)}) and no upstream; name one after the command "
                     "(prov pull REMOTE, prov push REMOTE)")


def tracking_ref(remote: str, ref: str) -> str:
    """Where a remote's copy of ``ref`` is kept: ``refs/prov-remotes/<remote>/<ref minus refs/>``.

    A URL (not a configured remote name) gets a stable name from its hash."""
    name = remote if _NAME.match(remote) else "url-" + hashlib.sha256(remote.encode()).hexdigest()[:12]
    return f"refs/prov-remotes/{name}/{ref.removeprefix('refs/')}"


def fetch(repo: GitRepository, remote: str | None = None, result: ExchangeResult | None = None,
          progress: Progress | None = None, *, check_arriving: bool = False) -> ExchangeResult:
    """Copy the remote's prov refs into ``refs/prov-remotes/<remote>/`` (git's own
    progress to ``progress``). ``check_arriving``: the ledger's records and states are
    checked as the pack arrives, for the validation that follows (``result.cleared``)."""
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
    # git's copy of the pack is the user's when they trace it themselves
    arriving = None
    if check_arriving and refspecs and refspecs[0].startswith(f"+{LEDGER_REF}:") and "GIT_TRACE_PACKFILE" not in os.environ:
        from .arriving import Arriving

        arriving = Arriving(repo)
    ok = False
    try:
        stats = transport.fetch(refspecs, progress, env=arriving.env() if arriving is not None else None)
        ok = True
    finally:
        if arriving is not None:
            result.cleared = arriving.finish(ok)
    if stats.objects is not None:
        result.objects_received = (result.objects_received or 0) + stats.objects
    if stats.bytes is not None:
        result.bytes_received = (result.bytes_received or 0) + stats.bytes
    return result


def pull(repo: GitRepository, remote: str | None = None, progress: Progress | None = None, *,
         require_signed: bool | None = None) -> ExchangeResult:
    """Fetch, validate and merge the remote's provenance into the live refs (counts of
    each phase to ``progress``). ``require_signed`` (default: ``prov.pull.requireSigned``):
    every commit the remote adds must carry a good signature of an allowed signer."""
    remote = remote or default_remote(repo)
    result = fetch(repo, remote, progress=progress, check_arriving=True)
    try:
        if require_signed if require_signed is not None else repo.config.get_bool("prov.pull.requiresigned"):
            _check_signed(repo, remote)
        merge_fetched(repo, remote, result, progress)
    finally:
        if result.cleared is not None:  # refused before validation: its reader is stopped
            result.cleared.close()
            result.cleared = None
    return result


def _check_signed(repo: GitRepository, remote: str) -> None:
    """Refuse the fetched refs unless every commit they add to the local ones is signed
    by an allowed signer, as git's own verification (``%G?``) judges it."""
    problems = []
    for ref in EXCHANGED_REFS:
        theirs, ours = repo.refs.read(tracking_ref(remote, ref)), repo.refs.read(ref)
        if theirs is None or theirs == ours:
            continue
        proc = gitbin.run(["log", "--format=%H %G?", theirs, *([f"^{ours}"] if ours else []), "--"],
                          git_dir=repo.git_dir or ".", text=True, error=RemoteError)
        if proc.returncode != 0:
            raise RemoteError(f"cannot check the signatures of {ref} from {remote_label(remote)}: {gitbin.failure(proc)}")
        bad = [line.split()[0] for line in proc.stdout.splitlines() if line.split()[1:] != ["G"]]
        if bad:
            problems.append(f"{ref}: {len(bad)} commit(s) not signed by an allowed signer, e.g. {bad[0][:12]} "
                            f"(see: git verify-commit {bad[0][:12]})")
    if problems:
        from ..store import quarantine

        refused = {tracking_ref(remote, ref): oid for ref in EXCHANGED_REFS
                   if (oid := repo.refs.read(tracking_ref(remote, ref)))}
        quarantine.record(repo, remote_label(remote), refused, problems)
        raise RemoteDataError(f"rejected provenance from {Transport(repo, remote).where}, nothing merged (signed "
                              f"provenance required): {'; '.join(problems)}")


def merge_fetched(repo: GitRepository, remote: str, result: ExchangeResult, progress: Progress | None = None) -> None:
    # validate everything before moving anything: a rejected remote leaves both refs alone
    plans = []
    problems: list[str] = []
    refused: dict[str, str] = {}  # tracking ref -> the refused tip it holds
    try:
        for ref in EXCHANGED_REFS:
            theirs = repo.refs.read(tracking_ref(remote, ref))
            ours = repo.refs.read(ref)
            if theirs is None or theirs == ours or (ours is not None and is_ancestor(repo, theirs, ours)):
                result.merged.append(RefOutcome(ref, ours, ours, "up to date"))
                continue
            ours_tree, their_tree = _tree(repo, ours), _tree(repo, theirs)
            if ref == LEDGER_REF and (_is_log(repo, theirs) or _is_log(repo, ours)):
                verdict = _validate_with_log(repo, ours, theirs, progress, result.cleared)
                result.pinned.update(verdict.pinned)
                result.runs_checked += verdict.checked
            elif ref == LEDGER_REF:
                verdict = validate_ledger(repo, ours_tree, their_tree, progress, result.cleared)
                result.pinned.update(verdict.pinned)
                result.runs_checked += verdict.checked
            else:
                verdict = validate_notes(repo, ours_tree, their_tree)
                result.notes_checked += verdict.checked
            problems.extend(f"{ref}: {p}" for p in verdict.problems)
            if verdict.problems:
                refused[tracking_ref(remote, ref)] = theirs
            plans.append((ref, theirs, (ours_tree, verdict.added), ours, verdict.fold))
    finally:
        if result.cleared is not None:
            result.cleared.close()  # a reader of the arriving pack still running is not needed any more
        result.cleared = None  # used: its memory is given back before the merge
    if problems:
        from ..store import quarantine

        quarantine.record(repo, remote_label(remote), refused, problems)
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise RemoteDataError(f"rejected provenance from {Transport(repo, remote).where}, nothing merged (kept "
                              f"for inspection under refs/prov-remotes/): {shown}")
    if plans or result.merged:
        from ..store import quarantine

        quarantine.clear(repo, remote_label(remote))
    for ref, theirs, known, ours, folded in plans:
        outcome = merge_into(repo, ref, theirs, f"prov: merge {ref} from {remote_label(remote)}", result, known,
                             behind=ours, folded=folded)
        result.merged.append(outcome)
        if progress is not None and ref == LEDGER_REF:
            progress.done(f"merging {ref}", len(result.runs_added), note=f" runs added ({outcome.action})")


def remote_label(remote: str) -> str:
    from ..scrub import scrub_url

    return scrub_url(remote)


def _tree(repo: GitRepository, commit: str | None) -> str | None:
    return repo.read_commit(commit).tree if commit else None


def _is_log(repo: GitRepository, commit: str | None) -> bool:
    """Whether a ledger commit is of format 4's log."""
    from ..store.ledger import Ledger

    return commit is not None and Ledger(repo).is_log(commit)


def _validate_with_log(repo: GitRepository, ours: str | None, theirs: str, progress: Progress | None,
                       cleared: Cleared | None = None) -> Any:
    """Validation when either ledger is format 4's log: an arriving log as a log; an
    arriving ledger of format 3 (a clone that has not upgraded) as format 3, against
    the last format-3 ledger both hold, unless it was written on top of the log (it
    would hide the log's runs: refused)."""
    if _is_log(repo, theirs):
        from .validate_log import validate_log

        return validate_log(repo, ours, theirs, progress, cleared)
    from ..store.ledger_log import merge_bases
    from .blobs import Verdict

    bases = merge_bases(repo, ours, theirs) if ours is not None else []
    if any(_is_log(repo, base) for base in bases):
        verdict = Verdict()
        verdict.add(f"{theirs[:12]} is a ledger of format 3 written on top of format 4's log (it would hide the "
                    "log's runs): refused; upgrade the clone that wrote it to git-prov>=0.4.0")
        return verdict
    return validate_ledger(repo, _tree(repo, bases[0]) if bases else None, _tree(repo, theirs), progress, cleared)


def is_ancestor(repo: GitRepository, ancestor: str, descendant: str) -> bool:
    """``git merge-base --is-ancestor`` (git's commit-graph makes it fast on long chains)."""
    return gitbin.run(["merge-base", "--is-ancestor", ancestor, descendant], git_dir=repo.git_dir or ".").returncode == 0


def merge_into(repo: GitRepository, ref: str, theirs: str, message: str, result: ExchangeResult | None = None,
               known: tuple[str | None, list[str]] | None = None, behind: str | None = None,
               folded: tuple[list[str], dict[str, str]] | None = None) -> RefOutcome:
    """Merge the commit ``theirs`` into the local ``ref`` (compare-and-swap, retried).
    ``known``: a ledger tree and the runs ``theirs`` adds to it (from validation), so
    they are not listed again when the ref still holds that tree. ``behind``: a tip of
    ``ref`` known not to contain ``theirs`` (not asked of git again). ``folded``: two
    logs' merge bases and what ``theirs`` wrote above them, found by validation with
    the local tip at ``behind`` (``Verdict.fold``), used while it is still there."""
    merge_tree: Callable[[Any, str | None, str | None], str | None] = (
        merge_ledger_trees if ref == LEDGER_REF else merge_notes_trees)
    for attempt in range(100):
        ours = repo.refs.read(ref)
        before_tree = _tree(repo, ours)
        their_tree = _tree(repo, theirs)
        ahead = ours is not None and is_ancestor(repo, ours, theirs)  # theirs contains ours
        logs = ref == LEDGER_REF and ours is not None and (_is_log(repo, ours), _is_log(repo, theirs))
        if ours is None or (ahead and ref != LEDGER_REF):
            new, action = theirs, "fast-forward"
        elif logs and any(logs):  # format 4 (nothing below a validated tip is lost: a fast-forward)
            if ahead:
                new, action = theirs, "fast-forward"
            elif ours != behind and is_ancestor(repo, theirs, ours):
                return RefOutcome(ref, ours, ours, "up to date")
            else:
                from .merge import merge_logs

                tree = merge_logs(repo, ours, theirs, *logs, folded=folded if ours == behind else None)
                if tree is None:  # ours holds nothing theirs lacks
                    new, action = theirs, "fast-forward"
                else:
                    new, action = repo.odb.write("commit", commit_object(repo, tree, [ours, theirs], message)), "merged"
        elif ahead:
            # a fast-forward, unless the remote deleted what this ledger holds (git-prov
            # never deletes a run's files): then the union keeps them, on top of theirs
            tree = merge_tree(repo.odb, before_tree, their_tree)
            if tree == their_tree:
                new, action = theirs, "fast-forward"
            else:
                body = commit_object(repo, tree, [theirs], f"{message} (kept what it deleted)")
                new, action = repo.odb.write("commit", body), "merged"
        elif ours != behind and is_ancestor(repo, theirs, ours):
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
                _count_changes(repo, ref, before_tree, _tree(repo, new), result, known, (ours, new))
            return RefOutcome(ref, ours, new, action if ours else "created")
        time.sleep(min(0.002 * 2**attempt, 0.1))
    raise ConcurrentUpdateError(f"{ref} kept changing during the merge; try again")


def _count_changes(repo: GitRepository, ref: str, before: str | None, after: str | None, result: ExchangeResult,
                   known: tuple[str | None, list[str]] | None = None,
                   commits: tuple[str | None, str] | None = None) -> None:
    if ref == LEDGER_REF:
        if known is not None and known[0] == before:
            # the merge is a union: it adds to ``before`` exactly the runs ``theirs`` adds to it
            result.runs_added.extend(sorted(known[1]))
        elif commits is not None and _is_log(repo, commits[1]):
            result.runs_added.extend(log_runs_added(repo, *commits))
        elif repo.git_dir is not None:
            result.runs_added.extend(runs_added(repo, before, after))
        else:
            result.runs_added.extend(added_runs(repo, before, after))
    else:
        from ..store.notes import note_entries

        old = dict(note_entries(repo.odb, before))
        result.notes_changed += sum(1 for c, b in note_entries(repo.odb, after) if old.get(c) != b)


def log_runs_added(repo: GitRepository, before: str | None, after: str) -> list[str]:
    """Run ids in the log at commit ``after`` but not in the ledger at ``before``."""
    from ..store.ledger import Ledger
    from ..store.ledger_log import fold_since, is_run_blob

    ledger = Ledger(repo)
    since = [before] if before is not None and ledger.is_log(before) else None
    new = sorted(run for name in fold_since(repo, after, since) if (run := is_run_blob(name)))
    if before is None:
        return new
    return [run_id for run_id in new if ledger.run_file(run_id, "record", before) is None]


def log_runs_ahead(repo: GitRepository, theirs: str, ours: str) -> tuple[list[str], list[str]]:
    """``(added, changed)``: the runs the ledger at commit ``ours`` (a log) has that the
    one at ``theirs`` has not, and those both have that ``ours`` wrote again since."""
    from ..store.ledger import Ledger
    from ..store.ledger_log import fold_since, run_of

    ledger = Ledger(repo)
    touched = {run for name in fold_since(repo, ours, [theirs] if ledger.is_log(theirs) else None)
               if (run := run_of(name)) is not None}
    view = ledger.log_view(theirs)
    if view is not None:
        present = {run for run in touched if view.has_run(run)}
    else:
        present = {run for run in touched if ledger.run_file(run, "record", theirs) is not None}
    return sorted(touched - present), sorted(present)


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
    if _is_log(repo, ours):
        return log_runs_ahead(repo, theirs, ours)[0]
    diff = ledger_diff(repo, _tree(repo, theirs), _tree(repo, ours))
    return sorted(diff.added) if diff is not None else added_runs(repo, _tree(repo, theirs), _tree(repo, ours))


def unpushed_notes(repo: GitRepository, remote: str) -> list[str] | None:
    """Commits whose note (capture, run or rewrite links) is new or changed locally since
    ``remote`` was last seen (None: never exchanged with it). ``git diff-tree`` of the
    two notes trees: costs what changed, not the number of notes."""
    seen = repo.refs.read(tracking_ref(remote, LEDGER_REF))
    theirs = repo.refs.read(tracking_ref(remote, NOTES_REF))
    ours = repo.refs.read(NOTES_REF)
    if seen is None or (theirs is not None and not repo.odb.contains(theirs)):
        return None
    if ours is None or ours == theirs:
        return []
    if theirs is None:  # the remote had no notes: every local one is new there
        args = ["ls-tree", "-r", "-z", "--name-only", ours]
    else:
        args = ["diff-tree", "-r", "-z", "--no-renames", "--name-only", "--diff-filter=AM", theirs, ours]
    proc = gitbin.run(args, git_dir=repo.git_dir or ".")
    if proc.returncode != 0:
        return None
    return sorted({p.decode("ascii", "replace").replace("/", "") for p in proc.stdout.split(b"\0") if p})


def set_tracking(repo: GitRepository, ref: str, oid: str | None, message: str) -> None:
    if oid is None:
        return
    for _ in range(10):
        current = repo.refs.read(ref)
        if current == oid or repo.refs.compare_and_swap(ref, current, oid, message):
            return
