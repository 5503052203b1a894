"""What each git hook does when git runs it, wrapped so that it fails open.

git runs the installed shim, the shim runs ``prov hooks run <hook> [args]`` (served
by ``cli.entry`` without click), and that lands in ``run`` here:

- ``post-commit`` / ``post-applypatch``: capture HEAD; a cherry-picked commit also
  gets a ``rewrite`` link (how ``cherry-pick``) to the commit it was picked from; when
  ``prov.sync.auto`` is set, a detached ``prov sync auto`` is started (``autosync``).
- ``post-rewrite``: for each ``old new`` line, the new commit gets the old commit's
  note lines plus an old→new ``rewrite`` link (the old one gets the link too), and a
  capture of its own if it has none; all in one notes commit.
- ``post-merge``: capture the merge commit ``git merge`` just made (not fast-forwards,
  not ``--squash``, whose commit comes later through post-commit).
- ``pre-push``: push ``refs/notes/prov`` and ``refs/prov/ledger`` to the same remote;
  what cannot be pushed stays in the outbox (``exchange/outbox.py``) for the next push.

Every failure prints one line on stderr, is appended to ``.git/prov/hook-failures.log``
and exits 0, unless strict mode is on (``git config prov.strict true``,
``.provenance.toml`` ``[hooks] strict = true`` or ``PROV_STRICT=1``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from .._util.logfile import trim
from . import HOOKS, STDIN_HOOKS

TYPE_CHECKING = False  # typing is not imported at run time: hook path
if TYPE_CHECKING:
    from typing import Any

    from ..store.prov_store import ProvStore
    from ..store.repo import GitRepository

__all__ = ["FAILURE_LOG", "PUSHED_REFS", "STRICT_EXIT", "is_strict", "read_failures", "run"]

#: Under ``.git/prov/``: one JSON object per line per failed hook run.
FAILURE_LOG = "hook-failures.log"
#: What ``run`` returns when strict mode turns a failure into a failing hook.
STRICT_EXIT = 1
_LOG_LIMIT = 256 * 1024
#: the refs the pre-push hook carries (``exchange.remote.EXCHANGED_REFS``, named here
#: so that a failure to import it can still be kept in the outbox)
PUSHED_REFS = ("refs/prov/ledger", "refs/notes/prov")
_CHERRY_TRAILER = r"\(cherry picked from commit ([0-9a-f]{40}|[0-9a-f]{64})\)"


class _Context:
    """One hook run: its repository (opened lazily) and what git passed it."""

    def __init__(self, name: str, args: list[str], stdin: bytes) -> None:
        self.name = name
        self.args = args
        self.stdin = stdin
        self.store: ProvStore | None = None
        #: pre-push: ``push()`` was called (it keeps its own failures in the outbox)
        self.pushing = False

    def open(self) -> ProvStore:
        """The repository's provenance store, journals of dead run writers folded in."""
        from ..store.prov_store import ProvStore

        self.store = ProvStore.open(os.getcwd())
        if self.store.has_journals():
            from ..runs.recovery import recover_quietly

            recover_quietly(self.store)
        return self.store


# -- the hooks ------------------------------------------------------------------
def _own_capture(store: ProvStore, commit: str, lines: list[bytes]) -> bool:
    """True when ``lines`` hold a capture of ``commit`` itself (not one copied to it)."""
    from .. import codec
    from ..model import CommitCapture

    for line in lines:
        if b'"kind":"commit"' in line and commit.encode() in line:
            record = codec.decode_note_line(line, f"note of commit {commit[:12]}")
            if isinstance(record, CommitCapture) and record.commit == commit:
                return True
    return False


def _picked_from(store: ProvStore, head: str) -> str | None:
    """The commit HEAD was cherry-picked from, when git left a cheap trace of it."""
    git = store.git
    git_dir = git.git_dir or ""
    if os.path.isdir(os.path.join(git_dir, "rebase-merge")) or os.path.isdir(os.path.join(git_dir, "rebase-apply")):
        return None  # a rebase pick: post-rewrite links it when the rebase ends
    picked = git.refs.read("CHERRY_PICK_HEAD")
    if not picked:
        import re

        found = re.findall(_CHERRY_TRAILER, git.read_commit(head).message)
        picked = found[-1] if found else None
    if picked and picked != head and git.fmt.is_id(picked) and git.odb.contains(picked):
        return picked
    return None


