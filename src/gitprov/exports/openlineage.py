"""OpenLineage: a ``RunEvent`` per run transition, built with ``openlineage-python``'s
classes and written as JSON Lines (one event a line), or sent with its client.

Each run gives a ``START`` event (at its creation, with its inputs) and, once ended, a
``COMPLETE``, ``FAIL`` (failed, crashed) or ``ABORT`` (killed) event (at its end, with
inputs and outputs). The job is the run's experiment and name; the run id is a UUID
derived from the git-prov run id (``uuid5``), so it is the same on every export.
Facets: ``sourceCodeLocation`` (the repository URL, the script, the commit), ``parent``
(the parent run), dataset versions, and ``gitprov``, git-prov's own facet (its schema
URL names its version) with what OpenLineage has no field for: the git run id, the
lexicon pin, the patch, parameters, the agent, cache hits and derivations.
"""

from __future__ import annotations

import functools
import uuid
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import ProvError
from .extras import require

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..runs.run import Run
    from ..runs.run import Run as ProvRunType
    from ..store.prov_store import ProvStore
    from .graph import ExportGraph

__all__ = ["FACET_SCHEMA_URL", "PRODUCER", "openlineage_events", "openlineage_run_id", "send_events",
           "write_openlineage"]

PRODUCER = "https://git-prov.dev/producer/git-prov"
FACET_SCHEMA_URL = "https://git-prov.dev/spec/facets/1-0-0/GitProvRunFacet.json#/$defs/GitProvRunFacet"
#: uuid5 namespace of git-prov run ids
_RUN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://git-prov.dev/ns/run/")
_END_EVENTS = {"finished": "COMPLETE", "failed": "FAIL", "crashed": "FAIL", "killed": "ABORT"}
DEFAULT_NAMESPACE = "git-prov"


def openlineage_run_id(run_id: str) -> str:
    """The OpenLineage ``runId`` (a UUID) of a git-prov run id."""
    return str(uuid.uuid5(_RUN_NAMESPACE, run_id))


@functools.lru_cache(maxsize=1)
def _facet_class() -> Any:
    """``GitProvRunFacet``: a run facet class made when the library is loaded."""
    require("openlineage.client", "OpenLineage export")
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class GitProvRunFacet(RunFacet):
        """git-prov's run facet: the fields OpenLineage has no place for."""

        runId: str  # noqa: N815
        lexicon: str
        status: str
        experiment: str | None = attr.field(default=None)
        gitCommit: str | None = attr.field(default=None)  # noqa: N815
        patch: str | None = attr.field(default=None)
        command: list[str] | None = attr.field(default=None)
        params: dict[str, Any] | None = attr.field(default=None)
        metrics: dict[str, Any] | None = attr.field(default=None)
        environment: dict[str, Any] | None = attr.field(default=None)
        recordedBy: dict[str, str] | None = attr.field(default=None)  # noqa: N815
        informedBy: list[str] | None = attr.field(default=None)  # noqa: N815
        cacheHits: list[str] | None = attr.field(default=None)  # noqa: N815
        derivations: list[dict[str, str]] | None = attr.field(default=None)

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA_URL

    return GitProvRunFacet


def _job_name(run: Run | None, run_id: str) -> str:
    if run is None:
        return run_id[:12]
    name = run.state.name or run_id[:12]
    return f"{run.state.experiment}.{name}" if run.state.experiment else name


def _event_keys(graph: ExportGraph) -> list[tuple[str, str, int]]:
    """``(time, run id, 0 START / 1 end)`` of every event of ``graph``, in event order."""
    keys = []
    for run_id, run in graph.runs.items():
        keys.append((run.record.created, run_id, 0))
        if run.state.status in _END_EVENTS:
            keys.append((run.state.ended or run.state.updated or run.record.created, run_id, 1))
    return sorted(keys)


def openlineage_events(store: ProvStore, graph: ExportGraph, namespace: str | None = None) -> list[Any]:
    """The ``RunEvent`` objects of ``graph``, ordered by time, then run, START first."""
    return list(_ordered_events(store, graph, namespace))


def _ordered_events(store: ProvStore, graph: ExportGraph, namespace: str | None) -> Iterator[Any]:
    """The events of ``graph`` in order, each run's built when its first event is due and
    dropped after its last: only the runs open at one time are held."""
    events_of = _event_builder(store, graph, namespace)
    pending: dict[str, dict[int, Any]] = {}
    for _, run_id, which in _event_keys(graph):
        if run_id not in pending:
            pending[run_id] = events_of(run_id, graph.runs[run_id])
        yield pending[run_id].pop(which)
        if not pending[run_id]:
            del pending[run_id]


