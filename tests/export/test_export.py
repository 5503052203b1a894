"""``prov export`` / ``gitprov.export``: each standard's own library parses and checks
what git-prov wrote, and the graph in every format is the lineage graph: every
lineage edge appears, nothing is invented, and the same provenance gives the same bytes.

One repository (module scope) holds runs with lineage (models, datasets, artifacts),
a dirty run (a patch), a parent and its child, a failed run, and a stage cache hit."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

import gitprov
import gitprov.lineage as lineage
from gitprov.exports.graph import build_graph
from gitprov.exports.openlineage import openlineage_run_id
from gitprov.index.graph import load_edges
from gitprov.runs.stage import STAGE_PREFIX

from ..conftest import IDENTITY, run_prov

FORMATS = ("prov-json", "prov-n", "prov-o", "openlineage", "in-toto")


def _git(path: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The repository and its runs, made once (git config isolated as in conftest)."""
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text("[user]\n\tname = Test User\n\temail = test@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n[prov]\n\tautoPackLimit = 0\n")
    path = tmp_path_factory.mktemp("export-repo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        for key, value in IDENTITY.items():
            mp.setenv(key, value)
        for var in ("GIT_DIR", "GIT_WORK_TREE", "PROV_RUN_ID"):
            mp.delenv(var, raising=False)
        _git(path, "init", "-q")
        (path / "train.py").write_text("print('train')\n")
        _git(path, "add", ".")
        _git(path, "commit", "-qm", "code")
        _git(path, "remote", "add", "origin", "https://example.com/ml/project.git")
        gitprov.init(path, hooks=False)
        repo = gitprov.Repository(path)
        ids = {}
        with repo.start_run(name="prep", params={"split": 0.8}) as prep:
            prep.log_artifact("train.csv", b"x,y\n1,2\n")
            lineage.of(prep).with_input_dataset("raw", "sha256:" + "3f" * 32) \
                .with_output_artifact(prep.id, "train.csv").register()
        ids["prep"] = prep.id
        (path / "train.py").write_text("print('train, changed')\n")  # uncommitted: the run records a patch
        with repo.start_run(name="train", experiment="clf", params={"lr": 0.05}) as train:
            train.log_metric("acc", 0.93)
            train.log_artifact("model.pkl", b"weights")
            lineage.of(train).with_input_artifact(prep.id, "train.csv").with_input_model("bert", "v3") \
                .with_output_model("classifier", "1").register()
        ids["train"] = train.id
        _git(path, "checkout", "--", "train.py")
        with repo.start_run(name="report", parent=train.id) as child:
            child.log_artifact("report.txt", b"ok")
            lineage.of(child).with_input_artifact(prep.id).with_input_model("classifier", "1").register()
        ids["child"] = child.id
        for name in ("pipeline-1", "pipeline-2"):
            with repo.start_run(name=name) as run, \
                    run.stage("featurize", params={"cols": ["x"]}, inputs={"raw": b"x,y\n1,2\n"}) as stage:
                hit = repo.find_cached(stage)
                if hit is not None:
                    stage.outputs = dict(hit.outputs)
                else:
                    stage.outputs["features"] = run.log_artifact("features", b"1\n3\n")
            ids[name] = run.id
        failing = repo.start_run(name="failing")
        failing.end("failed")
        ids["failing"] = failing.id
        exports = {fmt: repo.export(fmt) for fmt in FORMATS}
        again = {fmt: gitprov.export(fmt, path=path) for fmt in FORMATS}
        nodes, edges = load_edges(repo.index().connection())
        runs = repo.find_runs()
        graph = build_graph(repo.store, runs)
        yield {"path": path, "repo": repo, "ids": ids, "exports": exports, "again": again, "lineage": edges,
               "runs": {r.id: r for r in runs}, "graph": graph, "home": home}


# -- the graph ----------------------------------------------------------------------------------


def expected_edges(built: dict[str, Any]) -> set[tuple[str, str, str]]:
    """The edges the export must hold, made here from the stored records and the
    lineage graph ``prov lineage`` draws, independently of the export's code."""
    out = set()
    for source, target, _ in built["lineage"]:  # the lineage graph
        if source.startswith("run:") and target.startswith("run:"):
            out.add(("wasInformedBy", target, source))
        elif target.startswith("run:"):
            out.add(("used", target, source))
        else:
            out.add(("wasGeneratedBy", target, source))
    ids = built["ids"]
    for run_id, run in built["runs"].items():
        me = f"run:{run_id}"
        out.add(("wasAssociatedWith", me, "agent:test@example.com"))
        out.add(("used", me, f"commit:{run.record.code.commit}"))
        if run.record.code.patch:
            out.add(("used", me, f"patch:{run.record.code.patch}"))
        if run.record.parent:
            out.add(("wasInformedBy", me, f"run:{run.record.parent}"))
        for key in run.state.artifacts:
            out.add(("wasGeneratedBy", f"artifact:{run_id}/{key}", me))
        for key, stage in run.state.attributes.items():
            if key.startswith(STAGE_PREFIX):
                for digest in stage["inputs"].values():
                    out.add(("used", me, f"digest:{digest}"))
    # the stage: pipeline-1 computed features from the raw input; pipeline-2 hit the cache
    features = f"artifact:{ids['pipeline-1']}/features"
    raw = "digest:sha256:" + hashlib.sha256(b"x,y\n1,2\n").hexdigest()
    out.add(("wasDerivedFrom", features, raw))
    out.add(("used", f"run:{ids['pipeline-2']}", features))
    return out


def test_the_graph_is_the_lineage_and_nothing_more(built):
    graph = built["graph"]
    got = {(e.relation, e.subject, e.object) for e in graph.edges}
    expected = expected_edges(built)
    assert got == expected, (sorted(got - expected), sorted(expected - got))
    ids = built["ids"]
    roles = {(e.relation, e.subject, e.object): e.role for e in graph.edges}
    assert roles[("used", f"run:{ids['pipeline-2']}", f"artifact:{ids['pipeline-1']}/features")] == "cache"
    assert not any(e.relation == "wasGeneratedBy" and e.object == f"run:{ids['pipeline-2']}" for e in graph.edges)
    assert roles[("wasInformedBy", f"run:{ids['child']}", f"run:{ids['train']}")] == "parent"
    assert roles[("wasInformedBy", f"run:{ids['child']}", f"run:{ids['prep']}")] == ""
    assert graph.lexicons == [gitprov.Repository(built["path"]).runs()[0].record.schema.lexicon]
    assert graph.agents == {"agent:test@example.com": {"name": "Test User", "email": "test@example.com"}}


def test_every_export_is_deterministic(built):
    for fmt in FORMATS:
        assert built["exports"][fmt] == built["again"][fmt], fmt
        assert built["exports"][fmt].endswith(b"\n")
    proc = run_prov(built["path"], "export", "--format", "prov-n", "-o", "out.provn",
                    env={"HOME": str(built["home"]), "GIT_CONFIG_NOSYSTEM": "1"})
    assert proc.returncode == 0, proc.stderr
    assert (built["path"] / "out.provn").read_bytes() == built["exports"]["prov-n"]
    (built["path"] / "out.provn").unlink()


def test_every_export_names_the_lexicon(built):
    pin = built["graph"].lexicons[0]
    for fmt in FORMATS:
        assert pin.encode() in built["exports"][fmt], fmt


# -- W3C PROV --------------------------------------------------------------------------------------


def _prov_edges(doc: Any) -> set[tuple[str, str, str]]:
    from prov.model import (
        ProvAssociation,
        ProvCommunication,
        ProvDerivation,
        ProvGeneration,
        ProvUsage,
    )

    names = {ProvUsage: "used", ProvGeneration: "wasGeneratedBy", ProvDerivation: "wasDerivedFrom",
             ProvAssociation: "wasAssociatedWith", ProvCommunication: "wasInformedBy"}

    def node(qname: Any) -> str:
        return f"{qname.namespace.prefix}:{unquote(qname.localpart)}"

    out = set()
    for record in doc.get_records():
        name = names.get(type(record))
        if name is not None:
            args = record.formal_attributes
            out.add((name, node(args[0][1]), node(args[1][1])))
    return out


def test_prov_formats_parse_back_equal_with_every_edge(built):
    from prov.model import ProvActivity, ProvAgent, ProvDocument, ProvEntity

    ex = built["exports"]
    as_json = ProvDocument.deserialize(content=ex["prov-json"].decode(), format="json")
    as_provn = ProvDocument.deserialize(content=ex["prov-n"].decode(), format="provn", profile="strict")
    as_rdf = ProvDocument.deserialize(content=ex["prov-o"].decode(), format="rdf", rdf_format="turtle")
    assert as_json == as_provn == as_rdf
    assert _prov_edges(as_json) == expected_edges(built)
    kinds = {type(r) for r in as_json.get_records()}
    assert {ProvActivity, ProvEntity, ProvAgent} <= kinds
    activities = {r.identifier.localpart for r in as_json.get_records(ProvActivity)}
    assert set(built["ids"].values()) <= activities
    # the library writes back what it read: PROV-JSON round-trips to the same bytes
    again = as_json.serialize(format="json", indent=2, sort_keys=True)
    assert again.rstrip("\n").encode() == ex["prov-json"].rstrip(b"\n")


def test_prov_o_is_rdf_with_prov_classes(built):
    import rdflib

    g = rdflib.Graph()
    g.parse(data=built["exports"]["prov-o"].decode(), format="turtle")
    prov = rdflib.Namespace("http://www.w3.org/ns/prov#")
    run = rdflib.URIRef(f"https://git-prov.dev/ns/run/{built['ids']['train']}")
    assert (run, rdflib.RDF.type, prov.Activity) in g
    used = {g.value(u, prov.entity) for u in g.objects(run, prov.qualifiedUsage)}
    assert rdflib.URIRef("https://git-prov.dev/ns/model/bert%40v3") in used


def _same_triples(ours: bytes, graph: Any) -> None:
    """``ours`` holds exactly the triples of ``prov``'s own RDF serialiser of the graph."""
    import rdflib
    from rdflib.compare import graph_diff, isomorphic, to_isomorphic

    from gitprov.exports.w3c_prov import prov_document

    reference = prov_document(graph).serialize(format="rdf", rdf_format="turtle")
    a = rdflib.Graph().parse(data=ours.decode(), format="turtle")
    b = rdflib.Graph().parse(data=reference, format="turtle")
    if not isomorphic(a, b):
        _, only_ours, only_prov = graph_diff(to_isomorphic(a), to_isomorphic(b))
        raise AssertionError((sorted(only_ours)[:5], sorted(only_prov)[:5]))
    assert len(a) > 0


def test_prov_o_is_the_triples_the_prov_package_writes(built):
    _same_triples(built["exports"]["prov-o"], built["graph"])


def test_prov_o_escapes_literals_and_names_turtle_cannot_abbreviate():
    from prov.model import ProvDocument

    from gitprov.exports.graph import Edge, ExportGraph
    from gitprov.exports.w3c_prov import write_prov

    graph = ExportGraph()
    graph.other_runs = {"r1": {"id": "r1"}}
    odd = 'say "hi"\\n\nback\\slash\r é'
    graph.entities = {"artifact:r1/out.": {"kind": "artifact", "run": "r1", "path": "out.", "size": 3},
                      "model:a~b@v1": {"kind": "model", "name": odd, "version": "v1"}}
    graph.edges = [Edge("used", "run:r1", "model:a~b@v1", "code"),
                   Edge("wasGeneratedBy", "artifact:r1/out.", "run:r1", "")]
    data = write_prov(graph, "prov-o")
    assert b"<https://git-prov.dev/ns/artifact/r1%2Fout.>" in data and b"<https://git-prov.dev/ns/model/a~b%40v1>" in data
    _same_triples(data, graph)
    doc = ProvDocument.deserialize(content=data.decode(), format="rdf", rdf_format="turtle")
    names = [v for r in doc.get_records() for k, v in r.attributes if str(k) == "gitprov:name"]
    assert names == [odd]


# -- OpenLineage -----------------------------------------------------------------------------------


def _rebuilt(event: dict[str, Any]) -> Any:
    """``event`` built again from its JSON with openlineage-python's own classes, whose
    validators (generated from the OpenLineage schema: run ids are UUIDs, times ISO 8601,
    the event type one of the spec's states, URIs where the spec has URIs) raise on
    anything the spec refuses. git-prov's own facet stays a dict."""
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

    def facet(cls: Any, data: dict[str, Any]) -> Any:
        fields = {k: v for k, v in data.items() if not k.startswith("_")}
        return cls(**fields, producer=data["_producer"])

    def dataset(cls: Any, data: dict[str, Any]) -> Any:
        facets = {k: facet(dataset_version_dataset.DatasetVersionDatasetFacet, v)
                  for k, v in data.get("facets", {}).items()}
        return cls(namespace=data["namespace"], name=data["name"], facets=facets)

    run_facets: dict[str, Any] = {}
    for key, value in event["run"]["facets"].items():
        if key == "parent":
            run_facets[key] = parent_run.ParentRunFacet(
                run=parent_run.Run(**value["run"]), job=parent_run.Job(**value["job"]), producer=value["_producer"])
        else:
            run_facets[key] = value
    job_facets = {k: facet(source_code_location_job.SourceCodeLocationJobFacet, v)
                  for k, v in event["job"]["facets"].items()}
    return RunEvent(
        eventType=RunState(event["eventType"]), eventTime=event["eventTime"], producer=event["producer"],
        run=Run(runId=event["run"]["runId"], facets=run_facets),
        job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"], facets=job_facets),
        inputs=[dataset(InputDataset, d) for d in event.get("inputs", [])],
        outputs=[dataset(OutputDataset, d) for d in event.get("outputs", [])])


def test_openlineage_events_are_what_the_library_validates_and_writes(built):
    from openlineage.client.serde import Serde

    events = [json.loads(line) for line in built["exports"]["openlineage"].splitlines()]
    for event in events:
        assert json.loads(Serde.to_json(_rebuilt(event))) == event
        assert event["schemaURL"] == "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
    with pytest.raises(ValueError, match="FINISHED"):
        _rebuilt(dict(events[0], eventType="FINISHED"))
    with pytest.raises(ValueError):
        _rebuilt(dict(events[0], run=dict(events[0]["run"], runId="not-a-uuid")))
    with pytest.raises(ValueError):
        _rebuilt(dict(events[0], eventTime="yesterday"))
    ids = built["ids"]
    by_run: dict[str, list[dict]] = {}
    for event in events:
        by_run.setdefault(event["run"]["facets"]["gitprov"]["runId"], []).append(event)
    assert sorted(by_run) == sorted(ids.values())
    assert [e["eventType"] for e in by_run[ids["train"]]] == ["START", "COMPLETE"]
    assert [e["eventType"] for e in by_run[ids["failing"]]] == ["START", "FAIL"]
    assert [e["eventTime"] for e in events] == sorted(e["eventTime"] for e in events)
    child = by_run[ids["child"]][0]["run"]["facets"]
    assert child["parent"]["run"]["runId"] == openlineage_run_id(ids["train"])
    assert child["parent"]["job"]["name"] == "clf.train"
    assert child["gitprov"]["_schemaURL"].startswith("https://git-prov.dev/spec/facets/")
    assert child["gitprov"]["informedBy"] == [f"run:{ids['prep']}"]
    assert by_run[ids["pipeline-2"]][0]["run"]["facets"]["gitprov"]["cacheHits"] == [
        f"artifact:{ids['pipeline-1']}/features"]
    code = by_run[ids["train"]][0]["job"]["facets"]["sourceCodeLocation"]
    assert code["version"] == built["runs"][ids["train"]].record.code.commit
    assert code["url"] == "https://example.com/ml/project.git"


def test_openlineage_datasets_are_the_graph_edges(built):
    graph = built["graph"]
    events = [json.loads(line) for line in built["exports"]["openlineage"].splitlines()]
    for event in events:
        if event["eventType"] == "START":
            continue
        run_id = event["run"]["facets"]["gitprov"]["runId"]
        me = f"run:{run_id}"
        inputs = {e.object for e in graph.edges_of(run_id) if e.relation == "used" and e.subject == me
                  and e.role not in ("code", "patch")}
        outputs = {e.subject for e in graph.edges_of(run_id) if e.relation == "wasGeneratedBy" and e.object == me}
        assert {d["name"] for d in event["inputs"]} == inputs
        assert {d["name"] for d in event["outputs"]} == outputs
    train_out = next(e for e in events if e["eventType"] == "COMPLETE"
                     and e["run"]["facets"]["gitprov"]["runId"] == built["ids"]["train"])["outputs"]
    assert {d["name"]: d["facets"].get("version", {}).get("datasetVersion") for d in train_out} == {
        "model:classifier@1": "1",
        f"artifact:{built['ids']['train']}/model.pkl": hashlib.sha256(b"weights").hexdigest()}


def test_openlineage_events_are_sent_with_the_client(built):
    import http.server
    import threading

    received: list[dict] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "event": json.loads(body)})
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        data = built["repo"].export("openlineage", [built["ids"]["train"]], url=url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    lines = [json.loads(line) for line in data.splitlines()]
    assert [r["path"] for r in received] == ["/api/v1/lineage"] * 2
    assert [r["event"]["eventType"] for r in received] == ["START", "COMPLETE"]
    for sent, written in zip(received, lines, strict=True):  # the client adds its own tags facet, and nothing else
        assert sent["event"]["run"]["runId"] == written["run"]["runId"]
        assert sent["event"]["run"]["facets"]["gitprov"] == written["run"]["facets"]["gitprov"]
        assert sent["event"]["inputs"] == written["inputs"] and sent["event"]["outputs"] == written["outputs"]


def test_openlineage_unreachable_endpoint_is_one_line(built):
    with pytest.raises(gitprov.SyncError, match=r"cannot send OpenLineage event 1 of 2 to http://127.0.0.1:9"):
        built["repo"].export("openlineage", [built["ids"]["train"]], url="http://127.0.0.1:9")


# -- in-toto / SLSA --------------------------------------------------------------------------------


def _statements(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines()]


def test_intoto_statements_validate_and_subjects_match_the_artifacts(built):
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    statements = _statements(built["exports"]["in-toto"])
    repo, ids = built["repo"], built["ids"]
    by_run = {s["predicate"]["buildDefinition"]["internalParameters"]["gitprovRunId"]: s for s in statements}
    # every run with an artifact has a statement; the failed run made nothing to attest
    assert sorted(by_run) == sorted(i for n, i in ids.items() if n not in ("failing", "pipeline-2"))
    for run_id, statement in by_run.items():
        Statement.copy_from_pb(json_format.ParseDict(statement, statement_pb2.Statement())).validate()
        json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())
        assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
        run = repo.get_run(run_id)
        for subject in statement["subject"]:
            key = subject["name"].split("/", 1)[1]
            assert subject["digest"] == {"sha256": hashlib.sha256(run.get_artifact(key)).hexdigest()}
        assert {s["name"] for s in statement["subject"]} == {f"artifact:{run_id}/{k}" for k in run.state.artifacts}
        meta = statement["predicate"]["runDetails"]["metadata"]
        assert meta == {"invocationId": run_id, "startedOn": run.record.created, "finishedOn": run.state.ended}
    train = by_run[ids["train"]]["predicate"]["buildDefinition"]
    assert train["externalParameters"]["params"] == {"lr": 0.05}
    assert train["internalParameters"]["environment"]["python_version"]
    deps = {d["name"]: d for d in train["resolvedDependencies"]}
    code = repo.get_run(ids["train"]).get_code()
    assert deps[f"commit:{code.commit}"]["digest"] == {"gitCommit": code.commit}
    patch = repo.get_run(ids["train"]).get_code_patch()
    assert deps[f"patch:{code.patch}"]["digest"] == {"gitBlob": code.patch,
                                                     "sha256": hashlib.sha256(patch).hexdigest()}
    assert deps[f"artifact:{ids['prep']}/train.csv"]["digest"] == {
        "sha256": hashlib.sha256(b"x,y\n1,2\n").hexdigest()}
    assert "model:bert@v3" in deps and deps["model:bert@v3"]["annotations"]["version"] == "v3"