def post_commit(ctx: _Context) -> None:
    from ..quickcapture import try_capture_head

    if try_capture_head(os.getcwd(), trigger="hook") is None:  # None: not the common case
        _capture_head_fully(ctx)
    _start_auto_sync(ctx)


def _start_auto_sync(ctx: _Context) -> None:
    """Start a background ``prov sync auto`` when ``prov.sync.auto`` is set; never
    waits for it, never fails the hook (one line on stderr and in the failure log)."""
    try:
        from ..store.repo import GitRepository
        from ..sync.auto import start

        start(ctx.store.git if ctx.store is not None else GitRepository.open(os.getcwd()))
    except Exception as exc:  # noqa: BLE001 - a hook never fails because of auto-sync
        from ..errors import ProvError

        reason = str(exc) if isinstance(exc, ProvError) else f"{type(exc).__name__}: {exc}"
        print(f"prov: auto-sync not started: {reason}", file=sys.stderr)
        from .._util.clock import utc_timestamp

        _log_failure(ctx.store, {"time": utc_timestamp(), "hook": ctx.name, "reason": f"auto-sync not started: {reason}",
                                "error": type(exc).__name__, "strict": False})


def _capture_head_fully(ctx: _Context) -> None:
    from .. import codec
    from ..captures import build_capture
    from ..history import rewrite_link

    store = ctx.open()
    head = store.git.head()
    tip = store.notes.tip()
    add: dict[str, list[bytes]] = {}
    if not _own_capture(store, head, store.notes.read(head, tip)):
        add[head] = [codec.encode(build_capture(store, head, trigger="hook"))]
    picked = _picked_from(store, head)
    if picked:
        link = rewrite_link(picked, head, "cherry-pick")
        add.setdefault(head, []).append(link)
        add.setdefault(picked, []).append(link)
    if add:
        store.notes.add(add, f"prov: capture {head[:12]} ({ctx.name})")


def _amend_from_reflog(store: ProvStore) -> list[tuple[str, str]]:
    """``[(old, new)]`` of the last amend, from HEAD's reflog (when git gave no stdin)."""
    path = os.path.join(store.git.git_dir or "", "logs", "HEAD")
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            last = f.read().splitlines()[-1].decode("utf-8", "replace")
    except (OSError, IndexError):
        return []
    old, new = last.split(" ", 2)[:2]
    head = store.git.refs.read("HEAD")
    return [(old, new)] if new == head and store.git.fmt.is_id(old) and old.strip("0") else []


def post_rewrite(ctx: _Context) -> None:
    from .. import codec
    from ..captures import build_capture
    from ..history import rewrite_link

    store = ctx.open()
    how = (ctx.args[0] if ctx.args else os.environ.get("PRE_COMMIT_REWRITE_COMMAND", "")) or "rewrite"
    is_id = store.git.fmt.is_id
    pairs = []
    for line in ctx.stdin.decode("ascii", "replace").splitlines():
        fields = line.split()
        if len(fields) >= 2 and is_id(fields[0]) and is_id(fields[1]):
            pairs.append((fields[0], fields[1]))
    if not pairs and how == "amend":
        pairs = _amend_from_reflog(store)
    if not pairs:
        return
    tip = store.notes.tip()
    add: dict[str, list[bytes]] = {}
    for old, new in pairs:
        link = rewrite_link(old, new, how)
        add.setdefault(new, []).extend(store.notes.read(old, tip))
        add[new].append(link)
        add.setdefault(old, []).append(link)
    base_env = None
    for new in dict.fromkeys(new for _, new in pairs):
        if not _own_capture(store, new, store.notes.read(new, tip) + add[new]):
            record = build_capture(store, new, trigger="hook", base_environment=base_env)
            base_env = record.environment
            add[new].append(codec.encode(record))
    store.notes.add(add, f"prov: {how} rewrote {len(pairs)} commit(s)")
    # runs made at it: listed in the ledger (format 2), or a run line in its note (format 1)
    pinned = [old for old, _ in pairs if store.ledger.has_runs_at(old)
              or any(b'"kind":"run"' in line for line in store.notes.read(old, tip))]
    if pinned:  # the old commits are now unreachable: keep what runs were made against
        from ..history import keep_pinned

        keep_pinned(store, pinned)


