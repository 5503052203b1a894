"""Lineage: the fluent API, stored in the run's state, and the Query builder."""

from __future__ import annotations

import pytest

import gitprov
import gitprov.lineage as lineage
from gitprov import UsageError


@pytest.fixture
def prov_repo(repo):
    gitprov.init(repo.path, hooks=False)
    return repo


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
    with start(prov_repo.path) as run:
        with pytest.raises(UsageError):
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
