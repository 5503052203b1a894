"""``prov push``: both prov refs sent together, retried until they land.

The live refs go out without force in one ``git push --atomic`` (a remote without it
gets the ledger first, then the notes, so its notes never name runs its ledger lacks).
When the remote moved (someone else pushed), the push fetches what landed, merges it
(``remote.merge_fetched``) and pushes again, backing off with full jitter, for as long as
the remote keeps moving and ``prov.push.timeout`` allows. What could not be pushed waits
in the outbox (``outbox.py``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from ..errors import ConfigError, ProvError, RemoteError, UsageError
from ..store.repo import GitRepository
from . import outbox
from .remote import (
    EXCHANGED_REFS,
    ExchangeResult,
    RefOutcome,
    default_remote,
    fetch,
    is_ancestor,
    merge_fetched,
    remote_label,
    set_tracking,
    tracking_ref,
)
from .transport import PushStatus, Transport

__all__ = ["BACKOFF_BASE", "BACKOFF_CAP", "MAX_STALLED", "PUSH_TIMEOUT", "backoff_delay", "push"]

#: Seconds ``prov push`` keeps retrying while the remote keeps moving (``prov.push.timeout``).
PUSH_TIMEOUT = 1800.0
#: Retries in a row in which the remote did not move before a push gives up.
MAX_STALLED = 8
#: Full-jitter backoff: the n-th retry waits up to ``min(BACKOFF_CAP, unit * 2**n)`` s, the
#: unit being the time the last attempt took (fetch, merge and push), at least ``BACKOFF_BASE``.
BACKOFF_BASE = 0.05
BACKOFF_CAP = 30.0

def push(repo: GitRepository, remote: str | None = None, *, timeout: float | None = None,
         sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> ExchangeResult:
    """Push the live prov refs together; on a lost race, pull, merge and push again.

    Retries back off exponentially with full jitter (``rng``, ``sleep``) and go on while
    the remote keeps moving (others landing is progress) until ``timeout`` seconds
    (default ``prov.push.timeout``, else 1800). A failure is remembered in the outbox
    (``outbox.py``) and a later push that delivers clears it."""
    remote = remote or default_remote(repo)
    try:
        result = _push(repo, remote, _push_timeout(repo) if timeout is None else timeout, sleep, rng or random.Random())
    except UsageError:
        raise  # not a remote prov can push to: nothing to retry later
    except (Exception, KeyboardInterrupt) as exc:
        reason = str(exc) if isinstance(exc, ProvError) else ("interrupted" if isinstance(exc, KeyboardInterrupt)
                                                              else f"{type(exc).__name__}: {exc}")
        outbox.record(repo, remote, reason, _readable_tips(repo))
        raise
    sent = {o.ref: o.after for o in result.pushed if o.after}
    outbox.clear(repo, remote, lambda refs: all(
        oid == sent.get(ref) or (sent.get(ref) is not None and is_ancestor(repo, oid, sent[ref]))
        for ref, oid in refs.items()))
    return result


def _readable_tips(repo: GitRepository) -> dict[str, str]:
    """The local tips of the prov refs that can be read (a broken ref is what failed)."""
    tips = {}
    for ref in EXCHANGED_REFS:
        try:
            if oid := repo.refs.read(ref):
                tips[ref] = oid
        except ProvError:
            pass
    return tips


def _push_timeout(repo: GitRepository) -> float:
    value = repo.config.get("prov.push.timeout")
    if value is None:
        return PUSH_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"prov.push.timeout is {value!r}; set it to a number of seconds, e.g. "
                          "git config prov.push.timeout 600")
    return seconds


def backoff_delay(attempt: int, rng: random.Random, unit: float = BACKOFF_BASE) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): full jitter, uniform in
    ``[0, min(BACKOFF_CAP, unit * 2**attempt))``, so pushers that lost the same race do
    not come back at the same moment. ``unit`` (at least ``BACKOFF_BASE``): how long one
    attempt takes, so that the waits spread the retries over as many attempts' time
    whatever the machine's load (a crowd on a busy machine spreads out in fewer rounds
    of attempts that lose again)."""
    return rng.uniform(0.0, min(BACKOFF_CAP, max(BACKOFF_BASE, unit) * 2.0 ** min(attempt, 32)))


