"""Moving prov refs to and from a remote with the real ``git`` binary.

git does the transport (ssh, https with credential helpers, ``file://``, bundles of
remotes configured in ``.git/config``), so prov works with whatever remote git does.
Incoming objects are checked by git (``fetch.fsckObjects``) before any ref moves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import RemoteDataError, RemoteError, UsageError
from ..scrub import scrub_url
from ..store import gitbin
from ..store.repo import GitRepository

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

    from .progress import Progress

#: incoming blobs from this size on are streamed by git's index-pack, not held in memory
BIG_FILE = "32m"

__all__ = ["FetchStats", "PushReply", "PushStatus", "Transport"]


@dataclass(frozen=True)
class PushStatus:
    """One ref's outcome in ``git push --porcelain``: ``flag`` is git's (`` `` fast-forward,
    ``=`` up to date, ``*`` new, ``!`` rejected)."""

    ref: str
    flag: str
    summary: str

    @property
    def rejected(self) -> bool:
        return self.flag == "!"

    @property
    def needs_fetch(self) -> bool:
        return self.rejected and any(w in self.summary for w in ("fetch first", "non-fast-forward", "stale info"))

    @property
    def lock_race(self) -> bool:
        return self.rejected and any(w in self.summary for w in ("failed to lock", "cannot lock", "failed to update ref"))

    @property
    def atomic_casualty(self) -> bool:
        """Rejected only because another ref of the same ``--atomic`` push was."""
        return self.rejected and any(w in self.summary for w in ("atomic push failed", "atomic transaction failed"))


@dataclass(frozen=True)
class PushReply:
    """What ``git push`` answered: one status per ref, and what the remote's hooks said
    (its ``remote:`` lines, credentials scrubbed)."""

    statuses: list[PushStatus]
    remote_says: list[str]
    #: ``--atomic`` was asked for and the remote does not offer it: nothing was sent
    atomic_unsupported: bool = False


@dataclass
class FetchStats:
    """What git said about a fetch's transfer (None where it did not say)."""

    objects: int | None = None
    bytes: int | None = None