def _event_builder(store: ProvStore, graph: ExportGraph, namespace: str | None) -> Any:
    """A function: ``(run id, run)`` -> ``{0: START event, 1: end event}``."""
    require("openlineage.client", "OpenLineage export")
    import msgspec
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import (
        dataset_version_dataset,
        parent_run,
        source_code_location_job,
    )

    from ..runs.run import Run as ProvRun

    facet_class = _facet_class()
    ns = namespace or DEFAULT_NAMESPACE

    def dataset(node: str, kind: type) -> Any:
        info = graph.entities.get(node, {})
        version = info.get("version") or info.get("digest") or info.get("sha256")
        facets = {"version": dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=str(version), producer=PRODUCER)} if version else {}
        return kind(namespace=ns, name=node, facets=facets)

    def events_of(run_id: str, run: ProvRunType) -> dict[int, Any]:
        record, state = run.record, run.state
        code = run.get_code()
        edges = graph.edges_of(run_id)
        me = f"run:{run_id}"
        inputs, outputs = [], []
        for edge in edges:
            if edge.relation == "used" and edge.subject == me and edge.role not in ("code", "patch"):
                inputs.append(edge.object)
            elif edge.relation == "wasGeneratedBy" and edge.object == me:
                outputs.append(edge.subject)

        job_facets: dict[str, Any] = {}
        if code.repo_url or code.exec_path:
            job_facets["sourceCodeLocation"] = source_code_location_job.SourceCodeLocationJobFacet(
                type="git", url=code.repo_url or f"urn:git-prov:commit:{code.commit}", repoUrl=code.repo_url,
                path=code.exec_path, version=code.commit, producer=PRODUCER)
        run_facets: dict[str, Any] = {}
        if record.parent:
            parent = graph.runs.get(record.parent)
            if parent is None:
                try:
                    parent = ProvRun.load(store, record.parent)
                except ProvError:  # a parent not in this ledger: named by id only
                    parent = None
            run_facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=openlineage_run_id(record.parent)),
                job=parent_run.Job(namespace=ns, name=_job_name(parent, record.parent)), producer=PRODUCER)
        agent = graph.agents.get(graph.run_agents.get(run_id, ""))
        params = {**record.params, **state.params}
        run_facets["gitprov"] = facet_class(
            runId=run_id, lexicon=record.schema.lexicon, status=state.status, experiment=state.experiment or None,
            gitCommit=code.commit, patch=code.patch, command=list(record.command) or None, params=params or None,
            metrics={k: m.value for k, m in sorted(state.metrics.items())} or None,
            environment=msgspec.to_builtins(record.environment) if record.environment is not None else None,
            recordedBy=dict(agent) if agent else None,
            informedBy=sorted(e.object for e in edges if e.relation == "wasInformedBy" and e.subject == me
                              and e.role != "parent") or None,
            cacheHits=sorted(e.object for e in edges if e.role == "cache") or None,
            derivations=[{"generated": e.subject, "used": e.object} for e in edges
                         if e.relation == "wasDerivedFrom"] or None,
            producer=PRODUCER)
        job = Job(namespace=ns, name=_job_name(run, run_id), facets=job_facets)
        ol_run = Run(runId=openlineage_run_id(run_id), facets=run_facets)
        ins = [dataset(n, InputDataset) for n in sorted(set(inputs))]
        outs = [dataset(n, OutputDataset) for n in sorted(set(outputs))]
        events = {0: RunEvent(eventType=RunState.START, eventTime=record.created, run=ol_run, job=job, inputs=ins,
                              outputs=[], producer=PRODUCER)}
        end = _END_EVENTS.get(state.status)
        if end is not None:
            events[1] = RunEvent(eventType=RunState[end], eventTime=state.ended or state.updated or record.created,
                                 run=ol_run, job=job, inputs=ins, outputs=outs, producer=PRODUCER)
        return events

    return events_of


def write_openlineage(store: ProvStore, graph: ExportGraph, stream: BinaryIO, namespace: str | None = None) -> int:
    """The events of ``graph`` as JSON Lines to ``stream`` (keys sorted, one event a
    line), each written as soon as it is made; the number written."""
    require("openlineage.client", "OpenLineage export")
    from openlineage.client.serde import Serde

    count = 0
    for event in _ordered_events(store, graph, namespace):
        stream.write(Serde.to_json(event, ensure_ascii=False).encode("utf-8") + b"\n")
        count += 1
    return count


def send_events(events: list[Any], url: str, endpoint: str = "api/v1/lineage", timeout: float = 10.0) -> int:
    """Send ``events`` with openlineage-python's HTTP client to ``url`` (Marquez's
    ``/api/v1/lineage`` by default); the number sent."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    from ..errors import SyncError

    transport = HttpTransport(HttpConfig(url=url, endpoint=endpoint, timeout=timeout,
                                         retry={"total": 0, "connect": 0, "read": 0}))
    client = OpenLineageClient(transport=transport)
    for i, event in enumerate(events):
        try:
            client.emit(event)
        except (OSError, RuntimeError, ValueError) as exc:  # requests' errors are OSErrors
            raise SyncError(f"cannot send OpenLineage event {i + 1} of {len(events)} to {url}: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; check the URL "
                              "and that the endpoint accepts OpenLineage events") from exc
    return len(events)
