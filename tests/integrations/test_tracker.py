"""GitMetadataTracker: every method of the tracker interface, backed by real runs."""

from __future__ import annotations

import pytest

import gitprov
from gitprov import UsageError
from gitprov.integrations.tracker import GitMetadataTracker


@pytest.fixture
def tracker(make_repo):
    path = make_repo("sha1").path
    gitprov.init(path, hooks=False)
    t = GitMetadataTracker(path, environment=False)
    yield t
    t.stop()


def test_resources_create_get_update_ids_and_versions(tracker):
    first = tracker.create_resource("churn", "model")
    assert tracker.get_resource_id(first) == "churn"
    assert tracker.get_resource("churn", "model") is first  # the live object of this process
    assert tracker.get_resource("churn", "dataset") is None and tracker.get_resource("nope") is None
    second = tracker.create_resource("churn", "model")
    assert tracker.get_resource("churn", "model").id == second.id
    assert tracker.get_prev_resource_version(second).id == first.id
    assert tracker.get_prev_resource_version(first) is None
    tracker.update_resource(second, {"owner": "ml-team", "parent": first})
    assert second.get_attribute("owner") == "ml-team"
    assert tracker.get_parent_id(second) == "churn" and tracker.get_parent_id(second, "dataset") is None
    assert tracker.get_parent_id(first) is None
    # visible to other processes through the ledger
    other = GitMetadataTracker(tracker.repo.work_tree, environment=False)
    assert other.get_resource("churn", "model").get_attribute("owner") == "ml-team"


def test_artifacts_tags_metadata_and_vc(tracker, tmp_path):
    res = tracker.create_resource("ds", "dataset_version")
    (tmp_path / "data.csv").write_text("a,b\n")
    tracker.log_artifact(res, "data", tmp_path / "data.csv")
    assert tracker.get_artifact(res, "data") == b"a,b\n"
    tracker.log_tag(res, "split", "train")
    assert tracker.get_tag(res, "split") == "train" and tracker.get_tag(res, "nope") is None
    tracker.log_metadata(res, "schema", {"cols": ["a", "b"]})
    assert tracker.get_metadata(res, "schema") == {"cols": ["a", "b"]}
    # a dict, as the interface returns: get_vc_info(r)["hexsha"]
    assert tracker.get_vc_info(res) == {"hexsha": res.record.code.commit}  # default: the run's commit
    tracker.register_vc_resource(res, {"hexsha": "abc123", "url": "https://example.com/repo"}, key="data",
                                 additional_metadata={"path": "data.csv"})
    registered = {"hexsha": "abc123", "url": "https://example.com/repo", "path": "data.csv"}
    assert tracker.get_vc_info(res) == registered and tracker.get_vc_info(res)["hexsha"] == "abc123"
    assert tracker.get_vc_info(res, "data") == tracker.get_vc_info(res, "data_hexsha") == registered
    assert tracker.get_vc_info(res, "path")["path"] == "data.csv"
    assert tracker.get_vc_info(res, "missing") == {"hexsha": None}
    for method, folder in ((tracker.log_data_profile, "data_profile"), (tracker.log_checks, "checks"),
                           (tracker.log_data_comparison, "data_comparison")):
        method(res, tmp_path / "data.csv")
        assert tracker.get_artifact(res, f"{folder}/data.csv") == b"a,b\n"
    with pytest.raises(UsageError):
        tracker.log_checks(res, tmp_path / "missing.json")
    tracker.stop()
    stored = GitMetadataTracker(tracker.repo.work_tree, environment=False).get_resource("ds", "dataset_version")
    assert stored.status == "finished" and stored.get_tags()["split"] == "train"


def test_models_lineage_deployment_and_jobs(tracker):
    exp = tracker.create_resource("exp-1", "experiment")
    data = tracker.create_resource("customers", "dataset_version")
    model = tracker.create_resource("churn", "model")
    v1 = tracker.create_resource("churn-v1", "model_version")
    tracker.update_resource(v1, {"parent": model})
    v2 = tracker.create_resource("churn-v1", "model_version")
    tracker.update_resource(v2, {"parent": exp})
    tracker.build_model_lineage(v1, [data])
    assert gitprov.lineage.inputs_of(v1).runs == {data.id: set()}
    assert tracker.get_latest_model_resource(model, "model_version").id == v1.id
    assert tracker.get_latest_model_resource("churn", "model_version").id == v1.id
    assert tracker.get_latest_model_resource(model, "experiment") is None
    assert tracker.get_currently_deployed_model_version(v2) is None
    tracker.log_tag(v1, "deployed", "true")
    assert tracker.get_currently_deployed_model_version(v2).id == v1.id
    assert tracker.get_winning_experiment(v2).id == exp.id and tracker.get_winning_experiment(v1) is None
    job = tracker.create_resource("nightly", "prediction_job")
    assert tracker.get_prediction_job_model_version(job) is None
    gitprov.lineage.of(job).with_input_artifact(v2.id).register()
    assert tracker.get_prediction_job_model_version(job).id == v2.id
    v2.log_artifact("model", b"weights")

    class Model:
        def loads(self, data):
            return ("loaded", data)

    assert tracker.load_model(Model(), v2, None) == ("loaded", b"weights")
    assert tracker.load_model(object(), None, v2) == b"weights"
    with pytest.raises(UsageError):
        tracker.load_model(Model(), None, None)


def test_clean_resource_and_stop(tracker):
    a = tracker.create_resource("tmp", "scratch")
    tracker.create_resource("tmp", "scratch")
    assert tracker.clean_resource(a, "scratch") == 2
    assert tracker.get_resource("tmp", "scratch") is None
    keep = tracker.create_resource("keep")
    tracker.stop()
    assert gitprov.Repository(tracker.repo.work_tree).get_run(keep.id).status == "finished"


def test_bad_resources(tracker):
    with pytest.raises(UsageError):
        tracker.create_resource("")
    with pytest.raises(UsageError):
        tracker.get_tag(42, "x")
    with pytest.raises(UsageError):
        tracker.update_resource(tracker.create_resource("x"), ["not", "a", "dict"])
