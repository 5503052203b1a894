"""API parity with the systems users port from (Verta, curifactory, mlopus, lairs), through
the public API on real repositories: the stage cache key, managed cache paths, full
clones, Verta's run calls (models, objects and directories as artifacts, observations,
attributes, code, environment, images, setup scripts) and the lineage models."""

from __future__ import annotations

import math
import os
import subprocess

import pytest

import gitprov
from gitprov import lineage
from gitprov.errors import DataError, UsageError


@pytest.fixture
def object_format() -> str:
    return "sha1"


@pytest.fixture
def repo(prov_repo) -> gitprov.Repository:
    return gitprov.Repository(prov_repo.path)


# -- the stage cache key -----------------------------------------------------------------


def _aggregate(repo: gitprov.Repository, name: str, inputs: list, **cover) -> tuple:
    with repo.start_run(name) as run, run.stage("aggregate", params={"how": "mean"}, inputs=inputs, **cover) as st:
        hit = repo.find_cached(st)
        st.outputs["table"] = f"from {sorted(r.name for r in inputs)}".encode()
    return run, st, hit


def test_an_aggregate_over_other_runs_is_no_hit_for_different_inputs(repo):
    a, b, c = (repo.start_run(n) for n in "abc")
    for run in (a, b, c):
        run.end()
    first, st1, hit = _aggregate(repo, "agg1", [a, b])
    assert hit is None
    # same arguments, other input runs: before, find_cached matched name + args only
    _, st2, hit = _aggregate(repo, "agg2", [a, c])
    assert hit is None and st2.args_hash == st1.args_hash and st2.cache_key != st1.cache_key
    third, _, hit = _aggregate(repo, "agg3", [b, a])  # the same inputs in another order
    assert hit is not None and hit.run_id == first.id and hit.outputs == {"table": hit.outputs["table"]}
    assert repo.find_cached("aggregate", st1.args_hash, inputs=[a, b]).run_id == third.id  # the latest
    assert repo.find_cached("aggregate", st1.args_hash) is None  # no inputs given: a stage without inputs
    # an input run that changed (a new version) is a different input
    repo.get_run(b.id).log_tag("relabelled")
    _, _, hit = _aggregate(repo, "agg4", [repo.get_run(a.id), repo.get_run(b.id)])
    assert hit is None
    record = first.get_attribute("prov.stage/aggregate")
    assert record["covers"] == ["args", "inputs"] and record["cache_key"] == st1.cache_key


def test_the_key_covers_code_and_data_when_asked(repo, prov_repo):
    path = prov_repo.path
    (path / "train.csv").write_text("x\n1\n")
    with repo.start_run("a") as run:
        run.log_dataset_version("train", path / "train.csv")
        with run.stage("fit", params={"lr": 1}, code=True, data=True) as st:
            assert repo.find_cached(st) is None
    assert st.covers == ["args", "inputs", "code", "data"]
    assert repo.find_cached("fit", st.args_hash, code=True, data={"train": path / "train.csv"}).run_id == run.id
    assert repo.find_cached("fit", st.args_hash) is None  # the code and data are part of the key
    (path / "train.csv").write_text("x\n2\n")  # other data
    assert repo.find_cached("fit", st.args_hash, code=True, data={"train": path / "train.csv"}) is None
    (path / "train.csv").write_text("x\n1\n")
    (path / "file-c0.txt").write_text("edited")  # uncommitted code change: another patch
    assert repo.find_cached("fit", st.args_hash, code=True, data={"train": path / "train.csv"}) is None
    subprocess.run(["git", "checkout", "--", "file-c0.txt"], cwd=path, check=True)
    assert repo.find_cached("fit", st.args_hash, code=True, data={"train": path / "train.csv"}) is not None


