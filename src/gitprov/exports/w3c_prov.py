"""W3C PROV: the export graph as a ``prov`` document (PROV-JSON, PROV-N, PROV-O Turtle).

Runs are activities, models, datasets, artifacts, commits, patches and stage digests
are entities, the git identity that recorded a run is its agent. Every node and every
relation has an identifier made from what it names (relations: a digest of their
arguments), so the output has no blank nodes and no counters: the same graph gives
the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .extras import require

if TYPE_CHECKING:
    from .graph import Edge, ExportGraph

__all__ = ["NAMESPACE", "PREFIXES", "node_qname", "prov_document", "write_prov"]

NAMESPACE = "https://git-prov.dev/ns/"
#: node kind -> prefix; each prefix is ``NAMESPACE<kind>/``
PREFIXES = ("run", "model", "dataset", "artifact", "commit", "patch", "digest", "agent", "relation")
_TYPES = {"model": "Model", "dataset": "Dataset", "artifact": "Artifact", "commit": "Commit", "patch": "Patch",
          "digest": "Digest"}


def node_qname(node: str) -> str:
    """``run:abc`` -> ``run:abc``; ``model:bert@v3`` -> ``model:bert%40v3``: the local
    part percent-encoded so it is a valid name in PROV-N, JSON and RDF alike."""
    kind, _, rest = node.partition(":")
    return f"{kind}:{quote(rest, safe='-._~')}"


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _relation_id(edge: Edge) -> str:
    digest = hashlib.sha256("\0".join((edge.relation, edge.subject, edge.object, edge.role)).encode()).hexdigest()
    return f"relation:{edge.relation}-{digest[:16]}"


def prov_document(graph: ExportGraph) -> Any:
    """The ``prov.model.ProvDocument`` of ``graph``."""
    require("prov", "PROV export")
    from prov.constants import PROV
    from prov.model import ProvDocument

    doc = ProvDocument()
    gp = doc.add_namespace("gitprov", NAMESPACE)
    for prefix in PREFIXES:
        doc.add_namespace(prefix, f"{NAMESPACE}{prefix}/")
    for run_id, run in graph.runs.items():
        record, state = run.record, run.state
        attrs: dict[str, Any] = {
            "prov:type": gp["Run"], "prov:label": state.name or run_id[:12],
            "gitprov:status": state.status, "gitprov:lexicon": record.schema.lexicon,
        }
        if state.experiment:
            attrs["gitprov:experiment"] = state.experiment
        if record.command:
            attrs["gitprov:command"] = _json(record.command)
        params = {**record.params, **state.params}
        if params:
            attrs["gitprov:params"] = _json(params)
        if record.environment is not None:
            import msgspec

            attrs["gitprov:environment"] = _json(msgspec.to_builtins(record.environment))
        if state.metrics:
            attrs["gitprov:metrics"] = _json({k: m.value for k, m in state.metrics.items()})
        doc.activity(node_qname(f"run:{run_id}"), _time(record.created), _time(state.ended), attrs)
    for run_id in graph.other_runs:
        doc.activity(node_qname(f"run:{run_id}"), None, None, {"prov:type": gp["Run"], "gitprov:selected": False})
    for node, info in graph.entities.items():
        attrs = {"prov:type": gp[_TYPES[info["kind"]]]}
        attrs.update({f"gitprov:{k}": v for k, v in sorted(info.items()) if k != "kind"})
        doc.entity(node_qname(node), attrs)
    for node, who in graph.agents.items():
        doc.agent(node_qname(node), {"prov:type": PROV["Person"], "prov:label": who["name"],
                                     "gitprov:email": who["email"]})
    for edge in graph.edges:
        ident = _relation_id(edge)
        extra = {"prov:role": gp[edge.role]} if edge.role else None
        subject, obj = node_qname(edge.subject), node_qname(edge.object)
        if edge.relation == "used":
            doc.used(subject, obj, None, ident, extra)
        elif edge.relation == "wasGeneratedBy":
            doc.wasGeneratedBy(subject, obj, None, ident, extra)
        elif edge.relation == "wasDerivedFrom":
            doc.wasDerivedFrom(subject, obj, identifier=ident, other_attributes=extra)
        elif edge.relation == "wasAssociatedWith":
            doc.wasAssociatedWith(subject, obj, identifier=ident, other_attributes=extra)
        elif edge.relation == "wasInformedBy":
            doc.wasInformedBy(subject, obj, ident, {"prov:type": gp[edge.role]} if edge.role else None)
    return doc


def write_prov(graph: ExportGraph, fmt: str) -> bytes:
    """``graph`` as PROV-JSON (``prov-json``), PROV-N (``prov-n``) or PROV-O Turtle (``prov-o``)."""
    doc = prov_document(graph)
    if fmt == "prov-json":
        text = doc.serialize(format="json", indent=2, sort_keys=True)
    elif fmt == "prov-n":
        text = doc.serialize(format="provn", strict=True)
    else:
        require("rdflib", "PROV-O export")
        text = doc.serialize(format="rdf", rdf_format="turtle")
    return (text.rstrip("\n") + "\n").encode("utf-8")