_UNITS = {"bytes": 1, "byte": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_TOTAL = re.compile(r"remote: Total (\d+)")
_SIZE = re.compile(r"\((\d+)/(\d+)\), ([0-9.]+) (bytes|byte|KiB|MiB|GiB)\b")


def _fetch_stats(stderr: str) -> FetchStats:
    """Objects (the server's ``Total``) and bytes received (the last ``Receiving objects``
    count, which git prints for transfers it indexes as a pack) from git's progress."""
    stats = FetchStats()
    segments = re.split(r"[\r\n]", stderr)
    total = next((m for m in map(_TOTAL.search, segments) if m), None)
    if total:
        stats.objects = int(total.group(1))
    sizes = [m for m in map(_SIZE.search, segments) if m and not m.string.startswith("remote:")]
    if sizes:
        stats.objects = stats.objects if stats.objects is not None else int(sizes[-1].group(2))
        stats.bytes = int(float(sizes[-1].group(3)) * _UNITS[sizes[-1].group(4)])
    return stats


class _Relay:
    """Passes git's progress lines on to ``progress``: its ``remote:`` lines and its own
    counters, not the ``From URL`` line, ref updates or errors (prov reports those)."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.rest = ""

    def __call__(self, chunk: bytes) -> None:
        if self.progress is None:
            return
        text = self.rest + chunk.decode("utf-8", "replace")
        pieces = re.split(r"([\r\n])", text)
        self.rest = pieces.pop()
        out = []
        for piece, end in zip(pieces[::2], pieces[1::2], strict=True):
            if piece and not piece.startswith(("From ", " ", "fatal:", "error:", "warning:", "hint:")):
                out.append(scrub_url(piece) + end)
        if out:
            self.progress.passthrough("".join(out))


class Transport:
    """``git ls-remote`` / ``fetch`` / ``push`` against one remote of one repository."""

    def __init__(self, repo: GitRepository, remote: str) -> None:
        if not remote or remote.startswith("-"):
            raise UsageError(f"{remote!r} is not a remote name or URL")
        self.repo = repo
        self.remote = remote
        self.where = scrub_url(remote)

    def _git(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return gitbin.run(args, git_dir=self.repo.git_dir or ".", input=input, text=True, error=RemoteError)

    def _fail(self, action: str, proc: subprocess.CompletedProcess[str]) -> RemoteError:
        return RemoteError(f"cannot {action} {self.where}: {scrub_url(gitbin.failure(proc))}")

    def list_refs(self, patterns: Sequence[str]) -> dict[str, str]:
        """The remote's refs matching ``patterns`` (``git ls-remote``)."""
        proc = self._git("ls-remote", "--", self.remote, *patterns)
        if proc.returncode != 0:
            raise self._fail("read refs from", proc)
        refs = {}
        for line in proc.stdout.splitlines():
            oid, _, name = line.partition("\t")
            if name and self.repo.fmt.is_id(oid):
                refs[name] = oid
        return refs

    def fetch(self, refspecs: Sequence[str], progress: Progress | None = None, *, upkeep: bool = True,
              env: Mapping[str, str] | None = None) -> FetchStats:
        """Fetch ``refspecs``; git verifies every incoming object first. git's progress
        goes to ``progress`` as it comes (scrubbed of credentials); what it says about
        the transfer is returned either way. ``upkeep=False``: no ``git maintenance run
        --auto`` (``gc --auto``) after it (the small fetches of a push's retries; the next
        git command that does upkeep does it). ``env``: added to git's environment."""
        stats = FetchStats()
        if not refspecs:
            return stats
        relay = _Relay(progress)
        # git's index-pack holds every incoming blob under core.bigFileThreshold (512 MiB by
        # default) in memory whole: an artifact of a few hundred MB would be the pull's
        # peak. Streamed above 32 MiB unless the user chose a threshold.
        bounded = [] if self.repo.config.get("core.bigfilethreshold") else ["-c", f"core.bigFileThreshold={BIG_FILE}"]
        if not upkeep:
            bounded += ["-c", "maintenance.auto=false", "-c", "gc.auto=0"]
        elif not (self.repo.config.get("fetch.writecommitgraph") or self.repo.config.get("core.commitgraph")):
            # the commit-graph of what arrived (git's own file, as its maintenance writes): a
            # log's history walked at once afterwards (merge bases, the fold's listing) costs
            # 0.08 s where it cost 0.53 s at 100,000 commits; unless the user chose otherwise
            bounded += ["-c", "fetch.writeCommitGraph=true"]
        proc = gitbin.run_relaying([*bounded, "-c", "fetch.fsckObjects=true", "-c", "transfer.fsckObjects=true",
                                    "fetch", "--progress", "--no-tags", "--no-write-fetch-head",
                                    "--no-recurse-submodules", "--", self.remote, *refspecs],
                                   relay, git_dir=self.repo.git_dir or ".", extra=env, error=RemoteError)
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            if "fsck error" in stderr or "error: object " in stderr:
                bad = next((ln for ln in stderr.splitlines() if ln.startswith("error: object")), "")
                raise RemoteDataError(f"rejected provenance from {self.where}, nothing merged: git found a malformed "
                                      f"object ({scrub_url(bad.removeprefix('error: ')) or 'fsck failed'})")
            raise self._fail("fetch from", proc)
        return _fetch_stats(stderr)

    def push(self, refspecs: Sequence[str], *, atomic: bool = False) -> PushReply:
        """Push ``refspecs`` (never forced); ``atomic``: all or none of them move (``--atomic``,
        when the remote offers it; else nothing is sent and the reply says so)."""
        proc = self._git("push", "--porcelain", "--no-verify", "--quiet", *(["--atomic"] if atomic else []),
                         "--", self.remote, *refspecs)
        if atomic and proc.returncode != 0 and "does not support --atomic" in proc.stderr:
            return PushReply([], [], atomic_unsupported=True)
        statuses = []
        for line in proc.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and len(parts[0]) == 1:
                statuses.append(PushStatus(parts[1].split(":")[-1], parts[0], parts[2]))
        if proc.returncode != 0 and not statuses:
            raise self._fail("push to", proc)
        said = [scrub_url(ln.removeprefix("remote:").strip()) for ln in proc.stderr.splitlines() if ln.startswith("remote:")]
        return PushReply(statuses, [ln for ln in said if ln])
