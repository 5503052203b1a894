"""The neutral provenance graph every export format is written from.

``build_graph`` turns the selected runs and their lineage into activities (runs),
entities (models, datasets, artifacts, commits, patches, stage digests) and agents (the
git identity that recorded each run), joined by PROV's relations: ``used``,
``wasGeneratedBy``, ``wasDerivedFrom``, ``wasAssociatedWith`` and ``wasInformedBy``.
Each format maps this one graph, so they all show the same edges. Everything is
sorted and nothing reads the clock: the same provenance gives the same graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ..nodes import graph_node
from ..runs.stage import STAGE_PREFIX, cache_key

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..runs.run import Run
    from ..store.prov_store import ProvStore

__all__ = ["RELATIONS", "Edge", "ExportGraph", "build_graph", "lineage_rows", "parse_identity", "run_recorders"]

#: the relations of the graph, PROV's names
RELATIONS = ("used", "wasGeneratedBy", "wasDerivedFrom", "wasAssociatedWith", "wasInformedBy")


@dataclass(frozen=True, order=True)
class Edge:
    """One relation, PROV's argument order: ``used(activity, entity)``,
    ``wasGeneratedBy(entity, activity)``, ``wasDerivedFrom(generated, used)``,
    ``wasAssociatedWith(activity, agent)``, ``wasInformedBy(informed, informant)``.
    ``role`` says why: ``code``, ``patch``, ``parent``, ``cache`` (a stage cache hit),
    ``stage`` or empty for plain lineage."""

    relation: str
    subject: str
    object: str
    role: str = ""


@dataclass
class ExportGraph:
    """Selected runs (by id, sorted), every node they touch, and the edges."""

    runs: dict[str, Run] = field(default_factory=dict)
    #: node id -> attributes (``kind`` and what is known of it)
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: runs named by a selected run's lineage but not selected themselves
    other_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``agent:<email>`` -> name and email
    agents: dict[str, dict[str, str]] = field(default_factory=dict)
    #: run id -> its agent's node id
    run_agents: dict[str, str] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    #: the lexicon pins (``sha256:`` of the manifest) the runs' records were written against
    lexicons: list[str] = field(default_factory=list)

    #: run node id -> its edges, made on first use
    _by_run: dict[str, list[Edge]] | None = field(default=None, repr=False)

    def edges_of(self, run_id: str) -> list[Edge]:
        """The edges that name ``run:<run_id>``, in graph order."""
        if self._by_run is None:
            self._by_run = {}
            for e in self.edges:
                for node in {e.subject, e.object}:
                    if node.startswith("run:"):
                        self._by_run.setdefault(node, []).append(e)
        return self._by_run.get(f"run:{run_id}", [])


def lineage_rows(run: Run) -> set[tuple[str, str, str, str]]:
    """``(direction, kind, name, item)`` of a run's lineage, as the run index reads it:
    ``state.lineage`` plus its dataset versions (``output/`` keys are outputs)."""
    state = run.state
    rows = set()
    for direction, side in (("in", state.lineage.inputs), ("out", state.lineage.outputs)):
        for key, items in side.items():
            kind, _, name = key.partition(":")
            rows.update((direction, kind, name, item) for item in (items or [""]))
    for key, version in state.datasets.items():
        rows.add(("out" if key.startswith("output/") else "in", "dataset", key, version.digest))
    return rows


class _Builder:
    def __init__(self, store: ProvStore, runs: Iterable[Run]) -> None:
        self.store = store
        self.graph = ExportGraph(runs={r.id: r for r in sorted(runs, key=lambda r: r.id)})
        self.edges: set[Edge] = set()

    def entity(self, node: str, **attrs: Any) -> str:
        known = self.graph.entities.setdefault(node, {})
        known.update({k: v for k, v in attrs.items() if v is not None})
        return node

    def run_node(self, run_id: str) -> str:
        if run_id not in self.graph.runs:
            self.graph.other_runs.setdefault(run_id, {"id": run_id})
        return f"run:{run_id}"

    def add(self, relation: str, subject: str, obj: str, role: str = "") -> None:
        self.edges.add(Edge(relation, subject, obj, role))

    def lineage(self, run: Run) -> None:
        """The edges ``prov lineage`` draws for this run's rows (``index/graph.load_edges``)."""
        me = f"run:{run.id}"
        for direction, kind, name, item in sorted(lineage_rows(run)):
            if kind == "model":
                other = self.entity(graph_node(kind, name, item), kind="model", name=name, version=item or None)
            elif kind == "dataset":
                other = self.entity(graph_node(kind, name, item), kind="dataset", name=name, digest=item)
            elif kind == "run":
                producer = self.run_node(name)
                if not item:  # the whole run: one activity informed the other
                    if direction == "in":
                        self.add("wasInformedBy", me, producer)
                    else:
                        self.add("wasInformedBy", producer, me)
                    continue
                other = self.entity(graph_node(kind, name, item), kind="artifact", run=name, path=item)
                if direction == "in" and name != run.id:
                    self.add("wasGeneratedBy", other, producer)
            else:
                continue
            if direction == "in":
                self.add("used", me, other)
            else:
                self.add("wasGeneratedBy", other, me)

    def own(self, run: Run) -> None:
        """The run's artifacts, code, parent and lexicon."""
        me = f"run:{run.id}"
        for key, ref in sorted(run.state.artifacts.items()):
            node = self.entity(graph_node("run", run.id, key), kind="artifact", run=run.id, path=key,
                               sha256=ref.sha256.removeprefix("sha256:"), size=ref.size, media_type=ref.media_type)
            self.add("wasGeneratedBy", node, me)
        code = run.get_code()
        if code.commit:
            self.add("used", me, self.entity(f"commit:{code.commit}", kind="commit", commit=code.commit,
                                             repo_url=code.repo_url), "code")
        if code.patch:
            self.add("used", me, self.entity(f"patch:{code.patch}", kind="patch", blob=code.patch,
                                             commit=code.commit), "patch")
        if run.record.parent:
            self.add("wasInformedBy", me, self.run_node(run.record.parent), "parent")

    def stages(self, run: Run, earliest: dict[tuple[str, str], tuple[str, dict[str, Any]]]) -> None:
        """A stage's outputs derive from its inputs. A stage whose cache key an earlier
        run's finished stage had is a cache hit: what that stage made (outputs, cache
        files) is used, not generated again."""
        me = f"run:{run.id}"
        by_digest = {"sha256:" + a.sha256.removeprefix("sha256:"): graph_node("run", run.id, k)
                     for k, a in sorted(run.state.artifacts.items(), reverse=True)}
        for key, stage in sorted(run.state.attributes.items()):
            if not key.startswith(STAGE_PREFIX) or not isinstance(stage, dict) or stage.get("status") != "finished":
                continue
            name = str(stage.get("name"))
            first = earliest.get((name, stage_key(stage)))
            hit = first is not None and first[0] != run.id and str(first[1].get("ended")) <= str(stage.get("started"))
            inputs = [self.entity(f"digest:{d}", kind="digest", digest=d, stage=name)
                      for d in sorted(set((stage.get("inputs") or {}).values())) if not str(d).startswith("run:")]
            for used in inputs:
                self.add("used", me, used, "stage")
            reused: set[str] = set()
            if hit:
                assert first is not None
                producer = self.store_run(first[0])
                for digest in sorted(set(_made(stage)) & set(_made(first[1]))):
                    made = self.output_entity(producer, first[0], name, digest)
                    self.add("used", me, made, "cache")
                    self.add("wasGeneratedBy", made, self.run_node(first[0]), "stage")
                    reused.add(digest)
            for digest in sorted(set(_made(stage)) - reused):
                out = by_digest.get(digest) or self.entity(f"digest:{digest}", kind="digest", digest=digest, stage=name)
                self.add("wasGeneratedBy", out, me, "stage")
                for used in inputs:
                    self.add("wasDerivedFrom", out, used, "stage")

    def store_run(self, run_id: str) -> dict[str, str]:
        """sha256 digest -> artifact node of the run ``run_id`` (selected or read now)."""
        from ..runs.run import Run

        run = self.graph.runs.get(run_id) or Run.load(self.store, run_id)
        return {"sha256:" + a.sha256.removeprefix("sha256:"): graph_node("run", run_id, k)
                for k, a in sorted(run.state.artifacts.items(), reverse=True)}

    def output_entity(self, artifacts: dict[str, str], run_id: str, stage: str, digest: str) -> str:
        node = artifacts.get(digest)
        if node is not None:
            return self.entity(node, kind="artifact", run=run_id, path=node.split("/", 1)[1],
                               sha256=digest.removeprefix("sha256:"))
        return self.entity(f"digest:{digest}", kind="digest", digest=digest, stage=stage)

    def agents(self) -> None:
        found = {run_id: who for run_id, run in self.graph.runs.items()
                 if (who := parse_identity(run.record.user or None)) is not None}
        older = set(self.graph.runs) - set(found)
        if older:  # records older than ``user``: the ledger's history says
            found.update(run_recorders(self.store, older))
        for run_id, (name, email) in sorted(found.items()):
            node = f"agent:{email or name}"
            self.graph.agents[node] = {"name": name, "email": email}
            self.graph.run_agents[run_id] = node
            self.add("wasAssociatedWith", f"run:{run_id}", node)