def test_intoto_dsse_envelopes_verify_with_ssh_keygen(built, tmp_path):
    path = built["path"]
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)], check=True)
    _git(path, "config", "gpg.format", "ssh")
    _git(path, "config", "user.signingKey", str(key))
    try:
        signed = gitprov.Repository(path).export("in-toto", sign=True)
        assert gitprov.export("in-toto", sign=True, path=path) == signed  # ed25519 signatures are deterministic
    finally:
        _git(path, "config", "--unset", "gpg.format")
        _git(path, "config", "--unset", "user.signingKey")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"test@example.com {(tmp_path / 'id_ed25519.pub').read_text()}")
    envelopes = _statements(signed)
    assert [json.loads(base64.b64decode(e["payload"])) for e in envelopes] == _statements(
        built["exports"]["in-toto"])
    from gitprov.exports.intoto import pae

    def verify(payload: bytes, sig: bytes) -> int:
        (tmp_path / "sig").write_bytes(sig)
        return subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "test@example.com",
                               "-n", "in-toto", "-s", str(tmp_path / "sig")], input=pae(e["payloadType"], payload),
                              capture_output=True, check=False).returncode

    for e in envelopes:
        assert e["payloadType"] == "application/vnd.in-toto+json"
        assert e["signatures"][0]["keyid"].startswith("SHA256:")
        sig = base64.b64decode(e["signatures"][0]["sig"])
        assert verify(base64.b64decode(e["payload"]), sig) == 0
        assert verify(base64.b64decode(e["payload"]) + b" ", sig) != 0


