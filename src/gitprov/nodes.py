"""Lineage node ids, spelled in one place.

A run's stored lineage maps keys ``model:<name>``, ``run:<run id>`` and
``dataset:<key>`` to lists of versions, paths or digests. The lineage graph names one
node per thing: ``run:<id>``, ``model:<name>`` or ``model:<name>@<version>``,
``dataset:<key>@<digest>`` and ``artifact:<run id>/<path>``.
"""

from __future__ import annotations

from .errors import UsageError

__all__ = [
    "ARTIFACT",
    "DATASET",
    "KINDS",
    "MODEL",
    "RUN",
    "check_label",
    "check_run_prefix",
    "graph_node",
    "is_run_prefix",
    "split_node",
]

MODEL, RUN, DATASET, ARTIFACT = "model", "run", "dataset", "artifact"
#: every kind a graph node id can start with
KINDS = (RUN, MODEL, DATASET, ARTIFACT)


def graph_node(kind: str, name: str, item: str = "") -> str:
    """The graph node of one stored lineage entry ``(kind, name, item)``: a run with a
    path is one of its artifacts; a model without a version is the model itself."""
    if kind == MODEL:
        return f"model:{name}@{item}" if item else f"model:{name}"
    if kind == DATASET:
        return f"dataset:{name}@{item}"
    if item:
        return f"artifact:{name}/{item}"
    return f"run:{name}"


def split_node(node: str) -> tuple[str, str]:
    """``("run", "<id>")`` from ``"run:<id>"``; the kind is ``""`` when there is none."""
    kind, colon, rest = node.partition(":")
    return (kind, rest) if colon and kind in KINDS else ("", node)


def is_run_prefix(text: str) -> bool:
    """At least 4 lower-case hex characters: a run id or a prefix of one."""
    return len(text) >= 4 and all(c in "0123456789abcdef" for c in text)


def check_label(value: object, what: str) -> str:
    """A name, version, path or digest of a lineage entry: 1 to 250 printable
    characters (a string, or an int such as a model version)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise UsageError(f"{what} must be a string, got {type(value).__name__}")
    text = str(value)
    if not text or len(text) > 250 or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UsageError(f"{what} {text[:40]!r} must be 1 to 250 printable characters")
    return text


def check_run_prefix(value: object) -> str:
    """A run id or unique prefix given by a user, lower-cased."""
    text = check_label(value, "run id").strip().lower()
    if not is_run_prefix(text):
        raise UsageError(f"run id {text!r} is not a run id or a prefix of at least 4 hex characters")
    return text
