"""Reversible mapping between prov keys and the keys a tracker accepts.

MLflow accepts metric, param and tag names made of word characters, ``_ - . / :`` and
spaces, that do not change under ``posixpath.normpath`` (no ``//``, no trailing ``/``,
no ``.`` or ``..`` segment) and do not start with ``..``, at most 250 characters. prov keys are wider. A key MLflow accepts is used as it is;
anything else is escaped byte-wise as ``_xHH`` (UTF-8 bytes, lower-case hex), and a
literal ``_`` followed by ``x`` is escaped too, so the mapping is injective and
``prov_key(mlflow_key(k)) == k``. ``:`` is escaped because MLflow servers on Windows
refuse it. Escaped keys longer than 250 characters are shortened to 233 characters plus
``_h`` and 16 hex digits of their sha256 (the only non-reversible case; the original
key is kept in the run's ``prov.keys`` tag).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["MAX_KEY_LENGTH", "mlflow_key", "prov_key"]

MAX_KEY_LENGTH = 250
_SAFE = re.compile(r"[\w.\- /]")
_ESCAPE = re.compile(r"_x([0-9a-f]{2})")


def mlflow_key(key: str) -> str:
    """The MLflow name of the prov key ``key`` (itself when MLflow accepts it)."""
    out: list[str] = []
    n = len(key)
    for i, ch in enumerate(key):
        nxt = key[i + 1] if i + 1 < n else ""
        if ch == "_" and nxt == "x":
            out.append("_x5f")
        elif ch == "/" and (i == 0 or nxt in ("/", "") or key[i - 1] == "/"):
            out.append("_x2f")
        elif _SAFE.fullmatch(ch) and ch.isascii() or (ch.isalnum() and not ch.isascii()):
            out.append(ch)
        else:
            out.extend(f"_x{b:02x}" for b in ch.encode("utf-8"))
    # MLflow refuses names posixpath.normpath would change ("." or ".." segments) and
    # names starting with "..": the first dot of such a segment is escaped
    segments = "".join(out).split("/")
    for i, segment in enumerate(segments):
        if segment in (".", "..") or (i == 0 and segment.startswith("..")):
            segments[i] = "_x2e" + segment[1:]
    mapped = "/".join(segments)
    if len(mapped) > MAX_KEY_LENGTH:
        head = re.sub(r"_(x[0-9a-f]?)?$", "", mapped[:232])
        mapped = head + "_h" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return mapped


def prov_key(name: str) -> str:
    """The prov key an MLflow name came from (the inverse of ``mlflow_key``)."""
    if "_x" not in name:
        return name
    data = bytearray()
    i = 0
    while i < len(name):
        m = _ESCAPE.match(name, i)
        if m:
            data.append(int(m.group(1), 16))
            i = m.end()
        else:
            data.extend(name[i].encode("utf-8"))
            i += 1
    return data.decode("utf-8", errors="replace")
