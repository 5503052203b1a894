"""Lineage: the fluent API, stored in the run's state, and the Query builder."""

from __future__ import annotations

import pytest

import gitprov
import gitprov.lineage as lineage
from gitprov import UsageError


def start(path, name="r", **kw):
    return gitprov.Repository(path).start_run(name=name, environment=False, **kw)


def test_register_on_an_active_run_is_stored_at_end(prov_repo):
    with start(prov_repo.path, "train") as up:
        up_id = up.id
    with start(prov_repo.path, "eval") as run:
        lineage.of(run).with_input_model("bert", "v3").with_input_model("bert", 4).with_output_model("clf") \
            .with_input_artifact(up_id[:8], "weights").with_input_artifact(up_id, "config.json") \
            .with_input_dataset("train", "sha256:ab").register()
    loaded = gitprov.Repository(prov_repo.path).get_run(run.id)
    ins, outs = lineage.inputs_of(loaded), lineage.outputs_of(loaded)
    assert ins.models == {"bert": {"v3", "4"}}
    assert ins.runs == {up_id: {"weights", "config.json"}}
    assert ins.runs_by_path == {"weights": {up_id}, "config.json": {up_id}}
    assert ins.datasets == {"train": {"sha256:ab"}}
    assert outs.models == {"clf": set()} and not outs.runs
    assert loaded.state.lineage.inputs["model:bert"] == ["4", "v3"]


def test_register_on_an_ended_run_is_additive_and_idempotent(prov_repo):
    with start(prov_repo.path) as run:
        lineage.of(run).with_input_model("bert", "v3").register()
    repo = gitprov.Repository(prov_repo.path)
    stored = repo.get_run(run.id)
    tip = repo.ledger.tip()
    lineage.of(stored).with_input_model("bert", "v3").register()  # nothing new: no write
    assert repo.ledger.tip() == tip
    lineage.of(stored).with_input_model("bert", "v4").with_output_model("clf", "1").register()
    assert repo.ledger.tip() != tip
    again = gitprov.Repository(prov_repo.path).get_run(run.id)
    assert lineage.inputs_of(again).models == {"bert": {"v3", "v4"}}
    assert lineage.outputs_of(again).models == {"clf": {"1"}}
    assert again.status == "finished"


def test_unknown_run_ids_are_kept_as_dangling_references(prov_repo):
    with start(prov_repo.path) as run:
        lineage.of(run).with_input_artifact("deadbeef" * 5, "x").register()
    loaded = gitprov.Repository(prov_repo.path).get_run(run.id)
    assert lineage.inputs_of(loaded).runs == {"deadbeef" * 5: {"x"}}


@pytest.mark.parametrize("call", [
    lambda b: b.with_input_model("", "v1"),
    lambda b: b.with_input_model(3.5),
    lambda b: b.with_input_model("m", ["v1"]),
    lambda b: b.with_input_artifact("not-hex"),
    lambda b: b.with_input_artifact("abc"),
    lambda b: b.with_input_dataset("d", None),
    lambda b: b.with_output_model("m\n"),
])
def test_bad_lineage_input_is_a_usage_error(prov_repo, call):
    with start(prov_repo.path) as run, pytest.raises(UsageError):
        call(lineage.of(run))


def test_of_needs_a_run():
    with pytest.raises(UsageError):
        lineage.of("abc")


def test_query_render():
    assert lineage.Query().render() == {}
    assert lineage.Query().with_input_model("bert", "v3").render() == {"inputs.models.bert": "v3"}
    q = lineage.Query().with_input_model("bert").with_output_artifact("ABCD1234", "w").with_input_dataset("d")
    assert q.render() == {"$and": [
        {"inputs.models.bert": {"$exists": True}},
        {"outputs.runs.abcd1234": "w"},
        {"inputs.datasets.d": {"$exists": True}},
    ]}


# -- the pydantic models (as in mlopus) ---------------------------------------------------


