"""Validating user-supplied keys and values, and turning keys into tree names.

Keys name params, metrics, tags, attributes and artifacts. They become git tree entry
names, so they must never act as paths: no ``..``, no leading ``/``, no control
characters, at most 250 characters. ``/`` inside a key is allowed (``train/loss``) and
percent-encoded in tree names, reversibly. Labels (run names, experiments, model names
and versions, dataset keys) are free text with the same length limit and no control
characters.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote, unquote

from .errors import UsageError

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_VALUE_BYTES",
    "check_json_value",
    "check_key",
    "check_label",
    "key_from_name",
    "key_to_name",
]

MAX_KEY_LENGTH = 250
#: Largest encoded param, tag or attribute value (bytes); artifacts have no limit.
MAX_VALUE_BYTES = 1 << 20


def check_key(key: object, what: str = "key") -> str:
    """Return ``key`` if it is a safe key, else raise ``UsageError`` saying why."""
    if not isinstance(key, str):
        raise UsageError(f"{what} must be a string, got {type(key).__name__}")
    if not key:
        raise UsageError(f"{what} must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise UsageError(f"{what} {key[:40]!r}… is longer than {MAX_KEY_LENGTH} characters")
    if key.startswith("/") or key.startswith("\\"):
        raise UsageError(f"{what} {key!r} must not start with '/'")
    if any(part in ("..", ".") for part in key.replace("\\", "/").split("/")):
        raise UsageError(f"{what} {key!r} must not contain '..' or '.' path segments")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise UsageError(f"{what} {key!r} contains control characters")
    if key.startswith("$"):
        raise UsageError(f"{what} {key!r} must not start with '$' (reserved)")
    _check_utf8(key, what)
    return key


def _check_utf8(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(f"{what} {text[:40]!r} holds a lone surrogate ({exc.reason}); pass valid Unicode text") from exc


def check_label(value: object, what: str, *, required: bool = False) -> str:
    """Return ``value`` if it is a label: a string of at most 250 characters, none of them
    a control character (below 32, or DEL); ``required``: not empty either. Else raise
    ``UsageError`` naming ``what`` and the rule."""
    rule = f"{'1 to' if required else 'at most'} {MAX_KEY_LENGTH} printable characters"
    if not isinstance(value, str):
        raise UsageError(f"{what} must be a string of {rule}, got {type(value).__name__}")
    if (required and not value) or len(value) > MAX_KEY_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in value):
        shown = repr(value[:40]) + ("…" if len(value) > 40 else "")
        raise UsageError(f"{what} {shown} must be {rule}")
    _check_utf8(value, what)
    return value


def key_to_name(key: str) -> str:
    """A tree entry name for ``key`` (reversible; never ``.``/``..``, no ``/``)."""
    return quote(key, safe="-_.~ ")


def key_from_name(name: str) -> str:
    return unquote(name)


def check_json_value(value: Any, what: str, *, allow_nonfinite: bool = False) -> Any:
    """Check ``value`` is JSON-serializable (str keys, finite floats unless allowed)
    and holds nothing shaped like a secret (DESIGN.md §8)."""
    import msgspec

    from .scrub import contains_token, is_redaction

    def walk(v: Any, depth: int = 0) -> None:
        if isinstance(v, str) and contains_token(v):
            raise UsageError(
                f"{what} looks like a secret (a token or a URL with credentials); secrets must "
                "never enter git history: pass them through the environment instead"
            )
        if depth > 64:
            raise UsageError(f"{what} is nested too deeply")
        if isinstance(v, float) and not allow_nonfinite and not math.isfinite(v):
            raise UsageError(f"{what} is {v}; NaN and infinity are only allowed for metrics")
        if isinstance(v, dict):
            if is_redaction(v):  # a secret hyperparameter, as stored
                return
            for k, item in v.items():
                if not isinstance(k, str):
                    raise UsageError(f"{what} has a non-string key {k!r}")
                if k.startswith("$"):
                    raise UsageError(f"{what} has key {k!r}; keys starting with '$' are reserved")
                walk(item, depth + 1)
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item, depth + 1)
        elif not isinstance(v, (str, int, float, bool, type(None))):
            raise UsageError(f"{what} of type {type(v).__name__} cannot be stored as JSON")

    walk(value)
    try:
        size = len(msgspec.json.encode(value))
    except UnicodeEncodeError as exc:
        raise UsageError(f"{what} holds a lone surrogate ({exc.reason}); pass valid Unicode text") from exc
    except (TypeError, OverflowError, msgspec.EncodeError) as exc:
        raise UsageError(f"{what} cannot be stored as JSON: {exc}") from exc
    if size > MAX_VALUE_BYTES:
        raise UsageError(f"{what} is {size} bytes encoded; the limit is {MAX_VALUE_BYTES} (store it as an artifact)")
    return value