# -- selection -------------------------------------------------------------------------------------


def _activities(data: bytes) -> set[str]:
    doc = json.loads(data)
    return {k.split(":", 1)[1] for k, v in doc.get("activity", {}).items() if "gitprov:selected" not in v}


def test_targets_and_filters_select_runs(built):
    repo, ids = built["repo"], built["ids"]
    assert _activities(repo.export("prov-json", [ids["train"][:10]])) == {ids["train"]}
    assert _activities(repo.export("prov-json", "classifier@1")) == {ids["train"]}
    assert _activities(repo.export("prov-json", ["classifier@1"], upstream=True)) == {ids["train"], ids["prep"]}
    assert _activities(repo.export("prov-json", where="name = 'prep'")) == {ids["prep"]}
    assert _activities(repo.export("prov-json", where={"experiment": "clf"})) == {ids["train"]}
    one = json.loads(repo.export("prov-json", [ids["train"]]))
    # the producer of an input that is not selected is named, marked as not selected
    assert one["activity"][f"run:{ids['prep']}"]["gitprov:selected"] is False
    # a cache hit alone: it used what the earlier run's stage made, and that run made it
    hit = build_graph(repo.store, [repo.get_run(ids["pipeline-2"])])
    features = f"artifact:{ids['pipeline-1']}/features"
    assert {(e.relation, e.subject, e.object, e.role) for e in hit.edges if features in (e.subject, e.object)} == {
        ("used", f"run:{ids['pipeline-2']}", features, "cache"),
        ("wasGeneratedBy", features, f"run:{ids['pipeline-1']}", "stage")}
    assert list(hit.other_runs) == [ids["pipeline-1"]]