def test_lineage_of_a_run_is_its_registered_lineage_as_a_model(prov_repo):
    with start(prov_repo.path, "up") as up:
        pass
    with start(prov_repo.path) as run:
        lineage.of(run).with_input_model("bert", "v3").with_input_artifact(up.id[:8], "w").register()
    stored = gitprov.Repository(prov_repo.path).get_run(run.id)
    model = lineage.Lineage.of(stored)
    assert isinstance(model, lineage.Lineage) and model.run is stored
    assert model.model_dump() == {
        "inputs": {"models": {"bert": {"v3"}}, "runs": {up.id: {"w"}}, "datasets": {}},
        "outputs": {"models": {}, "runs": {}, "datasets": {}},
    }
    assert lineage.Lineage.model_validate_json(model.model_dump_json()) == lineage.Lineage(
        inputs=lineage.inputs_of(stored), outputs=lineage.outputs_of(stored))
    model.with_output_model("clf", 1).register()  # bound to the run, additive like of()
    again = gitprov.Repository(prov_repo.path).get_run(run.id)
    assert lineage.Lineage.of(again).outputs.models == {"clf": {"1"}}
    assert lineage.inputs_of(again).models == {"bert": {"v3"}}
    assert lineage.of(again).model_dump()["inputs"]["models"] == {}  # of() starts empty, as before


def test_a_lineage_on_its_own_is_built_fluently_and_round_trips():
    built = lineage.Lineage().with_input_model("bert", 3).with_output_artifact("ABCD1234", "w") \
        .with_input_dataset("train", "sha256:ab")
    assert built.inputs.models == {"bert": {"3"}} and built.outputs.runs == {"abcd1234": {"w"}}
    data = built.model_dump(mode="json")
    assert data["inputs"]["datasets"] == {"train": ["sha256:ab"]}
    assert lineage.Lineage.model_validate(data) == built
    assert lineage.Inputs.model_validate({"runs": {"ABCD": ["x"]}}).runs == {"abcd": {"x"}}


def test_the_models_have_a_json_schema():
    schema = lineage.Lineage.model_json_schema()
    assert set(schema["properties"]) == {"inputs", "outputs"} and schema["additionalProperties"] is False
    inputs = schema["$defs"]["Inputs"]["properties"]
    assert set(inputs) == {"models", "runs", "datasets"}
    assert inputs["models"]["additionalProperties"]["items"] == {"type": "string", "minLength": 1, "maxLength": 250}
    assert set(lineage.Query.model_json_schema()["properties"]) == {"clauses"}


@pytest.mark.parametrize(("cls", "data", "fields"), [
    (lineage.Inputs, {"models": {"bert": [3]}, "runs": {"xyz": []}},
     ["models.bert.0: Input should be a valid string", "runs.xyz.[key]: run id 'xyz' is not a run id"]),
    (lineage.Lineage, {"inputs": {"datasets": {"d": ["a\nb"]}}, "outputs": 3, "extra": 1},
     ["inputs.datasets.d.0: dataset digest 'a\\nb' must be 1 to 250 printable characters",
      "outputs: Input should be a", "extra: Extra inputs are not permitted"]),
    (lineage.Query, {"clauses": {"a": 1}}, ["clauses: Input should be a valid"]),
])
def test_invalid_model_data_is_one_usage_error_naming_every_field(cls, data, fields):
    import json

    for validate in (lambda: cls.model_validate(data), lambda: cls(**data),
                     lambda: cls.model_validate_json(json.dumps(data))):
        with pytest.raises(UsageError) as info:
            validate()
        message = str(info.value)
        assert message.startswith(f"invalid {cls.__name__}: ") and "\n" not in message
        assert all(f in message for f in fields), message


def test_query_is_a_model():
    query = lineage.Query().with_input_model("bert", "v3").where({"metrics.acc": {"$gte": 0.9}})
    assert query.model_dump() == {"clauses": [{"inputs.models.bert": "v3"}, {"metrics.acc": {"$gte": 0.9}}]}
    assert lineage.Query.model_validate(query.model_dump()).render() == query.render()


# -- the lineage graph ------------------------------------------------------------------


def pipeline(path):
    """prep -> (artifact train.csv) -> train (+ bert v3) -> clf 1 -> eval; x <-> y a cycle."""
    repo = gitprov.Repository(path)
    with start(path, "prep") as prep:
        lineage.of(prep).with_input_dataset("raw", "sha256:11").with_output_artifact(prep.id, "train.csv").register()
    with start(path, "train") as train:
        lineage.of(train).with_input_artifact(prep.id, "train.csv").with_input_model("bert", "v3") \
            .with_output_model("clf", "1").register()
    with start(path, "eval") as ev:
        lineage.of(ev).with_input_model("clf", "1").with_input_artifact("deadbeef" * 5).register()
    with start(path, "x") as x:
        pass
    with start(path, "y") as y:
        lineage.of(y).with_input_artifact(x.id).register()
    lineage.of(repo.get_run(x.id)).with_input_artifact(y.id).register()
    return repo, {"prep": prep.id, "train": train.id, "eval": ev.id, "x": x.id, "y": y.id}


