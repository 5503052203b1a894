"""Canonical bytes for every stored record.

Rules (the same record always gives the same bytes, hence the same git object id):

- JSON via msgspec, keys sorted at every level, UTF-8, no insignificant whitespace;
- floats in msgspec's shortest round-trip form; non-finite floats, which JSON cannot
  hold, as ``{"$float": "NaN" | "Infinity" | "-Infinity"}`` so they round-trip
  exactly (``null`` would lose them). User mappings may not use keys starting ``$``;
- every record carries ``format_version``; a newer one is refused by name.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import msgspec

from ._version import upgrade_command
from .errors import DataError, FormatVersionError
from .model.common import FORMAT_VERSION

__all__ = ["decode", "decode_note_line", "encode", "to_output", "to_plain"]

T = TypeVar("T")

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_FLOAT_TAG = "$float"
_encoder = msgspec.json.Encoder(order="sorted")


def _tag_nonfinite(value: Any, keep_tags: bool = False) -> Any:
    if isinstance(value, float):
        if value != value:
            return {_FLOAT_TAG: "NaN"}
        if value in (math.inf, -math.inf):
            return {_FLOAT_TAG: "Infinity" if value > 0 else "-Infinity"}
        return value
    if isinstance(value, dict):
        if len(value) == 1 and _FLOAT_TAG in value:
            if keep_tags and isinstance(value[_FLOAT_TAG], str) and value[_FLOAT_TAG] in _NONFINITE:
                return value  # tagged already (a record made with to_plain)
            # would decode as a float (or not at all): refuse it rather than store it
            raise DataError(f"cannot encode {value!r}: the key {_FLOAT_TAG!r} is reserved; rename it")
        return {k: _tag_nonfinite(v, keep_tags) for k, v in value.items()}
    if isinstance(value, list):
        return [_tag_nonfinite(v, keep_tags) for v in value]
    return value


def _untag_nonfinite(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _FLOAT_TAG in value:
            try:
                return _NONFINITE[value[_FLOAT_TAG]]
            except (KeyError, TypeError):
                raise DataError(f"invalid tagged float {value!r}") from None
        return {k: _untag_nonfinite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag_nonfinite(v) for v in value]
    return value


def _needs_tagging(value: Any) -> bool:
    """Whether ``_tag_nonfinite`` would change (or refuse) ``value``: a scan that builds
    nothing, so the common record (all floats finite) is not copied."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float):
            if v != v or v in (math.inf, -math.inf):
                return True
        elif isinstance(v, dict):
            if _FLOAT_TAG in v:
                return True
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def to_plain(record: Any) -> Any:
    """The record as JSON-ready builtins (sorted keys, tagged non-finite floats)."""
    plain = msgspec.to_builtins(record, order="sorted")
    return _tag_nonfinite(plain) if _needs_tagging(plain) else plain


def to_output(value: Any) -> Any:
    """``value`` as JSON-ready builtins for printing (``--json``): like ``to_plain``, but
    parts tagged already (a record turned into builtins with ``to_plain``) pass as they
    are, so every ``--json`` output reads back with the same tags as stored records."""
    plain = msgspec.to_builtins(value, order="sorted")
    return _tag_nonfinite(plain, keep_tags=True) if _needs_tagging(plain) else plain


def encode(record: Any) -> bytes:
    """Canonical bytes of a record (a msgspec Struct or plain builtins)."""
    try:
        return _encoder.encode(to_plain(record))
    except (TypeError, msgspec.EncodeError, OverflowError) as exc:
        raise DataError(f"cannot encode record: {exc}") from exc


def _check_version(obj: Any, what: str) -> None:
    if not isinstance(obj, dict):
        raise DataError(f"{what} is not a JSON object")
    version = obj.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise DataError(f"{what} has no format_version; it was not written by git-prov")
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"{what} uses format version {version}, newer than this git-prov reads "
            f"({FORMAT_VERSION}); upgrade with: {upgrade_command(obj.get('requires'))}"
        )
    if version < 1:
        raise DataError(f"{what} has invalid format_version {version}")


def decode(data: bytes, type: type[T], what: str = "record") -> T:
    """Decode canonical bytes into ``type``, refusing unknown format versions."""
    try:
        obj = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise DataError(f"{what} is not valid JSON: {exc}") from exc
    _check_version(obj, what)
    if _FLOAT_TAG.encode() in data:
        obj = _untag_nonfinite(obj)
    try:
        return msgspec.convert(obj, type)
    except msgspec.ValidationError as exc:
        raise DataError(f"{what} does not match the record model: {exc}") from exc


def decode_note_line(line: bytes, what: str = "note line") -> Any:
    """Decode one line of a prov note into its record (capture, run or rewrite link)."""
    from .model.links import NoteLine

    return decode(line, NoteLine, what)  # type: ignore[arg-type]