def build_graph(store: ProvStore, runs: Iterable[Run]) -> ExportGraph:
    """The export graph of ``runs`` (each run once, in id order)."""
    b = _Builder(store, runs)
    earliest = _earliest_stages(store, b.graph.runs.values())
    lexicons = set()
    for run in b.graph.runs.values():
        b.lineage(run)
        b.own(run)
        b.stages(run, earliest)
        lexicons.add(run.record.schema.lexicon)
    b.agents()
    for run_id in list(b.graph.other_runs):
        if run_id in b.graph.runs:
            del b.graph.other_runs[run_id]
    # one edge per (relation, subject, object): a role says more than none
    roles: dict[tuple[str, str, str], str] = {}
    for e in b.edges:
        key = (e.relation, e.subject, e.object)
        roles[key] = max(roles.get(key, ""), e.role)
    b.graph.edges = sorted(Edge(*key, role) for key, role in roles.items())
    b.graph.lexicons = sorted(lexicons)
    b.graph.entities = dict(sorted(b.graph.entities.items()))
    b.graph.other_runs = dict(sorted(b.graph.other_runs.items()))
    b.graph.agents = dict(sorted(b.graph.agents.items()))
    return b.graph


def stage_key(record: dict[str, Any]) -> str:
    """The cache key of a stage record (as ``find_cached`` reads it: older records have
    none stored, and theirs covers the name, arguments and inputs)."""
    return str(record.get("cache_key") or cache_key(str(record.get("name")), str(record.get("args_hash")),
                                                     record.get("inputs_hash")))