@pytest.fixture
def graph_repo(make_repo):
    path = make_repo("sha1").path
    gitprov.init(path, hooks=False)
    return pipeline(path)


def test_upstream_downstream_and_depth(graph_repo):
    repo, ids = graph_repo
    up = repo.lineage(ids["train"][:8], "upstream")
    assert set(up.nodes) == {f"run:{ids['train']}", f"artifact:{ids['prep']}/train.csv", f"run:{ids['prep']}",
                             "dataset:raw@sha256:11", "model:bert@v3"}
    assert up.cycles == []
    assert set(repo.lineage(ids["train"], "upstream", depth=1).nodes) == {
        f"run:{ids['train']}", f"artifact:{ids['prep']}/train.csv", "model:bert@v3"}
    down = repo.lineage("dataset:raw", "downstream")
    assert f"run:{ids['eval']}" in down.nodes and "model:bert@v3" not in down.nodes
    assert set(repo.lineage("clf@1").nodes) >= {f"run:{ids['train']}", f"run:{ids['eval']}"}
    assert set(repo.lineage("clf").roots) == {"model:clf@1"}
    artifact = f"artifact:{ids['prep']}/train.csv"
    for target in (f"{ids['prep'][:8]}/train.csv", f"artifact:{ids['prep'][:8]}/train.csv", artifact):
        assert repo.lineage(target, "downstream").roots == [artifact]


def test_cycles_are_reported_not_followed(graph_repo):
    repo, ids = graph_repo
    graph = repo.lineage(ids["x"])
    assert graph.cycles == [sorted([f"run:{ids['x']}", f"run:{ids['y']}"])]
    assert "cycle: run" in graph.render("text")


def test_dangling_reference_is_a_missing_node_and_a_verify_warning(graph_repo):
    repo, ids = graph_repo
    graph = repo.lineage(ids["eval"], "upstream")
    assert graph.nodes[f"run:{'deadbeef' * 5}"]["missing"] is True
    report = repo.verify()
    assert report.ok and any("dangling" in w and "deadbeefdead" in w for w in report.warnings)


def test_render_formats(graph_repo):
    import json

    repo, ids = graph_repo
    graph = repo.lineage(ids["train"])
    data = json.loads(graph.render("json"))
    assert data["roots"] == [f"run:{ids['train']}"] and {"from": "model:bert@v3", "to": f"run:{ids['train']}", "label": ""} in data["edges"]
    assert graph.render("dot").startswith("digraph lineage {") and "->" in graph.render("dot")
    assert graph.render("mermaid").startswith("flowchart LR") and "-->" in graph.render("mermaid")
    with pytest.raises(UsageError):
        graph.render("svg")


@pytest.mark.parametrize(("target", "kwargs"), [
    ("nope", {}), ("model:nope", {}), ("artifact:abcd/x", {}), ("artifact:abcd", {}), ("abcd/x", {}), ("", {}), ("clf", {"direction": "sideways"}),
    ("clf", {"depth": -1}),
])
def test_bad_lineage_targets(graph_repo, target, kwargs):
    repo, _ = graph_repo
    with pytest.raises(UsageError):
        repo.lineage(target, **kwargs)


def test_lineage_cli(graph_repo, monkeypatch):
    import json

    from click.testing import CliRunner

    from gitprov.cli.app import cli

    repo, ids = graph_repo
    monkeypatch.chdir(repo.work_tree)
    runner = CliRunner()
    text = runner.invoke(cli, ["lineage", ids["train"][:10], "--upstream"])
    assert text.exit_code == 0 and "dataset raw@sha256:11" in text.output and "downstream:" not in text.output
    js = runner.invoke(cli, ["lineage", "clf@1", "--downstream", "--depth", "1", "--format", "json"])
    assert js.exit_code == 0 and {n["id"] for n in json.loads(js.output)["nodes"]} == {"model:clf@1", f"run:{ids['eval']}"}
    dot = runner.invoke(cli, ["lineage", ids["x"], "--format", "dot"])
    assert dot.exit_code == 0 and "digraph" in dot.output
    bad = runner.invoke(cli, ["lineage", "nope"])
    assert bad.exit_code == 2 and "prov: error:" in bad.output and "Traceback" not in bad.output


