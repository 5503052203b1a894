"""The rules of local calls, applied to values a remote brings (docs/design/security.md):
records and states keep the limits of the API calls that make them, Lamport clocks are
bounded, and what a finished run recorded never changes."""

from __future__ import annotations

import math

from ..errors import UsageError
from ..keys import MAX_KEY_LENGTH, check_json_value, check_key, check_label
from ..model import RunRecord, RunState

__all__ = ["MAX_LAMPORT", "MAX_LAMPORT_JUMP", "RECORDED_FIELDS", "check_key_once", "check_record_values",
           "check_state_values", "rewrites_of"]

#: largest Lamport clock accepted (exactly representable in JSON numbers everywhere)
MAX_LAMPORT = 1 << 53
#: most writes a remote state may be ahead of the local one: a clock that jumps further
#: is a forged win, not a teammate's edits
MAX_LAMPORT_JUMP = 1 << 20
#: what a run has recorded once it ended: no later state may change it
RECORDED_FIELDS = ("status", "ended", "exit_code", "experiment", "params", "metrics", "observations", "datasets",
                   "artifacts")


def check_record_values(record: RunRecord) -> None:
    """A run record's values under ``start_run``'s rules (``UsageError`` naming the field)."""
    _label(record.name, "run name")
    _label(record.experiment, "run experiment")
    _check_mapping(record.params, "hyperparameter")
    for i, arg in enumerate(record.command):
        if not isinstance(arg, str) or len(arg) > 1 << 16:
            raise UsageError(f"command argument {i} is longer than 65,536 characters")
    _check_rerun_fields(record)
    who = record.user
    if who and (len(who) > 1024 or not who.isprintable() and any(ord(c) < 32 for c in who)
                or not who.endswith(">") or " <" not in who or who.count("<") != 1 or who.count(">") != 1):
        raise UsageError("user is not a git identity 'Name <email>'")
    host = record.host
    if len(host) > 255 or not host.isprintable() and any(ord(c) < 32 for c in host):
        raise UsageError("host is not a host name")


#: ``RunRecord.launcher`` values ``start_run`` writes
LAUNCHERS = ("", "command", "script", "interactive", "notebook")


def _check_rerun_fields(record: RunRecord) -> None:
    """The fields ``prov rerun`` reads: how the run was started, a working directory
    inside the work tree, a run id (the package list is bounded by the record's size)."""
    if record.launcher not in LAUNCHERS:
        raise UsageError(f"launcher {record.launcher[:40]!r} is not one of {', '.join(map(repr, LAUNCHERS))}")
    cwd = record.cwd
    if cwd is not None and (len(cwd) > 4096 or cwd.startswith("/") or ".." in cwd.split("/") or "\0" in cwd):
        raise UsageError("cwd is not a relative path inside the work tree")
    if record.reproduces is not None and (len(record.reproduces) not in (40, 64)
                                          or any(c not in "0123456789abcdef" for c in record.reproduces)):
        raise UsageError("reproduces is not a run id")


def check_state_values(state: RunState) -> None:
    """A run state's values under the rules of the calls that set them."""
    if isinstance(state.lamport, bool) or not 0 <= state.lamport <= MAX_LAMPORT:
        raise UsageError(f"lamport clock {state.lamport} is outside 0 to 2**53")
    _label(state.name, "run name")
    _label(state.experiment, "run experiment")
    _label(state.writer, "writer")
    _check_mapping(state.params, "hyperparameter")
    _check_mapping(state.attributes, "attribute")
    _check_mapping(state.tags, "tag")
    for kind, keys in (("metric key", state.metrics), ("observation key", state.observations),
                       ("dataset key", state.datasets), ("artifact key", state.artifacts)):
        for key in keys:
            if key not in _KEYS:
                check_key_once(key, kind)


# A first pull checks hundreds of thousands of records and states whose keys and small
# values repeat: keys and texts that passed are remembered (a bounded set each), labels
# and scalars take a short path with the same rules as ``check_label`` and
# ``check_json_value`` (measured: 117 µs a state at first, about half the time of a
# 100,000-run first pull; a few µs now).
_KEYS: set[object] = set()
_TEXTS: set[str] = set()
_REMEMBERED = 1 << 16
_SHORT_TEXT = 16  # no token shape is shorter


def _remember(passed: set, item: object) -> None:
    if len(passed) >= _REMEMBERED:
        passed.clear()
    passed.add(item)


def _label(value: object, what: str) -> None:
    # printable text has no control character nor lone surrogate: what check_label refuses
    if not (value.__class__ is str and len(value) <= MAX_KEY_LENGTH and value.isprintable()):  # type: ignore[attr-defined]
        check_label(value, what)


def check_key_once(key: object, what: str) -> None:
    """``check_key``, remembered: a key that passed is not checked again."""
    if key not in _KEYS:
        check_key(key, what)
        _remember(_KEYS, key)


def _check_mapping(values: dict, what: str) -> None:
    keys, texts = _KEYS, _TEXTS
    for key, value in values.items():
        if key not in keys:
            check_key_once(key, f"{what} key")
        kind = value.__class__
        if kind is int or kind is bool or value is None:
            continue
        if kind is float:
            if not math.isfinite(value):
                raise UsageError(f"{what} {key!r} is {value}; NaN and infinity are only allowed for metrics")
            continue
        if kind is str:
            if len(value) < _SHORT_TEXT and value.isprintable() or value in texts:
                continue  # too short for a token shape or URL credentials, valid text; or passed before
            check_json_value(value, f"{what} {key!r}")
            _remember(texts, value)
            continue
        check_json_value(value, f"{what} {key!r}")


def rewrites_of(mine: RunState, theirs: RunState) -> list[str]:
    """Why a remote ``theirs`` may not replace this clone's ``mine`` of the same run:
    a clock that jumps ahead further than edits explain, or a change to what the run
    recorded once it had ended (a teammate may still rename, tag or delete it)."""
    problems = []
    if theirs.lamport > mine.lamport + MAX_LAMPORT_JUMP:
        problems.append(f"lamport clock {theirs.lamport} jumps more than 2**20 ahead of this clone's "
                        f"{mine.lamport}; refused")
    wins = (theirs.lamport, theirs.writer) > (mine.lamport, mine.writer)
    if mine.status != "running" and wins:
        changed = [f for f in RECORDED_FIELDS if getattr(mine, f) != getattr(theirs, f)]
        if changed:
            problems.append(f"would change {', '.join(changed)} of a run that ended here ({mine.status}); what a "
                            "finished run recorded never changes")
    return problems
