"""``prov export``: runs and their lineage in the standards' own formats.

``select_runs`` picks the runs (targets, a filter), ``graph.build_graph`` turns them
into one neutral graph, and one module per standard writes it: ``w3c_prov`` (PROV-JSON,
PROV-N, PROV-O), ``openlineage`` (RunEvents), ``intoto`` (in-toto Statements with SLSA
Provenance v1). The standards' libraries are optional extras loaded here only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..runs.run import Run
    from ..store.prov_store import ProvStore
    from .graph import ExportGraph

__all__ = ["FORMATS", "check_format", "export_bytes", "export_graph", "export_to", "select_runs"]

FORMATS = ("prov-json", "prov-n", "prov-o", "openlineage", "in-toto")


def select_runs(store: ProvStore, targets: Iterable[str] = (), where: dict[str, Any] | str | None = None, *,
                upstream: bool = False) -> list[Run]:
    """The runs to export: every run (not deleted) matching ``where``; with ``targets``,
    only those runs (a run id or prefix, deleted or not), or the runs (not deleted) that
    produced a model, dataset or artifact; ``upstream``: the runs upstream of the
    targets too."""
    from ..index.edges import IndexEdges
    from ..index.lineage import lineage_roots
    from ..index.search import find_runs
    from ..index.store import index_of
    from ..index.traversal import traverse

    targets = list(targets)
    if not targets:
        return find_runs(store, where)
    nodes = IndexEdges(index_of(store).connection())
    wanted: set[str] = set()
    for target in targets:
        roots = lineage_roots(store, target, nodes)
        if upstream or any(not r.startswith("run:") for r in roots):
            graph = traverse(nodes, roots, "upstream", None if upstream else 1)
            wanted.update(n[4:] for n, info in graph.nodes.items()
                          if n.startswith("run:") and not info["missing"] and not info["deleted"])
        wanted.update(r[4:] for r in roots if r.startswith("run:"))
    if where is not None:
        return [r for r in find_runs(store, where) if r.id in wanted]
    from ..runs.run import Run

    tip = store.ledger.tip()
    return [Run.load(store, run_id, tip) for run_id in sorted(wanted)]  # a deleted run named is exported too


def check_format(fmt: str, *, sign: bool = False, url: str | None = None, namespace: str | None = None) -> None:
    """Refuse an unknown format, and options the format does not take."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if sign and fmt != "in-toto":
        raise UsageError(f"--sign applies to the in-toto format only, not {fmt}")
    if url is not None and fmt != "openlineage":
        raise UsageError(f"--url sends OpenLineage events; it does not apply to {fmt}")
    if namespace is not None and fmt != "openlineage":
        raise UsageError(f"--namespace names OpenLineage jobs and datasets; it does not apply to {fmt}")
    if namespace is not None and (not isinstance(namespace, str) or not namespace.strip()
                                  or any(ord(c) < 32 for c in namespace)):
        raise UsageError(f"--namespace must be a non-empty name without control characters, not {namespace!r}")


def export_graph(store: ProvStore, runs: Iterable[Run]) -> ExportGraph:
    from .graph import build_graph

    return build_graph(store, runs)


def export_bytes(store: ProvStore, fmt: str, runs: Iterable[Run], *, sign: bool = False,
                 url: str | None = None, namespace: str | None = None) -> bytes:
    """The export of ``runs`` in ``fmt`` (one of ``FORMATS``), as ``export_to`` writes it."""
    import io

    buf = io.BytesIO()
    export_to(store, fmt, runs, buf, sign=sign, url=url, namespace=namespace)
    return buf.getvalue()


def export_to(store: ProvStore, fmt: str, runs: Iterable[Run], stream: BinaryIO, *, sign: bool = False,
              url: str | None = None, namespace: str | None = None) -> None:
    """Write the export of ``runs`` in ``fmt`` (one of ``FORMATS``) to ``stream``;
    PROV-O, OpenLineage and in-toto a node or run at a time, as they are made. ``sign``:
    in-toto only, each statement in a DSSE envelope signed with the user's ssh key;
    ``url``: OpenLineage only, the events are also sent there (openlineage-python's HTTP
    client); ``namespace``: OpenLineage only, of the jobs and datasets (default
    ``git-prov``)."""
    check_format(fmt, sign=sign, url=url, namespace=namespace)
    import gc

    # the documents are millions of small objects that live to the end: the cyclic
    # collector's full passes over them made the PROV-O export quadratic (15 s -> 6 s
    # for 1,000 runs, see docs/performance.md)
    collecting = gc.isenabled()
    gc.disable()
    try:
        _export(store, fmt, runs, stream, sign=sign, url=url, namespace=namespace)
    finally:
        if collecting:
            gc.enable()


def _export(store: ProvStore, fmt: str, runs: Iterable[Run], stream: BinaryIO, *, sign: bool, url: str | None,
            namespace: str | None) -> None:
    graph = export_graph(store, runs)
    if fmt == "prov-o":
        from .w3c_prov import turtle_chunks

        held = ""  # one chunk behind: the last ends with one newline
        for chunk in turtle_chunks(graph):
            if held:
                stream.write(held.encode("utf-8"))
            held = chunk
        stream.write(held.rstrip("\n").encode("utf-8") + b"\n")
        return
    if fmt.startswith("prov-"):
        from .w3c_prov import write_prov

        stream.write(write_prov(graph, fmt))
        return
    if fmt == "openlineage":
        from .openlineage import openlineage_events, send_events, write_openlineage

        if url is not None:
            send_events(openlineage_events(store, graph, namespace), url)
        write_openlineage(store, graph, stream, namespace)
        return
    from .intoto import write_intoto

    write_intoto(store, graph, stream, sign=sign)