# -- pipeline stages -----------------------------------------------------------------


def test_stage_records_and_find_cached(prov_repo, tmp_path):
    import subprocess
    import sys

    path = prov_repo.path
    repo = gitprov.Repository(path)
    (tmp_path / "raw.txt").write_text("data")
    with start(path, "a") as run:
        with run.stage("featurize", params={"n": 3, "mode": "fast"}, inputs={"raw": str(tmp_path / "raw.txt")}) as st:
            st.outputs["features"] = b"features"
            st.outputs["given"] = "sha256:abcd"
        key = st.args_hash
    code = "import gitprov.runs.stage as s; print(s.args_hash({'mode': 'fast', 'n': 3}))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == key  # stable across processes and key order
    raw = {"raw": str(tmp_path / "raw.txt")}
    found = repo.find_cached("featurize", key, inputs=raw)
    assert found is not None and found.run_id == run.id and found.run.name == "a"
    assert found.outputs["given"] == "sha256:abcd" and found.outputs["features"].startswith("sha256:")
    assert found.inputs["raw"].startswith("sha256:") and found.params == {"n": 3, "mode": "fast"}
    assert found.commit == run.record.code.commit and found.cache_key == st.cache_key
    assert repo.find_cached("featurize", key, commit="HEAD", inputs=raw) is not None
    assert repo.find_cached("featurize", key) is None  # the key covers the inputs: none given, no hit
    assert repo.find_cached("featurize", st.args_hash.replace("a", "b", 1), inputs=raw) is None
    assert repo.find_cached("other", key, inputs=raw) is None
    prov_repo.commit("new code")
    assert repo.find_cached("featurize", key, commit="HEAD", inputs=raw) is None  # different code


def test_failed_stage_is_not_a_cache_hit_and_aggregates_hash_their_inputs(prov_repo):
    path = prov_repo.path
    repo = gitprov.Repository(path)
    with start(path, "a") as a:
        pass
    with start(path, "b") as b:
        pass
    with start(path, "broken") as run, pytest.raises(ValueError), run.stage("train", params={"lr": 1}) as st:
        raise ValueError("boom")
    assert repo.find_cached("train", st.args_hash) is None
    assert run.get_attribute("prov.stage/train")["status"] == "failed"
    with start(path, "agg") as agg, agg.stage("aggregate", inputs=[repo.get_run(a.id), repo.get_run(b.id)]) as st1:
        pass
    with start(path, "agg2") as agg2, agg2.stage("aggregate", inputs=[repo.get_run(b.id), repo.get_run(a.id)]) as st2:
        pass
    assert st1.inputs_hash == st2.inputs_hash and set(st1.inputs) == {a.id, b.id}
    assert lineage.inputs_of(repo.get_run(agg.id)).runs == {a.id: set(), b.id: set()}


@pytest.mark.parametrize(("params", "inputs"), [([1], None), ({"x": object()}, None), (None, {"x": 3}), (None, 5)])
def test_bad_stage_arguments(prov_repo, params, inputs):
    with start(prov_repo.path) as run, pytest.raises(UsageError):
        run.stage("s", params=params, inputs=inputs)


def test_stage_needs_an_active_run(prov_repo):
    with start(prov_repo.path) as run:
        pass
    with pytest.raises(UsageError):
        gitprov.Repository(prov_repo.path).get_run(run.id).stage("s")


def test_long_chains_and_big_cycles_render_without_recursion():
    from gitprov.index.traversal import build_graph

    n = 5000
    nodes = {f"run:{i}": {"kind": "run", "label": f"run {i}", "missing": False, "deleted": False} for i in range(n)}
    edges = [(f"run:{i}", f"run:{(i + 1) % n}", "") for i in range(n)]  # one cycle through every run
    graph = build_graph(nodes, edges, ["run:0"], "downstream")
    assert len(graph.nodes) == n and graph.cycles == [sorted(nodes)]
    text = graph.render("text")
    assert text.count("\n") > n and "(cycle)" in text
    assert len(build_graph(nodes, edges, ["run:0"], "upstream", depth=3).nodes) == 4


