"""Ref updates that never lose a concurrent writer's work.

Build the new objects on the current tip, then compare-and-swap the ref; when another
writer won the race, build again on the new tip. Objects always exist before the ref
that reaches them, so a crash at any point leaves the ref valid.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import ConcurrentUpdateError
from .objects import encode_commit
from .repo import GitRepository

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import GitConfig

__all__ = ["RefUpdate", "commit_object", "commit_on_ref", "commit_on_refs", "committer_line", "identity_line"]

MAX_ATTEMPTS = 100


def identity_line(repo: GitRepository, now: float | None = None) -> str:
    """``Name <email> epoch tz`` for commits prov writes on its own refs: the committer
    git would use (``ident.committer``), or ``git-prov <git-prov@localhost>`` where git
    would refuse to commit."""
    return committer_line(repo.config, now)


def committer_line(config: GitConfig, now: float | None = None) -> str:
    """``identity_line`` from the repository's config alone (what its reflogs use)."""
    from .ident import committer  # only a write needs it

    name, email = committer(config) or ("git-prov", "git-prov@localhost")
    now = time.time() if now is None else now
    offset = time.localtime(now).tm_gmtoff // 60
    sign = "+" if offset >= 0 else "-"
    offset = abs(offset)
    return f"{name} <{email}> {int(now)} {sign}{offset // 60:02d}{offset % 60:02d}"


_UNSET = object()


def commit_object(repo: GitRepository, tree: str, parents: list[str], message: str) -> bytes:
    """The body of a commit prov writes on its own refs, signed when the repository
    signs its commits (``store/signing.py``; the choice is read once per config)."""
    body = encode_commit(tree, parents, identity_line(repo), message)
    config = repo.config
    signer = config.__dict__.get("_prov_signer", _UNSET)
    if signer is _UNSET:
        setting = "prov.sign" if config.get("prov.sign") is not None else "commit.gpgsign"
        signer = None
        if config.get_bool(setting):  # signing.py (subprocess) loads only when it signs
            from .signing import signer_for

            signer = signer_for(config)
        config.__dict__["_prov_signer"] = signer
    if signer is None:
        return body
    from .signing import sign_commit

    return sign_commit(body, signer, repo.fmt.name)


#: ``(ref, build_tree, message)``: ``build_tree(current tree id or None, current tip or
#: None)`` returns the new tree id, or None to leave the ref alone.
RefUpdate = tuple[str, Callable[[str | None, str | None], "str | None"], str]


def commit_on_ref(
    repo: GitRepository,
    ref: str,
    build_tree: Callable[[str | None, str | None], str | None],
    message: str,
) -> str | None:
    """Commit the tree ``build_tree(current tree, current tip)`` on top of ``ref``,
    retrying races.

    ``build_tree`` gets the tip's tree id and the tip (both None when the ref is new)
    and returns the new tree id, or None to leave the ref alone. Returns the ref's
    final value.
    """
    return commit_on_refs(repo, [(ref, build_tree, message)])[ref]


def commit_on_refs(repo: GitRepository, updates: list[RefUpdate]) -> dict[str, str | None]:
    """Several ref updates as one transaction: every new object of every ref goes into
    one pack (``odb.batch``), written before any ref moves; then the refs are
    compare-and-swapped in the order given. A lost race rebuilds that ref and the ones
    after it on their new tips (the refs before it stay done). Returns each ref's
    final value.

    A crash between two ref updates leaves the earlier refs updated and the later ones
    not: callers order the updates so that this state is valid and repairable (the
    ledger before the note that links a run to its commit; see ``runs/recovery.py``).
    """
    odb = repo.odb
    # the trees of the commits this process wrote: the next transaction on the same ref
    # starts from one of them without reading it back
    written: dict[str, str] = odb.__dict__.setdefault("_written_commit_trees", {})
    done: dict[str, str | None] = {}
    pending = list(updates)
    for attempt in range(MAX_ATTEMPTS):
        tips: dict[str, str | None] = {}
        commits: dict[str, str] = {}
        with odb.batch():
            for ref, build_tree, message in pending:
                tip = tips[ref] = repo.refs.read(ref)
                old_tree = (written.get(tip) or repo.read_commit(tip).tree) if tip else None
                new_tree = build_tree(old_tree, tip)
                if new_tree is not None and new_tree != old_tree:
                    commits[ref] = odb.write("commit", commit_object(repo, new_tree, [tip] if tip else [], message))
                    if len(written) > 1000:
                        written.clear()
                    written[commits[ref]] = new_tree
            odb.flush()  # objects are durable before any ref reaches them (also in an outer batch)
        lost: list[RefUpdate] = []
        for update in pending:
            ref = update[0]
            if lost:
                lost.append(update)
            elif ref not in commits:
                done[ref] = tips[ref]
            elif repo.refs.compare_and_swap(ref, tips[ref], commits[ref], update[2]):
                done[ref] = commits[ref]
            else:
                lost.append(update)
        if not lost:
            odb.maintain(repo.config)
            return done
        pending = lost
        import random  # only after a lost race: not on the path of every write

        time.sleep(random.uniform(0, min(0.002 * 2**attempt, 0.1)))
    raise ConcurrentUpdateError(f"{pending[0][0]} kept changing; gave up after {MAX_ATTEMPTS} attempts, try again")
