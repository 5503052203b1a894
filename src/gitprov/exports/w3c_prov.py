"""W3C PROV: the export graph as a ``prov`` document (PROV-JSON, PROV-N, PROV-O Turtle).

Runs are activities, models, datasets, artifacts, commits, patches and stage digests
are entities, the git identity that recorded a run is its agent. Every node and every
relation has an identifier made from what it names (relations: a digest of their
arguments), so the output has no blank nodes and no counters: the same graph gives
the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .extras import require

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .graph import Edge, ExportGraph

__all__ = ["NAMESPACE", "PREFIXES", "node_qname", "prov_document", "turtle_chunks", "write_prov"]

NAMESPACE = "https://git-prov.dev/ns/"
#: node kind -> prefix; each prefix is ``NAMESPACE<kind>/``
PREFIXES = ("run", "model", "dataset", "artifact", "commit", "patch", "digest", "agent", "relation")
_TYPES = {"model": "Model", "dataset": "Dataset", "artifact": "Artifact", "commit": "Commit", "patch": "Patch",
          "digest": "Digest"}


@functools.lru_cache(maxsize=1 << 16)
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


def _run_attributes(run: Any) -> dict[str, Any]:
    """A selected run's attributes (``gitprov:`` names, ``label``: its label), as PROV
    writes them: JSON text for the structured ones."""
    record, state = run.record, run.state
    attrs: dict[str, Any] = {"label": state.name or run.id[:12], "status": state.status,
                             "lexicon": record.schema.lexicon}
    if state.experiment:
        attrs["experiment"] = state.experiment
    if record.command:
        attrs["command"] = _json(record.command)
    params = {**record.params, **state.params}
    if params:
        attrs["params"] = _json(params)
    if record.environment is not None:
        import msgspec

        attrs["environment"] = _json(msgspec.to_builtins(record.environment))
    if state.metrics:
        attrs["metrics"] = _json({k: m.value for k, m in state.metrics.items()})
    return attrs


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
        own = _run_attributes(run)
        attrs: dict[str, Any] = {"prov:type": gp["Run"], "prov:label": own.pop("label")}
        attrs.update({f"gitprov:{k}": v for k, v in own.items()})
        doc.activity(node_qname(f"run:{run_id}"), _time(run.record.created), _time(run.state.ended), attrs)
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


#: relation -> (the qualified predicate on its subject, the qualification class, the
#: predicate to its object): PROV-O's qualification pattern, as ``prov`` encodes an
#: identified relation
_QUALIFIED = {
    "used": ("qualifiedUsage", "Usage", "entity"),
    "wasGeneratedBy": ("qualifiedGeneration", "Generation", "activity"),
    "wasDerivedFrom": ("qualifiedDerivation", "Derivation", "entity"),
    "wasAssociatedWith": ("qualifiedAssociation", "Association", "agent"),
    "wasInformedBy": ("qualifiedCommunication", "Communication", "activity"),
}
_XSD = "http://www.w3.org/2001/XMLSchema#"
_PN_LOCAL = re.compile(r"[A-Za-z0-9_%]([A-Za-z0-9_.%-]*[A-Za-z0-9_%-])?")


def _name(node: str) -> str:
    """A node as a Turtle prefixed name, or a full IRI where its local part is not a
    valid one (a trailing ``.``, a ``~``)."""
    qname = node_qname(node)
    prefix, _, local = qname.partition(":")
    if _PN_LOCAL.fullmatch(local):
        return qname
    return f"<{NAMESPACE}{prefix}/{local}>"


def _literal(value: Any) -> str:
    """A Turtle literal with the datatype ``prov`` gives the value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f'"{value}"^^xsd:int'
    if isinstance(value, float):
        return f'"{value!r}"^^xsd:double'
    if isinstance(value, datetime):
        return f'"{value.isoformat()}"^^xsd:dateTime'
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{text}"'


def _block(subject: str, types: list[str], props: list[tuple[str, str]]) -> str:
    lines = [f"{subject} a {', '.join(types)}"] + [f"    {p} {o}" for p, o in props]
    return " ;\n".join(lines) + " .\n\n"


def turtle_chunks(graph: ExportGraph) -> Iterator[str]:
    """``graph`` as PROV-O Turtle, a node or relation at a time: the triples ``prov``'s
    own RDF serialiser gives its document (the tests compare them), written without
    building an RDF graph, so the cost is linear and the memory one node's."""
    yield "".join(f"@prefix {p}: <{NAMESPACE}{p}/> .\n" for p in PREFIXES)
    yield (f"@prefix gitprov: <{NAMESPACE}> .\n@prefix prov: <http://www.w3.org/ns/prov#> .\n"
           f"@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n@prefix xsd: <{_XSD}> .\n\n")
    for run_id, run in graph.runs.items():
        own = _run_attributes(run)
        props = [("rdfs:label", _literal(own.pop("label")))]
        for key, when in (("startedAtTime", _time(run.record.created)), ("endedAtTime", _time(run.state.ended))):
            if when is not None:
                props.append((f"prov:{key}", _literal(when)))
        props += [(f"gitprov:{k}", _literal(v)) for k, v in own.items()]
        yield _block(_name(f"run:{run_id}"), ["prov:Activity", "gitprov:Run"], props)
    for run_id in graph.other_runs:
        yield _block(_name(f"run:{run_id}"), ["prov:Activity", "gitprov:Run"], [("gitprov:selected", "false")])
    for node, info in graph.entities.items():
        yield _block(_name(node), ["prov:Entity", f"gitprov:{_TYPES[info['kind']]}"],
                     [(f"gitprov:{k}", _literal(v)) for k, v in sorted(info.items()) if k != "kind"])
    for node, who in graph.agents.items():
        yield _block(_name(node), ["prov:Agent", "prov:Person"],
                     [("rdfs:label", _literal(who["name"])), ("gitprov:email", _literal(who["email"]))])
    for edge in graph.edges:
        qualified, cls, to = _QUALIFIED[edge.relation]
        ident = _name(_relation_id(edge))
        types, props = [f"prov:{cls}"], [(f"prov:{to}", _name(edge.object))]
        if edge.role and edge.relation == "wasInformedBy":
            types.append(f"gitprov:{edge.role}")
        elif edge.role:
            props.append(("prov:hadRole", f"gitprov:{edge.role}"))
        yield f"{_name(edge.subject)} prov:{qualified} {ident} .\n" + _block(ident, types, props)


def write_prov(graph: ExportGraph, fmt: str) -> bytes:
    """``graph`` as PROV-JSON (``prov-json``), PROV-N (``prov-n``) or PROV-O Turtle (``prov-o``)."""
    if fmt == "prov-o":
        return "".join(turtle_chunks(graph)).rstrip("\n").encode("utf-8") + b"\n"
    doc = prov_document(graph)
    if fmt == "prov-json":
        text = doc.serialize(format="json", indent=2, sort_keys=True)
    else:
        text = doc.serialize(format="provn", strict=True)
    return (text.rstrip("\n") + "\n").encode("utf-8")