def test_a_long_chain_prints_in_linear_size_and_json_streams_as_json_dumps():
    import json

    from gitprov.index.graph import MAX_INDENT
    from gitprov.index.traversal import build_graph

    n = 3000
    nodes = {f"run:{i}": {"kind": "run", "label": f"run {i}", "missing": False, "deleted": False} for i in range(n)}
    edges = [(f"run:{i}", f"run:{i + 1}", "") for i in range(n - 1)]  # a chain, no cycle
    graph = build_graph(nodes, edges, ["run:0"], "downstream")
    lines = list(graph.lines("text"))
    assert len(lines) == n + 1  # the title, "downstream:", one line per later run
    assert max(map(len, lines)) < 2 * MAX_INDENT + 40  # was n * 2 spaces deep: O(n²) in all
    assert lines[-1] == f"{'  ' * MAX_INDENT}[{n - 1}] -> run {n - 1}"
    assert lines[2 + MAX_INDENT - 1] == f"{'  ' * MAX_INDENT}-> run {MAX_INDENT}"
    assert "\n".join(graph.lines("json")) == json.dumps(graph.to_json(), indent=2, sort_keys=True)
    empty = build_graph(nodes, [], ["run:0"], "upstream")
    assert "\n".join(empty.lines("json")) == json.dumps(empty.to_json(), indent=2, sort_keys=True)


def test_a_wide_frontier_asked_in_chunks_gives_the_graph_of_one_ask(monkeypatch):
    """A frontier wider than ``_FRONTIER_CHUNK`` (a model every run consumed) is asked
    for a chunk at a time: the same nodes, edges, depths, cycles and renderings."""
    import json

    from gitprov.index import traversal

    n = 700
    nodes = {f"run:{i:04d}": {"kind": "run", "label": f"run {i}", "missing": i == 5, "deleted": i == 6}
             for i in range(n)}
    nodes["model:base@1"] = {"kind": "model", "label": "model base@1", "missing": False, "deleted": False}
    edges = [("model:base@1", f"run:{i:04d}", "") for i in range(n)]
    edges += [(f"run:{i:04d}", f"run:{(i * 7 + 3) % n:04d}", "") for i in range(0, n, 3)]  # cycles among them
    edges += [("run:0001", "run:0001", "")]  # a self-loop
    rendered = []
    for chunk in (traversal._FRONTIER_CHUNK, 1):
        monkeypatch.setattr(traversal, "_FRONTIER_CHUNK", chunk)
        graph = traversal.build_graph(nodes, edges, ["model:base@1"], "both")
        rendered.append((graph.nodes, graph.edges, graph.depths, graph.cycles,
                         [list(graph.lines(fmt)) for fmt in ("text", "json", "dot", "mermaid")]))
        assert "\n".join(graph.lines("json")) == json.dumps(graph.to_json(), indent=2, sort_keys=True)
    assert rendered[0] == rendered[1]
    graph_nodes, graph_edges, depths, cycles, _ = rendered[0]
    assert len(graph_nodes) == n + 1 and len(graph_edges) == len(set(edges))
    assert depths["model:base@1"] == 0 and {depths[f"run:{i:04d}"] for i in range(n)} == {1}
    assert ["run:0001"] in cycles and all(len(c) > 1 for c in cycles if c != ["run:0001"])


def test_a_lazy_traversal_walks_when_first_used_and_prints_its_title_before():
    from gitprov.index.traversal import MemoryEdges, traverse

    nodes = {f"run:{i}": {"kind": "run", "label": f"run {i}", "missing": False, "deleted": False} for i in range(4)}
    source = MemoryEdges(nodes, [("run:0", "run:1", ""), ("run:1", "run:2", ""), ("run:2", "run:0", "")])
    asked = []
    edges = source.edges
    source.edges = lambda frontier, forward: asked.append(frontier) or edges(frontier, forward)  # type: ignore[method-assign]
    graph = traverse(source, ["run:0"], "downstream", lazy=True)
    lines = graph.lines("text")
    assert next(lines) == "lineage of run 0 (downstream)" and asked == []
    assert list(lines)[-1] == "cycle: run 0 -> run 1 -> run 2 -> run 0" and asked
    eager = traverse(source, ["run:0"], "downstream")
    assert eager.cycles == graph.cycles == [["run:0", "run:1", "run:2"]] and eager.render() == graph.render()
