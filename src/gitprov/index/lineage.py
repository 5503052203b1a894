"""``prov lineage``: resolve what the user names (a run, a model, a node id) to graph
nodes, then walk the index's lineage edges from them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UsageError
from ..nodes import KINDS, is_run_prefix, split_node
from ..runs.reading import resolve_run_id
from .edges import IndexEdges
from .graph import LineageGraph
from .store import index_of
from .traversal import traverse

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["lineage", "lineage_roots"]


def lineage(store: ProvStore, target: str, direction: str = "both", depth: int | None = None) -> LineageGraph:
    """What fed ``target`` (``upstream``), what it fed (``downstream``), or both; read
    from the index frontier by frontier, so the cost follows what is reached (when the
    graph is first used: its roots are resolved now)."""
    nodes = IndexEdges(index_of(store).connection())
    return traverse(nodes, lineage_roots(store, target, nodes), direction, depth, lazy=True)


def lineage_roots(store: ProvStore, target: str, nodes: IndexEdges) -> list[str]:
    """The graph nodes ``target`` names: a run id or prefix, ``MODEL[@VERSION]``,
    ``RUN/PATH`` (an artifact) or an explicit node id."""
    if not isinstance(target, str) or not target.strip():
        raise UsageError("lineage needs a run id, a MODEL[@VERSION] or a node id")
    target = target.strip()
    if target in nodes:
        return [target]
    kind, rest = split_node(target)
    if kind in KINDS:
        if kind == "run":
            return [f"run:{resolve_run_id(store.ledger, rest)}"]
        if kind == "artifact" and _artifact_node(rest, nodes):
            return [_artifact_node(rest, nodes)]  # type: ignore[list-item]
        if kind == "model" or kind == "dataset":
            found = [n for n in nodes.with_prefix(f"{kind}:{rest}") if n.startswith(f"{kind}:{rest}@")
                     or n == f"{kind}:{rest}"]
            if found:
                return sorted(found)
        raise UsageError(f"no {kind} {rest!r} in the lineage of any run")
    artifact = _artifact_node(target, nodes)
    if artifact is not None:
        return [artifact]
    if is_run_prefix(target.lower()):
        try:
            return [f"run:{resolve_run_id(store.ledger, target)}"]
        except UsageError:
            pass
    found = [n for n in nodes.with_prefix(f"model:{target}")
             if n == f"model:{target}" or n.startswith(f"model:{target}@")]
    if "@" in target:
        found = [n for n in found if n == f"model:{target}"] or found
    if found:
        return sorted(found)
    raise UsageError(
        f"no run or model {target!r}; give a run id, MODEL[@VERSION], or a node id such as dataset:KEY@DIGEST"
    )


def _artifact_node(target: str, nodes: IndexEdges) -> str | None:
    """The node of ``RUN/PATH`` (RUN a run id or unique prefix), if exactly one."""
    run_part, slash, path = target.partition("/")
    if not slash or not is_run_prefix(run_part.lower()):
        return None
    found = [n for n in nodes.with_prefix(f"artifact:{run_part.lower()}") if n.split("/", 1)[1] == path]
    return found[0] if len(found) == 1 else None
