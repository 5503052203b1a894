"""``log_revision`` / ``prov sync revision``: a revision pinned in a real MLflow sqlite
store and in a W&B offline run read back from its ``.wandb`` file."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitprov.cli.app import cli
from gitprov.integrations.tracking import (
    BUNDLE_ARTIFACT,
    ProvenanceBundle,
    log_revision,
    provenance_bundle,
)
from tests.conftest import run_git


@pytest.fixture
def pinned_repo(prov_path: Path) -> Path:
    """A repository whose HEAD commits the lexicon ``prov init`` vendored."""
    run_git(prov_path, "add", ".provenance-schema")
    run_git(prov_path, "commit", "-q", "-m", "lexicon")
    run_git(prov_path, "remote", "add", "origin", "https://user:secret@example.com/team/demo.git")
    return prov_path


def expected_bundle(repo: Path, rev: str = "HEAD") -> dict:
    commit = run_git(repo, "rev-parse", rev).strip()
    manifest = subprocess.run(["git", "show", f"{commit}:.provenance-schema/manifest.json"], cwd=repo,
                              capture_output=True, check=True).stdout
    return {
        "revision": commit,
        "lexicon_tree_hash": run_git(repo, "rev-parse", f"{commit}:.provenance-schema").strip(),
        "lexicon": "sha256:" + hashlib.sha256(manifest).hexdigest(),
        "schema_version": json.loads(manifest)["schema_version"],
        "working_dir": str(repo),
        "repo_url": "https://example.com/team/demo.git",
    }


def mlflow_rows(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("runs", "tags", "inputs")}
    finally:
        con.close()


def test_bundle_pins_commit_and_committed_lexicon(pinned_repo: Path) -> None:
    bundle = provenance_bundle(pinned_repo, "HEAD")
    assert isinstance(bundle, ProvenanceBundle)
    assert bundle.to_json() == expected_bundle(pinned_repo)


def test_bundle_is_a_frozen_pydantic_model_with_a_json_schema(pinned_repo: Path) -> None:
    import pydantic

    from gitprov.integrations.tracking import _bundle_text

    bundle = provenance_bundle(pinned_repo, "HEAD")
    assert ProvenanceBundle.model_validate_json(_bundle_text(bundle)) == bundle  # a logged bundle reads back
    with pytest.raises(pydantic.ValidationError):
        bundle.revision = "0" * 40
    schema = ProvenanceBundle.model_json_schema()
    assert set(schema["properties"]) == set(expected_bundle(pinned_repo))
    assert set(schema["required"]) == {"revision", "lexicon_tree_hash", "schema_version", "working_dir", "lexicon"}
    assert schema["properties"]["schema_version"]["type"] == "integer"


def test_layers_version_is_the_schema_version_under_the_lairs_name(pinned_repo: Path) -> None:
    bundle = provenance_bundle(pinned_repo, "HEAD")
    assert bundle.layers_version == bundle.schema_version
    data = {**bundle.to_json()}
    data["layers_version"] = data.pop("schema_version")
    assert ProvenanceBundle.model_validate(data) == bundle
    assert ProvenanceBundle(**data).to_json() == bundle.to_json()  # written back as schema_version


def test_bundle_of_a_commit_without_lexicon_uses_the_running_pin(pinned_repo: Path) -> None:
    from gitprov.schema import current_pin_fields

    bundle = provenance_bundle(pinned_repo, "HEAD~1")
    assert bundle.revision == run_git(pinned_repo, "rev-parse", "HEAD~1").strip()
    assert bundle.lexicon_tree_hash is None and bundle.lexicon == current_pin_fields()["lexicon"]


def test_log_revision_to_mlflow_sqlite(pinned_repo: Path, mlflow_db: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{mlflow_db}"
    logged = log_revision(pinned_repo, "HEAD", "mlflow", tracking_uri=uri, experiment="pins",
                          artifact_location=str(tmp_path / "art"))
    want = expected_bundle(pinned_repo)
    # what lairs returns: the tracked artifact's identifier, "<artifact name>:<revision>"
    assert isinstance(logged, str) and logged == f"git-demo:{want['revision']}" and logged.backend == "mlflow"
    run_id = logged.run_id
    c = MlflowClient(tracking_uri=uri)
    run = c.get_run(run_id)
    assert c.get_experiment(run.info.experiment_id).name == "pins" and run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["mlflow.source.git.commit"] == tags["prov.revision"] == want["revision"]
    assert tags["prov.lexicon"] == want["lexicon"] and tags["prov.lexicon_tree"] == want["lexicon_tree_hash"]
    assert tags["mlflow.source.git.repoURL"] == "https://example.com/team/demo.git"  # no credentials
    assert "secret" not in json.dumps(tags)
    local = c.download_artifacts(run_id, BUNDLE_ARTIFACT, str(tmp_path / "dl"))
    assert json.loads(Path(local).read_text()) == want
    [dataset_input] = run.inputs.dataset_inputs
    assert dataset_input.dataset.source_type == "git" and dataset_input.dataset.digest == want["revision"][:36]
    assert json.loads(dataset_input.dataset.source) == {"uri": want["repo_url"], "revision": want["revision"]}

    # into an existing run: nothing new is created, the run keeps its status
    other = c.create_run(run.info.experiment_id).info.run_id
    assert log_revision(pinned_repo, "HEAD~1", "mlflow", tracking_uri=uri, run_id=other).run_id == other
    assert c.get_run(other).data.tags["prov.revision"] == run_git(pinned_repo, "rev-parse", "HEAD~1").strip()
    assert c.get_run(other).info.status == "RUNNING"


def test_mistyped_revision_raises_value_error_before_anything_is_logged(pinned_repo: Path, mlflow_db: Path) -> None:
    before = mlflow_rows(mlflow_db)
    with pytest.raises(ValueError, match="unknown revision 'deadbeefdeadbeef'"):
        log_revision(pinned_repo, "deadbeefdeadbeef", "mlflow", tracking_uri=f"sqlite:///{mlflow_db}")
    assert mlflow_rows(mlflow_db) == before


def test_bad_backend_and_options(pinned_repo: Path) -> None:
    from gitprov.errors import UsageError

    with pytest.raises(UsageError, match="unknown tracker 'neptune'"):
        log_revision(pinned_repo, "HEAD", "neptune")
    with pytest.raises(TypeError, match="unknown option.*project"):
        log_revision(pinned_repo, "HEAD", "mlflow", project="p")


@pytest.mark.parametrize(("backend", "extra"), [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_missing_library_is_an_import_error_naming_the_extra(pinned_repo: Path, backend: str, extra: str) -> None:
    code = (f"import sys; sys.modules[{extra!r}] = None\n"
            "from gitprov.integrations.tracking import log_revision\n"
            "try:\n"
            f"    log_revision('.', 'HEAD', {backend!r})\n"
            "except ImportError as exc:\n"
            "    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=pinned_repo, capture_output=True, text=True, check=True)
    assert f"pip install 'git-prov[{extra}]'" in proc.stdout


def test_importing_the_module_loads_no_tracker() -> None:
    code = ("import sys, json, gitprov.integrations.tracking\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'wandb', 'click'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == []


def test_log_revision_to_wandb_offline(pinned_repo: Path, wandb_dir: Path) -> None:
    from tests.sync.wandb_reader import read_run

    logged = log_revision(pinned_repo, "HEAD", "wandb", project="pins")
    run_id = logged.run_id
    [path] = wandb_dir.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")
    got = read_run(path)
    want = expected_bundle(pinned_repo)
    assert got["id"] == run_id and got["project"] == "pins" and got["commit"] == want["revision"]
    assert got["config"]["prov"] == want
    [art] = got["artifacts"]
    assert art["type"] == "git-revision" and art["name"] == "git-demo" and art["metadata"] == want
    assert set(art["files"]) == {"provenance_bundle.json", "revision"}
    assert art["refs"]["revision"] == f"git+https://example.com/team/demo.git@{want['revision']}"
    # what lairs returns, here also a valid W&B artifact reference: the full revision is an alias
    assert logged == f"git-demo:{want['revision']}" and want["revision"] in art["aliases"]


def test_cli_sync_revision(pinned_repo: Path, mlflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(pinned_repo)
    uri = f"sqlite:///{mlflow_db}"
    result = CliRunner().invoke(cli, ["sync", "revision", "HEAD", "--to", "mlflow", "--tracking-uri", uri, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["bundle"] == expected_bundle(pinned_repo) and out["backend"] == "mlflow"
    from mlflow import MlflowClient

    assert MlflowClient(tracking_uri=uri).get_run(out["external_id"]).data.tags["prov.revision"] == out["bundle"]["revision"]
    result = CliRunner().invoke(cli, ["sync", "revision", "HEAD", "--to", "wandb", "--tracking-uri", uri])
    assert result.exit_code == 2 and "--tracking-uri does not apply to --to wandb" in result.output


def test_cli_sync_revision_leaves_the_work_tree_clean(pinned_repo: Path, wandb_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    monkeypatch.chdir(pinned_repo)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_DIR")
    before = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], capture_output=True,
                            text=True, check=True).stdout
    result = CliRunner().invoke(cli, ["sync", "revision", "HEAD", "--to", "mlflow", "--json"])
    assert result.exit_code == 0, result.output
    from mlflow import MlflowClient

    db = pinned_repo / ".git" / "prov" / "mlflow" / "mlflow.db"
    run = MlflowClient(tracking_uri=f"sqlite:///{db}").get_run(json.loads(result.stdout)["external_id"])
    assert run.info.artifact_uri.startswith(str(db.parent / "mlruns"))
    result = CliRunner().invoke(cli, ["sync", "revision", "HEAD", "--to", "wandb", "--project", "p"])
    assert result.exit_code == 0, result.output
    assert list((pinned_repo / ".git" / "prov" / "wandb").glob("offline-run-*"))
    after = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], capture_output=True,
                           text=True, check=True).stdout
    assert after == before


def test_cli_mistyped_revision_is_one_line_exit_4(pinned_repo: Path, mlflow_db: Path) -> None:
    from tests.conftest import run_prov

    before = mlflow_rows(mlflow_db)
    proc = run_prov(pinned_repo, "sync", "revision", "nosuchrev", "--to", "mlflow", "--tracking-uri", f"sqlite:///{mlflow_db}")
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.strip().splitlines() == ["prov: error: unknown revision 'nosuchrev'; check 'git log' for valid names"]
    assert mlflow_rows(mlflow_db) == before


def test_inside_an_active_mlflow_run_the_revision_goes_to_that_run(pinned_repo: Path, mlflow_db: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_db}")
    mlflow.set_tracking_uri(f"sqlite:///{mlflow_db}")
    exp = mlflow.MlflowClient().create_experiment("train", artifact_location=str(tmp_path / "art"))
    try:
        with mlflow.start_run(experiment_id=exp) as active:
            assert log_revision(pinned_repo, "HEAD", "mlflow").run_id == active.info.run_id
            assert mlflow.MlflowClient().get_run(active.info.run_id).info.status == "RUNNING"
    finally:
        mlflow.set_tracking_uri("")
    run = mlflow.MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}").get_run(active.info.run_id)
    assert run.data.tags["prov.revision"] == expected_bundle(pinned_repo)["revision"]
    assert run.info.status == "FINISHED"  # ended by its owner, not by log_revision


def test_inside_an_active_wandb_run_the_revision_goes_to_that_run(pinned_repo: Path, wandb_dir: Path) -> None:
    import wandb

    from tests.sync.wandb_reader import read_run

    # dir: wandb keeps the WANDB_DIR its first run in this process saw
    run = wandb.init(project="train", dir=str(wandb_dir), settings=wandb.Settings(silent=True, x_disable_stats=True))
    try:
        assert log_revision(pinned_repo, "HEAD", "wandb").run_id == run.id
        run.log({"loss": 1.0})  # still open: log_revision did not finish it
    finally:
        run.finish()
    [path] = wandb_dir.glob(f"wandb/offline-run-*-{run.id}/run-{run.id}.wandb")
    got = read_run(path)
    assert got["config"]["prov"] == expected_bundle(pinned_repo)
    assert [a["type"] for a in got["artifacts"]] == ["git-revision"] and got["history"][0]["loss"] == 1.0


def test_cli_unknown_tracker_run_is_one_line_exit_10(pinned_repo: Path, mlflow_db: Path) -> None:
    from tests.conftest import run_prov

    proc = run_prov(pinned_repo, "sync", "revision", "--to", "mlflow", "--tracking-uri", f"sqlite:///{mlflow_db}",
                    "--run-id", "nosuchrun")
    assert proc.returncode == 10
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("prov: error: logging revision ") and "Run with id=nosuchrun not found" in line