def test_managed_cache_paths_are_handed_back_by_find_cached(repo):
    with repo.start_run("first") as run, run.stage("featurize", params={"n": 3}) as st:
        assert repo.find_cached(st) is None
        target = st.get_path("features.csv")
        with open(target, "w") as f:
            f.write("a,b\n")
        folder = st.get_dir("images")
        assert os.path.isdir(folder)
        with open(os.path.join(folder, "0.png"), "wb") as f:
            f.write(b"png")
    assert os.path.commonpath([target, repo.git.prov_dir()]) == repo.git.prov_dir()
    assert st.cache_key.removeprefix("sha256:") in target  # content-addressed by the cache key
    with repo.start_run("second") as again, again.stage("featurize", params={"n": 3}) as st2:
        hit = repo.find_cached(st2)
        assert hit is not None and hit.run_id == run.id
        assert hit.get_path("features.csv") == st2.get_path("features.csv") == target
        with open(hit.get_path("features.csv")) as f:
            assert f.read() == "a,b\n"
        assert os.listdir(hit.get_dir("images")) == ["0.png"] and hit.cache_dir() == os.path.dirname(target)
    with repo.start_run("third") as other, other.stage("featurize", params={"n": 4}) as st3:
        assert repo.find_cached(st3) is None and st3.get_path("features.csv") != target
    with open(target, "w") as f:
        f.write("changed")
    with pytest.raises(DataError, match="missing or changed"):
        repo.find_cached("featurize", st.args_hash).get_path("features.csv")
    with pytest.raises(UsageError, match="left no cache file"):
        hit.get_path("nothing")
    for bad in ("../escape", "a/b"):
        with pytest.raises(UsageError, match="cache path name"):
            st3.get_path(bad)


# -- clone: a full copy --------------------------------------------------------------------


def _objects(path) -> set[str]:
    out = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch-check=%(objectname)"], cwd=path,
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_clone_copies_metrics_observations_and_artifacts_by_reference(repo, prov_repo, tmp_path):
    with repo.start_run("orig", params={"lr": 0.1}, tags={"team": "a"}) as run:
        run.log_metric("loss", 1.0, step=5, timestamp=1_700_000_000.123)
        run.log_metric("loss", math.nan, step=9)
        run.log_observation("note", {"text": "hi"}, epoch_num=3)
        run.log_attribute("owner", "me")
        run.log_artifact("weights", b"w" * 1000)
        run.log_dataset_version("train", "sha256:" + "a" * 64)
        run.log_schema({"x": "float"})
        lineage.of(run).with_output_model("clf", "1").register()
    source = repo.get_run(run.id)
    before = _objects(prov_repo.path)
    with source.clone(experiment="e2") as twin:
        pass
    copy = repo.get_run(twin.id)
    assert copy.record.parent == run.id and copy.experiment == "e2"
    assert copy.get_hyperparameters() == {"lr": 0.1} and copy.get_tags() == {"team": "a"}
    assert copy.get_attribute("owner") == "me"
    history = copy.get_metric_history("loss")
    assert [(p.step, p.timestamp) for p in history] == [(p.step, p.timestamp) for p in source.get_metric_history("loss")]
    assert history[0].timestamp == 1_700_000_000_123 and math.isnan(copy.get_metric("loss"))
    assert copy.get_observation("note") == source.get_observation("note") and copy.get_observation("note")[0].epoch == 3
    assert copy.get_artifact("weights") == b"w" * 1000
    assert copy.get_dataset_versions() == source.get_dataset_versions()
    assert copy.get_schema() == {"input": {"x": "float"}}
    assert lineage.outputs_of(copy).models == {"clf": {"1"}}
    # by reference: the clone's tree names the same blob, and no blob of that content was added
    from gitprov.runs import reading

    blob = reading.artifact_blob_id(repo.ledger, run.id, "weights")
    assert reading.artifact_blob_id(repo.ledger, copy.id, "weights") == blob
    added = _objects(prov_repo.path) - before
    sizes = subprocess.run(["git", "cat-file", "--batch-check=%(objecttype) %(objectsize)"], cwd=prov_repo.path,
                           input="\n".join(sorted(added)), capture_output=True, text=True, check=True).stdout
    assert "blob 1000" not in sizes
    with source.clone(full=False) as light:
        pass
    assert repo.get_run(light.id).get_metric_keys() == [] and repo.get_run(light.id).get_artifact_keys() == []


def test_clone_of_an_active_run_carries_what_is_still_buffered(repo):
    with repo.start_run("live") as run:
        run.log_metric("m", 2.0)
        run.log_artifact("a", b"small")
        with run.clone() as twin:
            pass
    copy = repo.get_run(twin.id)
    assert copy.get_metric("m") == 2.0 and copy.get_artifact("a") == b"small"


# -- Verta's run calls -------------------------------------------------------------------------


def test_observations_and_metrics_read_as_in_verta(repo):
    with repo.start_run() as run:
        run.log_observation("acc", 0.5)
        run.log_observation("acc", 0.7)
        run.log_observation("lr", 0.1)
        run.log_metrics({"a": 1.0, "b": 2.0})
    stored = repo.get_run(run.id)
    series = stored.get_observation("acc")
    assert isinstance(series, list) and [o.value for o in series] == [0.5, 0.7] and series[1].epoch == 1
    assert stored.get_latest_observation("acc") == 0.7 and stored.get_latest_observation("none") is None
    assert {k: [o.value for o in v] for k, v in stored.get_observations().items()} == {"acc": [0.5, 0.7], "lr": [0.1]}
    assert stored.get_observations("lr")[0].value == 0.1
    assert stored.get_metrics() == {"a": 1.0, "b": 2.0}