def _send(transport: Transport, local: dict[str, str], atomic: bool) -> tuple[list[PushStatus], list[str], bool]:
    """One push of the local tips: ``--atomic`` when the remote offers it (both refs or
    neither), else one ref at a time, ledger first, stopping at the first rejection.
    Returns the statuses, what the remote said, and whether it was atomic."""
    specs = [(ref, f"{oid}:{ref}") for ref, oid in local.items()]
    if atomic and len(specs) > 1:
        reply = transport.push([spec for _, spec in specs], atomic=True)
        if not reply.atomic_unsupported:
            return reply.statuses, reply.remote_says, True
    statuses: list[PushStatus] = []
    said: list[str] = []
    for _, spec in specs:  # EXCHANGED_REFS order: the ledger first, so notes never name runs it lacks
        reply = transport.push([spec])
        statuses.extend(reply.statuses)
        said.extend(reply.remote_says)
        if any(s.rejected for s in reply.statuses):
            break
    return statuses, said, False


def _push(repo: GitRepository, remote: str, timeout: float, sleep: Callable[[float], None],
          rng: random.Random) -> ExchangeResult:
    result = ExchangeResult(remote)
    transport = Transport(repo, remote)
    started = cycle = time.monotonic()  # cycle: when the attempt began (its fetch and merge, its push)
    atomic = True
    stalled = landed = 0
    while True:
        result.push_attempts += 1
        local = {ref: oid for ref in EXCHANGED_REFS if (oid := repo.refs.read(ref))}
        if not local:
            return result
        statuses, said, atomic = _send(transport, local, atomic)
        by_ref = {s.ref: s for s in statuses}
        rejected = [s for s in statuses if s.rejected]
        causes = [s for s in rejected if not s.atomic_casualty]
        for status in causes:
            if not (status.needs_fetch or status.lock_race):
                reason = status.summary.replace("[", "").replace("]", "").strip()
                told = f"; the remote said: {' / '.join(said[:3])}" if said else ""
                raise RemoteError(f"{transport.where} refused {status.ref}: {reason}{told}")
        if not rejected:  # (``--quiet``: git lists rejected refs only)
            result.pushed = []
            for ref, oid in local.items():
                before = repo.refs.read(tracking_ref(remote, ref))
                same = before == oid or (ref in by_ref and by_ref[ref].flag == "=")
                result.pushed.append(RefOutcome(ref, before, oid, "up to date" if same else "pushed"))
            for ref, oid in local.items():  # the remote now holds our tips: remember them as its copy
                set_tracking(repo, tracking_ref(remote, ref), oid, f"prov: push {ref} to {remote_label(remote)}")
            return result
        # lost a race: wait (full jitter), then bring in what landed, merge it and push at
        # once, so the merged tips are as fresh as they can be when they go out
        now = time.monotonic()
        delay = backoff_delay(result.push_attempts, rng, now - cycle)
        if now + delay - started > timeout:
            raise RemoteError(
                f"cannot push to {transport.where} within {timeout:g} s: others landed {landed} time(s) first and "
                "it kept moving; try again (the outbox keeps this pending), or allow longer: "
                "git config prov.push.timeout SECONDS")
        sleep(delay)
        cycle = time.monotonic()
        seen = len(result.fetched)
        told = [s.ref for s in causes if s.needs_fetch]
        if told and len(told) == len(causes) and all(ref in by_ref for ref in local):
            # every ref was answered, those that moved are there: no ls-remote needed
            _fetch_moved(repo, remote, transport, told, result)
        else:
            fetch(repo, remote, result)
        moved = any(o.action == "fetched" for o in result.fetched[seen:])
        merge_fetched(repo, remote, result)
        landed, stalled = (landed + 1, 0) if moved else (landed, stalled + 1)
        if stalled >= MAX_STALLED:
            cause = causes[0] if causes else rejected[0]
            raise RemoteError(
                f"cannot push to {transport.where}: {cause.ref} was rejected {stalled} times in a row while it did "
                f"not move ({cause.summary.replace('[', '').replace(']', '').strip()}); if no one else is pushing, "
                "a stale lock file on the server may need removing")


def _fetch_moved(repo: GitRepository, remote: str, transport: Transport, refs: list[str],
                 result: ExchangeResult) -> None:
    """Fetch ``refs`` a rejected push said moved (so the remote has them) in one ``git
    fetch``: a round trip fewer than ``fetch``'s ``ls-remote`` first, on every lost race."""
    before = {ref: repo.refs.read(tracking_ref(remote, ref)) for ref in refs}
    for ref in refs:
        repo.refs.ensure_reflog(tracking_ref(remote, ref))
    transport.fetch([f"+{ref}:{tracking_ref(remote, ref)}" for ref in refs], upkeep=False)
    for ref in refs:
        after = repo.refs.read(tracking_ref(remote, ref))
        result.fetched.append(RefOutcome(ref, before[ref], after, "up to date" if after == before[ref] else "fetched"))