def _made(record: dict[str, Any]) -> list[str]:
    """The digests a stage made: its outputs and the files it left in its cache directory."""
    return [str(d) for d in [*(record.get("outputs") or {}).values(), *(record.get("cache_files") or {}).values()]]


def _earliest_stages(store: ProvStore, runs: Iterable[Run]) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """(stage name, cache key) -> the run and record of the earliest finished stage with
    them in the whole ledger (the run index's ``stages`` table), for the stages of ``runs``."""
    wanted = sorted({(str(s.get("name")), str(s.get("args_hash"))) for run in runs
                     for k, s in run.state.attributes.items()
                     if k.startswith(STAGE_PREFIX) and isinstance(s, dict) and s.get("status") == "finished"})
    if not wanted:
        return {}
    from ..index.store import index_of

    db = index_of(store).connection()
    out: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for name, args in wanted:
        for key, value in db.execute(
                "SELECT r.id, a.value FROM stages s JOIN runs r ON r.rid = s.run JOIN attributes a ON a.run = s.run "
                "AND a.key = s.key WHERE s.name = ? AND s.args_hash = ? AND s.status = 'finished' AND r.deleted = 0 "
                "ORDER BY s.ended, r.id", (name, args)):
            record = msgspec.json.decode(value)
            out.setdefault((name, stage_key(record)), (key.hex(), record))
    return out


def parse_identity(text: str | None) -> tuple[str, str] | None:
    """``Name <email>`` -> ``(name, email)``; None for none or another shape."""
    if not text or not text.endswith(">") or " <" not in text:
        return None
    name, _, email = text[:-1].rpartition(" <")
    return name, email


def run_recorders(store: ProvStore, run_ids: set[str]) -> dict[str, tuple[str, str]]:
    """run id -> ``(name, email)`` of the committer of the ledger commit that first
    stored the run's record: the git identity that recorded it, for records older than
    their ``user``. One ``git log`` over the ledger's whole history; empty where
    git cannot be run (an in-memory repository)."""
    from ..store import gitbin

    git_dir = store.git.common_dir or store.git.git_dir
    if not run_ids or git_dir is None or store.ledger.tip() is None:
        return {}
    from ..store.ledger_log import is_run_blob

    # format 3's record files, and format 4's run blobs (a log's commit adds its run's blob)
    paths = [":(glob)runs/*/*/record", *([":(glob)[0-9a-f]*"] if store.ledger.is_log() else [])]
    proc = gitbin.run(["log", "--full-history", "--diff-filter=A", "--no-renames", "--format=%x00%cn%x00%ce",
                       "--name-only", store.ledger.tip() or "", "--", *paths], git_dir=git_dir)
    if proc.returncode != 0:
        return {}
    found: dict[str, tuple[str, str]] = {}
    who = ("", "")
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("\0"):
            _, name, email = line.split("\0", 2)
            who = (name, email)
            continue
        run_id = line.split("/")[2] if line.startswith("runs/") and line.count("/") == 3 else is_run_blob(line)
        if run_id in run_ids:
            found[run_id] = who  # newest first: the last seen is the first commit
    return found