def test_log_attribute_refuses_to_replace_silently(repo):
    with repo.start_run() as run:
        run.log_attribute("owner", "me")
        run.log_attribute("owner", "me")  # the same value again is fine
        with pytest.raises(UsageError, match="already 'me'; pass overwrite=True"):
            run.log_attribute("owner", "you")
        with pytest.raises(UsageError, match="overwrite=True"):
            run.log_attributes({"new": 1, "owner": "you"})
        mine = {k: v for k, v in run.get_attributes().items() if not k.startswith("prov.")}  # (prov.seeds: git-prov's)
        assert mine == {"owner": "me"}  # nothing half-written
        run.log_attribute("owner", "you", overwrite=True)
    assert repo.get_run(run.id).get_attribute("owner") == "you"


def test_schema_leaves_out_an_output_never_logged(repo):
    with repo.start_run() as run:
        run.log_schema({"x": "float"})
        assert run.get_schema() == {"input": {"x": "float"}}
        run.log_schema({"x": "float"}, {"y": "int"})
    assert repo.get_run(run.id).get_schema() == {"input": {"x": "float"}, "output": {"y": "int"}}


def test_log_code_takes_verta_arguments(repo, prov_repo):
    path = prov_repo.path
    (path / "train.py").write_text("print(1)\n")
    head = prov_repo.git("rev-parse", "HEAD").strip()
    older = prov_repo.commit("second")
    with repo.start_run() as run:
        code = run.log_code(exec_path=path / "train.py", repo_url="https://user:pw@example.com/r.git")
        assert code.exec_path == "train.py" and code.commit == older
        assert code.repo_url == "https://example.com/r.git"  # credentials removed
        assert not code.is_dirty  # train.py is untracked: the patch is of tracked files
        with pytest.raises(UsageError, match="code version was logged already"):
            run.log_code(commit_hash=head)
        pinned = run.log_code(commit_hash=head, is_dirty=False, overwrite=True)
        assert pinned.commit == head and not pinned.is_dirty and pinned.patch is None
        given = run.log_code(commit_hash=head, is_dirty=True, autocapture=False, overwrite=True)
        assert given.repo_url is None and given.exec_path is None and given.is_dirty
        with pytest.raises(UsageError, match="is not a file"):
            run.log_code(exec_path=path / "missing.py", overwrite=True)
        with pytest.raises(gitprov.RevisionError):
            run.log_code(commit_hash="nosuchrev", overwrite=True)
    assert repo.get_run(run.id).get_code().commit == head


def test_has_environment_and_setup_script(repo):
    with repo.start_run(environment=False) as bare:
        assert not bare.has_environment
        bare.log_environment()
        assert bare.has_environment
        ref = bare.log_setup_script("import os\nos.environ.setdefault('A', '1')\n")
        assert ref.media_type == "text/x-python"
        with pytest.raises(UsageError, match="not valid Python: .* line 1"):
            bare.log_setup_script("def (:")
        with pytest.raises(UsageError, match="already exists"):
            bare.log_setup_script("x = 1")
    assert repo.get_run(bare.id).get_artifact("setup_script").startswith(b"import os")
    with repo.start_run() as run:
        assert run.has_environment  # fingerprinted at start by default


class _Model:
    """A picklable model object."""

    def __init__(self, w: float) -> None:
        self.w = w

    def predict(self, x: float) -> float:
        return self.w * x