def post_merge(ctx: _Context) -> None:
    squash = (ctx.args[0] if ctx.args else os.environ.get("PRE_COMMIT_IS_SQUASH_MERGE", "0")) == "1"
    if squash:
        return  # nothing committed yet; the later 'git commit' runs post-commit
    from ..captures import capture

    store = ctx.open()
    head = store.git.head()
    parents = store.git.read_commit(head).parents
    orig = store.git.refs.read("ORIG_HEAD")
    if len(parents) >= 2 and (orig is None or parents[0] == orig):
        capture(store, head, trigger="hook")


def pre_push(ctx: _Context) -> None:
    """Carry provenance with every push: ``prov push`` to the same remote (merging the
    remote's provenance first when someone else pushed). Not when the push names prov's
    refs itself (``git push origin main 'refs/prov/*:refs/prov/*'``): git has already
    planned their update from the remote's state, so a push of them here would make git's
    own fail ("cannot lock ref"); git pushes them as asked."""
    from ..errors import UsageError
    from ..exchange.push import push
    from ..exchange.remote import EXCHANGED_REFS

    remote = ctx.args[0] if ctx.args else os.environ.get("PRE_COMMIT_REMOTE_NAME", "")
    if not remote:
        raise UsageError("pre-push was run without a remote name")
    pushed = [line.split()[0] for line in ctx.stdin.decode("utf-8", "replace").splitlines() if line.split()]
    if any(r in EXCHANGED_REFS or r.startswith("refs/prov/") for r in pushed):
        return  # prov's refs named in the push (prov push's own, or by hand): git pushes them
    if pushed and all(r.startswith("refs/notes/") for r in pushed):
        return  # notes alone: no work of this clone goes out
    store = ctx.open()
    if not any(store.git.refs.read(ref) for ref in EXCHANGED_REFS):
        return  # nothing to carry
    ctx.pushing = True
    push(store.git, remote)


def _keep_pending(ctx: _Context, reason: str) -> None:
    """A pre-push hook that failed before ``push()`` ran (the repository could not be
    opened, a crashed run could not be folded in, ...): remember the push in the outbox
    as ``push()`` does, so the next ``git push`` or ``prov push`` retries it."""
    remote = ctx.args[0] if ctx.args else os.environ.get("PRE_COMMIT_REMOTE_NAME", "")
    if not remote:
        return
    try:
        from ..exchange import outbox
        from ..store.repo import GitRepository

        git = ctx.store.git if ctx.store is not None else GitRepository.open(os.getcwd())
        tips = {}
        for ref in PUSHED_REFS:
            try:
                if oid := git.refs.read(ref):
                    tips[ref] = oid
            except Exception:  # noqa: BLE001 - an unreadable ref: the entry names what could be read
                pass
        outbox.record(git, remote, reason, tips)
    except Exception:  # noqa: BLE001 - the failure log and the stderr line still tell the user
        pass


_HANDLERS: dict[str, Callable[[_Context], None]] = {
    "post-commit": post_commit,
    "post-applypatch": post_commit,
    "post-rewrite": post_rewrite,
    "post-merge": post_merge,
    "pre-push": pre_push,
}
assert set(_HANDLERS) == set(HOOKS)


# -- failing open ---------------------------------------------------------------
def _truthy(value: str | None) -> bool | None:
    if value is None or value.strip() == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def is_strict(git: GitRepository | None, work_tree: str | None) -> bool:
    """Strict mode: ``PROV_STRICT``, else ``git config prov.strict``, else ``.provenance.toml``."""
    env = _truthy(os.environ.get("PROV_STRICT"))
    if env is not None:
        return env
    if git is None:
        return False
    try:
        if git.config.get("prov.strict") is not None:
            return git.config.get_bool("prov.strict")
        from ..settings import load_settings

        return load_settings(work_tree).hooks.strict
    except Exception:  # an unreadable setting cannot switch strict mode on
        return False


