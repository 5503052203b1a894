"""Lineage node ids, spelled in one place.

A run's stored lineage maps keys ``model:<name>``, ``run:<run id>`` and
``dataset:<key>`` to lists of versions, paths or digests. The lineage graph names one
node per thing: ``run:<id>``, ``model:<name>`` or ``model:<name>@<version>``,
``dataset:<key>@<digest>`` and ``artifact:<run id>/<path>``.
"""

from __future__ import annotations

from .errors import UsageError
from .keys import check_label

__all__ = [
    "ARTIFACT",
    "DATASET",
    "KINDS",
    "MODEL",
    "RUN",
    "check_run_prefix",
    "graph_node",
    "is_run_prefix",
    "lineage_label",
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


def lineage_label(value: object, what: str) -> str:
    """A name, version, path or digest of a lineage entry: a label (``keys.check_label``,
    not empty); an int, such as model version 3, is taken as its digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return check_label(value, what, required=True)


def check_run_prefix(value: object) -> str:
    """A run id or unique prefix given by a user, lower-cased."""
    text = lineage_label(value, "run id").strip().lower()
    if not is_run_prefix(text):
        raise UsageError(f"run id {text!r} is not a run id or a prefix of at least 4 hex characters")
    return text