def test_log_model_get_model_download_model_and_the_lineage_node(repo, tmp_path):
    with repo.start_run("trainer") as run:
        run.log_schema({"x": "float"}, {"y": "float"})
        info = run.log_model(_Model(2.0), requirements=["numpy==2.0"], name="doubler", version="1")
        with pytest.raises(UsageError, match="already exists"):
            run.log_model(_Model(3.0))
    assert info["format"] == "pickle" and info["signature"] == {"input": {"x": "float"}, "output": {"y": "float"}}
    stored = repo.get_run(run.id)
    assert stored.get_model().predict(3.0) == 6.0
    assert stored.get_model_info()["requirements"] == ["numpy==2.0"]
    target = stored.download_model(tmp_path / "model.pkl")
    with open(target, "rb") as f:
        assert f.read() == stored.get_artifact("model") and target == str(tmp_path / "model.pkl")
    graph = repo.lineage("doubler@1")
    assert f"run:{run.id}" in graph.nodes and "model:doubler@1" in graph.nodes
    # a model given as a directory, with its framework
    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"pb")
    (folder / "variables" / "v.index").write_bytes(b"ix")
    (tmp_path / "reqs.txt").write_text("# pinned\ntensorflow==2.16\n")
    with repo.start_run("tf") as tf:
        info = tf.log_model(folder, framework="tensorflow", requirements=tmp_path / "reqs.txt")
    assert info["format"] == "directory" and info["requirements"] == ["tensorflow==2.16"]
    assert info["name"] == "tf" and info["version"] == tf.id[:12]
    out = repo.get_run(tf.id).download_model(tmp_path / "restored")
    assert (tmp_path / "restored" / "variables" / "v.index").read_bytes() == b"ix" and out == str(tmp_path / "restored")
    with repo.start_run() as empty:
        pass
    with pytest.raises(UsageError, match="has no model"):
        repo.get_run(empty.id).get_model()


def test_objects_and_directories_as_artifacts(repo, tmp_path):
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("same")
    (folder / "sub" / "b.txt").write_text("same")  # identical content: one blob
    (folder / "sub" / "c.bin").write_bytes(b"\x00\x01")
    with repo.start_run() as run:
        ref = run.log_artifact("config", {"layers": [1, 2], "name": "net"})
        assert ref.media_type == "application/x-pickle"
        listing = run.log_artifact("out", folder)
        assert listing.media_type == "application/vnd.git-prov.directory+json"
    stored = repo.get_run(run.id)
    assert stored.get_artifact_object("config") == {"layers": [1, 2], "name": "net"}
    assert sorted(stored.get_artifact_keys()) == ["config", "out", "out/a.txt", "out/sub/b.txt", "out/sub/c.bin"]
    assert set(stored.get_artifact_object("out")["files"]) == {"a.txt", "sub/b.txt", "sub/c.bin"}
    from gitprov.runs import reading

    blobs = {k: reading.artifact_blob_id(repo.ledger, run.id, k) for k in ("out/a.txt", "out/sub/b.txt")}
    assert blobs["out/a.txt"] == blobs["out/sub/b.txt"]  # deduplicated
    assert not stored.get_artifact("out").startswith(b"PK")  # a listing, not a zip
    restored = stored.download_artifact("out", tmp_path / "back")
    assert (tmp_path / "back" / "sub" / "c.bin").read_bytes() == b"\x00\x01" and restored == str(tmp_path / "back")
    os.symlink("/etc/passwd", folder / "link")
    with repo.start_run() as other, pytest.raises(UsageError, match="symbolic link"):
        other.log_artifact("out", folder)


def test_log_image_of_a_matplotlib_figure(repo):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    with repo.start_run() as run:
        ref = run.log_image("curve", fig)
        run.log_image("current", plt)  # pyplot itself: its current figure
    plt.close(fig)
    assert ref.media_type == "image/png"
    assert repo.get_run(run.id).get_artifact("curve").startswith(b"\x89PNG")


# -- mlopus: the lineage models are pydantic models ---------------------------------------------


def test_lineage_models_are_pydantic_models(repo):
    with repo.start_run() as run:
        built = lineage.Lineage.of(run).with_input_model("bert", "3").with_output_model("clf", "1")
        built.register()
    data = lineage.Lineage.of(repo.get_run(run.id)).model_dump()
    assert data == {"inputs": {"models": {"bert": {"3"}}, "runs": {}, "datasets": {}},
                    "outputs": {"models": {"clf": {"1"}}, "runs": {}, "datasets": {}}}
    again = lineage.Lineage.model_validate(data)
    assert again.outputs.models == {"clf": {"1"}} and lineage.Inputs.model_validate({"models": {"m": []}}).models == {"m": set()}
    assert lineage.Outputs().model_dump() == {"models": {}, "runs": {}, "datasets": {}}
    query = lineage.Query().with_output_model("clf", "1")
    assert lineage.Query.model_validate(query.model_dump()).render() == query.render()
    assert [r.id for r in repo.find_runs(query.render())] == [run.id]
    assert gitprov.lineage.of(run).run is run
    with pytest.raises(UsageError, match="invalid Lineage"):
        lineage.Lineage.model_validate({"inputs": {"models": {"": ["1"]}}})