def _log_dir(store: ProvStore | None) -> str | None:
    if store is not None:
        return store.git.prov_dir()
    git_dir = os.environ.get("GIT_DIR") or ".git"
    return os.path.join(git_dir, "prov") if os.path.isdir(git_dir) else None


def _log_failure(store: ProvStore | None, entry: dict[str, Any]) -> None:
    directory = _log_dir(store)
    if directory is None:
        return
    path = os.path.join(directory, FAILURE_LOG)
    try:
        os.makedirs(directory, exist_ok=True)
        trim(path, _LOG_LIMIT, 200)
        import json

        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
    except OSError:
        pass  # logging is best effort; the stderr line already told the user


def read_failures(prov_dir: str | None, limit: int = 10) -> tuple[list[dict[str, Any]], int]:
    """The last ``limit`` logged hook failures (oldest first) and how many are logged."""
    if prov_dir is None:
        return [], 0
    try:
        with open(os.path.join(prov_dir, FAILURE_LOG), encoding="utf-8", errors="replace") as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
    except OSError:
        return [], 0
    import json

    entries = []
    for line in lines[-limit:] if limit else []:
        try:
            entries.append(json.loads(line))
        except ValueError:
            entries.append({"reason": line[:200]})
    return entries, len(lines)


def _fail(ctx: _Context, exc: BaseException) -> int:
    import traceback

    from .._util.clock import utc_timestamp
    from .._version import __version__
    from ..errors import ProvError, UsageError
    from ..scrub import scrub_argv, scrub_text

    if isinstance(exc, ProvError):
        reason = str(exc)
    elif isinstance(exc, KeyboardInterrupt):
        reason = "interrupted"
    else:
        reason = f"{type(exc).__name__}: {exc} (a bug in git-prov; details in .git/prov/{FAILURE_LOG})"
    reason = scrub_text(" ".join(reason.split()))
    if ctx.store is not None:
        strict = is_strict(ctx.store.git, ctx.store.work_tree)
    else:  # failed before the full repository was opened (e.g. on the lean capture path)
        try:
            from ..store.repo import GitRepository

            git = GitRepository.open(os.getcwd())
        except Exception:
            git = None
        strict = is_strict(git, git.work_tree if git else None)
    verb = "pushed" if ctx.name == "pre-push" else "captured"
    suffix = " (strict mode: the hook fails)" if strict else ""
    if ctx.name == "pre-push" and not isinstance(exc, UsageError):  # kept in the outbox
        if not ctx.pushing:  # (push() keeps its own failures there)
            _keep_pending(ctx, reason)
        suffix += "; it stays pending: the next 'git push' or 'prov push' retries it ('prov status' lists it)"
    print(f"prov: provenance not {verb}: {reason}{suffix}", file=sys.stderr)
    entry: dict[str, Any] = {
        "time": utc_timestamp(),
        "hook": ctx.name,
        "args": scrub_argv(ctx.args),
        "reason": reason,
        "error": type(exc).__name__,
        "strict": strict,
        "tool": f"git-prov {__version__}",
    }
    if not isinstance(exc, (ProvError, KeyboardInterrupt)):
        entry["traceback"] = scrub_text("".join(traceback.format_exception(exc))[-4000:])
    _log_failure(ctx.store, entry)
    if not strict:
        return 0
    return exc.exit_code if isinstance(exc, ProvError) else STRICT_EXIT


def run(name: str, args: list[str], stdin: bytes | None = None) -> int:
    """Run hook ``name`` with git's ``args``; 0 unless strict mode turns a failure fatal."""
    if _truthy(os.environ.get("PROV_HOOKS_DISABLED")):
        return 0
    if stdin is None:
        stdin = b""
        if name in STDIN_HOOKS and sys.stdin is not None and not sys.stdin.isatty():
            try:
                stdin = sys.stdin.buffer.read()
            except (OSError, ValueError):
                stdin = b""
    ctx = _Context(name, list(args), stdin)
    try:
        handler = _HANDLERS.get(name)
        if handler is None:
            from ..errors import UsageError

            raise UsageError(f"unknown hook {name!r}; git-prov handles {', '.join(HOOKS)}")
        handler(ctx)
        return 0
    except (Exception, KeyboardInterrupt) as exc:
        return _fail(ctx, exc)