def test_cli_export_to_stdout(built):
    env = {"HOME": str(built["home"]), "GIT_CONFIG_NOSYSTEM": "1"}
    proc = subprocess.run([*_prov(), "export", "--format", "openlineage", built["ids"]["prep"]], cwd=built["path"],
                          capture_output=True, env={**os.environ, **env}, check=False)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["eventType"] for line in proc.stdout.splitlines()] == ["START", "COMPLETE"]


def _prov() -> list[str]:
    import sys

    exe = Path(sys.executable).with_name("prov")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gitprov.cli.entry"]


@pytest.mark.parametrize("module", ["prov", "openlineage", "in_toto_attestation"])
def test_a_missing_extra_is_one_line_naming_the_install(built, module):
    fmt = {"prov": "prov-json", "openlineage": "openlineage", "in_toto_attestation": "in-toto"}[module]
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from gitprov.cli.entry import main\n"
            f"sys.argv = ['prov', 'export', '--format', {fmt!r}]\n"
            "main()")
    import sys

    proc = subprocess.run([sys.executable, "-c", code], cwd=built["path"], capture_output=True, text=True,
                          env={**os.environ, "HOME": str(built["home"]), "GIT_CONFIG_NOSYSTEM": "1"}, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 10
    assert proc.stderr.strip().count("\n") == 0
    assert "pip install 'git-prov[export]'" in proc.stderr


def test_cli_unreachable_endpoint_is_one_line_and_writes_nothing(built):
    env = {"HOME": str(built["home"]), "GIT_CONFIG_NOSYSTEM": "1"}
    proc = run_prov(built["path"], "export", "--format", "openlineage", built["ids"]["prep"], "--url",
                    "http://127.0.0.1:9", "-o", "events.jsonl", env=env)
    assert proc.returncode == 10 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("prov: error: cannot send OpenLineage event 1 of 2 to http://127.0.0.1:9")
    assert proc.stderr.count("\n") == 1
    assert not (built["path"] / "events.jsonl").exists()


def test_a_sha256_repository_exports_its_own_ids(make_repo):
    path = make_repo("sha256").path
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    with repo.start_run(name="made", environment=False) as made:
        made.log_artifact("x.bin", b"x")
    with repo.start_run(name="used", parent=made.id, environment=False) as used:
        lineage.of(used).with_input_artifact(made.id, "x.bin").register()
    from prov.model import ProvDocument

    doc = ProvDocument.deserialize(content=repo.export("prov-n").decode(), format="provn", profile="strict")
    assert ("used", f"run:{used.id}", f"artifact:{made.id}/x.bin") in _prov_edges(doc)
    statement = _statements(repo.export("in-toto", [made.id]))[0]
    commit = made.record.code.commit
    assert len(made.id) == len(commit) == 64
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {"gitCommit": commit} in [d["digest"] for d in deps]
    events = [json.loads(line) for line in repo.export("openlineage", [used.id]).splitlines()]
    assert events[0]["run"]["facets"]["parent"]["run"]["runId"] == openlineage_run_id(made.id)


def test_openlineage_namespace_and_a_running_run(make_repo):
    path = make_repo("sha1").path
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    run = repo.start_run(name="live", environment=False)
    run.log_artifact("out.txt", b"1")
    run.flush()
    try:
        events = [json.loads(line) for line in repo.export("openlineage", namespace="team/proj").splitlines()]
        assert [e["eventType"] for e in events] == ["START"]  # a running run has started, nothing more
        assert events[0]["job"]["namespace"] == "team/proj"
    finally:
        run.end()
    events = [json.loads(line) for line in repo.export("openlineage", namespace="team/proj").splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert {d["namespace"] for d in events[1]["outputs"]} == {"team/proj"}
    with pytest.raises(gitprov.UsageError, match="--namespace names OpenLineage"):
        repo.export("prov-json", namespace="x")
    with pytest.raises(gitprov.UsageError, match="--namespace must be a non-empty name"):
        repo.export("openlineage", namespace=" ")


def test_a_cache_hit_through_the_stage_cache_directory(make_repo):
    path = make_repo("sha1").path
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    with repo.start_run(name="first", environment=False) as first, first.stage("fit", params={"k": 1}) as stage:
        Path(stage.get_path("model.bin")).write_bytes(b"m")
    with repo.start_run(name="again", environment=False) as again, again.stage("fit", params={"k": 1}) as stage:
        hit = repo.find_cached(stage)
        assert hit is not None
        Path(stage.get_path("model.bin")).write_bytes(Path(hit.get_path("model.bin")).read_bytes())
    with repo.start_run(name="other", environment=False) as other, other.stage("fit", params={"k": 2}) as stage:
        Path(stage.get_path("model.bin")).write_bytes(b"m")  # same bytes, another key: made, not reused
    node = "digest:sha256:" + hashlib.sha256(b"m").hexdigest()
    graph = build_graph(repo.store, [repo.get_run(r.id) for r in (first, again, other)])
    assert {(e.relation, e.subject, e.object, e.role) for e in graph.edges if node in (e.subject, e.object)} == {
        ("wasGeneratedBy", node, f"run:{first.id}", "stage"), ("used", f"run:{again.id}", node, "cache"),
        ("wasGeneratedBy", node, f"run:{other.id}", "stage")}


def test_the_agent_is_who_started_the_run_from_its_record(make_repo, monkeypatch):
    """The record names who started the run, so the export reads no ledger history:
    the run's ledger commits here carry another identity, and the record's wins."""
    path = make_repo().path
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Ada Lovelace")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "ada@example.com")
    run = repo.start_run(name="ada", environment=False)
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Bob")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "bob@example.com")
    with run:
        run.log_artifact("x.bin", b"x")
    assert run.record.user == "Ada Lovelace <ada@example.com>"
    committers = _git(path, "log", "--format=%cn", "refs/prov/ledger").split()
    assert "Ada" not in committers and "Bob" in committers
    graph = build_graph(repo.store, repo.runs())
    assert graph.agents == {"agent:ada@example.com": {"name": "Ada Lovelace", "email": "ada@example.com"}}
    assert ("wasAssociatedWith", f"run:{run.id}", "agent:ada@example.com", "") in \
        {(e.relation, e.subject, e.object, e.role) for e in graph.edges}


def test_a_record_older_than_its_user_field_takes_the_ledger_committer(make_repo, monkeypatch):
    import msgspec

    from gitprov.runs.run import Run

    path = make_repo().path
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    with repo.start_run(name="old", environment=False) as run:
        run.log_metric("m", 1.0)
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Later")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "later@example.com")
    with repo.start_run(name="new", environment=False) as new:
        new.log_metric("m", 2.0)
    old = Run.load(repo.store, run.id)
    old.record = msgspec.structs.replace(old.record, user="")  # as records before the field
    graph = build_graph(repo.store, [old, Run.load(repo.store, new.id)])
    assert graph.run_agents == {run.id: "agent:test@example.com", new.id: "agent:later@example.com"}
    assert graph.agents["agent:test@example.com"] == {"name": "Test User", "email": "test@example.com"}


class _Lines:
    """A binary stream that keeps each write apart."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)


@pytest.mark.parametrize("fmt", ["openlineage", "in-toto"])
def test_openlineage_and_intoto_are_written_a_line_at_a_time(built, fmt):
    out = _Lines()
    assert gitprov.Repository(built["path"]).export(fmt, output=out) == b""  # type: ignore[arg-type]
    assert b"".join(out.writes) == built["exports"][fmt]
    assert len(out.writes) == built["exports"][fmt].count(b"\n") > 2
    assert all(w.count(b"\n") == 1 and w.endswith(b"\n") for w in out.writes)


def test_prov_o_is_written_a_node_at_a_time(built):
    out = _Lines()
    gitprov.Repository(built["path"]).export("prov-o", output=out)  # type: ignore[arg-type]
    assert b"".join(out.writes) == built["exports"]["prov-o"]
    graph = built["graph"]
    nodes = len(graph.runs) + len(graph.other_runs) + len(graph.entities) + len(graph.agents)
    assert len(out.writes) == 2 + nodes + len(graph.edges)  # the prefixes, each node, each relation


def test_cli_output_file_is_written_whole_or_not_at_all(built):
    env = {"HOME": str(built["home"]), "GIT_CONFIG_NOSYSTEM": "1"}
    ok = run_prov(built["path"], "export", "--format", "in-toto", "-o", "statements.jsonl", env=env)
    assert ok.returncode == 0, ok.stderr
    assert (built["path"] / "statements.jsonl").read_bytes() == built["exports"]["in-toto"]
    (built["path"] / "statements.jsonl").unlink()
    # no signing key: refused before the first statement, no file and no temporary file left
    failed = run_prov(built["path"], "export", "--format", "in-toto", "--sign", "-o", "signed.jsonl", env=env)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert failed.stderr.count("\n") == 1, failed.stderr
    assert not [p.name for p in built["path"].iterdir() if p.name.startswith("signed.jsonl")]


@pytest.mark.parametrize("who", ["Eve <eve@example.com>\nInjected <x@y>", "no email", "<a> <b>", "A <" + "a" * 1100 + ">"])
def test_a_remote_record_with_a_forged_recorder_is_refused(who):
    from gitprov.errors import UsageError
    from gitprov.exchange.remote_values import check_record_values
    from gitprov.model import CodeVersion, RunRecord
    from gitprov.schema import current_pin

    def record(user):
        return RunRecord(created="2026-01-01T00:00:00.000000Z", nonce="00", code=CodeVersion(commit=None),
                         schema=current_pin(), user=user)

    with pytest.raises(UsageError, match="user is not"):
        check_record_values(record(who))
    check_record_values(record("Ada Lovelace <ada@example.com>"))
    check_record_values(record(""))
