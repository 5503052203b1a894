"""``prov rerun`` with real git and real processes: rebuild, input and environment
checks, execution as a run that reproduces the original, verdicts and causes."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import gitprov
from tests.conftest import GitRepo, run_git, run_prov

PY = sys.executable

DETERMINISTIC = "text = open('data.txt').read()\nopen('out.txt', 'w').write(text.upper())\n"
CLOCK = "import time\nopen('out.txt', 'w').write(str(time.time_ns()))\n"
API_SCRIPT = """\
import random
import gitprov

SCALE = 1.0
random.seed(7)
with gitprov.start_run(name="train", params={"lr": 0.5}) as run:
    run.log_seed(7)
    lr = run.get_hyperparameter("lr")
    run.log_metric("loss", SCALE * lr * random.random())
"""


@pytest.fixture
def project(make_repo) -> GitRepo:
    """A prov repository with an untracked data file (git ignores it)."""
    repo = make_repo("sha1")
    (repo.path / ".gitignore").write_text("data.txt\nout.txt\n")
    (repo.path / "data.txt").write_text("hello\n")
    repo.git("add", ".gitignore")
    repo.git("commit", "-q", "-m", "ignore data")
    gitprov.init(repo.path, hooks=False)
    return repo


def _prov_run(repo: GitRepo, script: str, *options: str) -> str:
    (repo.path / "train.py").write_text(script)
    repo.git("add", "train.py")
    repo.git("commit", "-q", "-m", "train")
    proc = run_prov(repo.path, "run", *options, "--", PY, "train.py")
    assert proc.returncode == 0, proc.stderr
    return _newest(repo)


def _newest(repo: GitRepo) -> str:
    proc = run_prov(repo.path, "runs", "--json")
    return json.loads(proc.stdout)[0]["id"]


def _rerun(repo: GitRepo, run_id: str, *options: str, env: dict | None = None,
           python: str | None = None) -> tuple[subprocess.CompletedProcess, dict | None]:
    if python is None:
        proc = run_prov(repo.path, "rerun", run_id, "--json", *options, env=env)
    else:
        proc = subprocess.run([python, "-m", "gitprov.cli.entry", "rerun", run_id, "--json", *options],
                              cwd=repo.path, capture_output=True, text=True, env={**os.environ, **(env or {})})
    report = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc, report


def _worktrees(repo: GitRepo) -> list[str]:
    return [line for line in repo.git("worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")]


def test_a_deterministic_command_reruns_identical_as_a_run_that_reproduces_it(project: GitRepo) -> None:
    run_id = _prov_run(project, DETERMINISTIC, "--input", "data.txt", "--output", "out.txt")
    written = (project.path / "out.txt").stat().st_mtime_ns
    proc, report = _rerun(project, run_id, "--check")
    assert proc.returncode == 0, proc.stderr
    assert report["verdict"] == "identical" and report["causes"] == []
    assert [r["status"] for r in report["inputs"]] == ["same"]
    assert {(r["kind"], r["key"]): r["status"] for r in report["results"]}[("output", "out.txt")] == "identical"
    new = gitprov.Repository(project.path).get_run(report["rerun"])
    assert new.record.reproduces == run_id
    assert f"run:{run_id}" in new.state.lineage.inputs
    assert new.get_attribute("prov.rerun")["verdict"] == "identical"
    assert new.record.command == [PY, "train.py"] and new.record.launcher == "command"
    assert len(_worktrees(project)) == 1, "the scratch worktree is removed"
    assert (project.path / "out.txt").stat().st_mtime_ns == written, "the rerun wrote in its scratch worktree only"


def test_the_text_report_and_keep(project: GitRepo, tmp_path: Path) -> None:
    run_id = _prov_run(project, DETERMINISTIC, "--input", "data.txt", "--output", "out.txt")
    where = tmp_path / "scratch"
    proc = run_prov(project.path, "rerun", run_id[:10], "--in", str(where), "--keep")
    assert proc.returncode == 0, proc.stderr
    assert "verdict      identical" in proc.stdout and f"worktree     {where} (kept)" in proc.stdout
    assert (where / "out.txt").read_text() == "HELLO\n" and (where / "data.txt").exists()
    assert len(_worktrees(project)) == 2
    refused = run_prov(project.path, "rerun", run_id, "--in", str(where))
    assert refused.returncode == 2 and "not empty" in refused.stderr


def test_a_script_reading_the_clock_drifts_and_is_called_nondeterministic(project: GitRepo) -> None:
    run_id = _prov_run(project, CLOCK, "--output", "out.txt")
    proc, report = _rerun(project, run_id, "--check")
    assert proc.returncode == 12, proc.stderr
    assert report["verdict"] == "drifted" and report["causes"] == ["nondeterminism"]
    assert "seed" in report["suggestion"]
    assert "drifted (output out.txt" in proc.stderr.splitlines()[-1]
    assert "cause: nondeterminism" in proc.stderr
    assert len(_worktrees(project)) == 1


def test_an_edited_data_file_is_named_as_data_drift(project: GitRepo) -> None:
    run_id = _prov_run(project, DETERMINISTIC, "--input", "data.txt", "--output", "out.txt")
    recorded = "sha256:" + hashlib.sha256(b"hello\n").hexdigest()
    (project.path / "data.txt").write_text("edited\n")
    now = "sha256:" + hashlib.sha256(b"edited\n").hexdigest()
    before = _newest(project)
    stopped = run_prov(project.path, "rerun", run_id)
    assert stopped.returncode == 12
    assert f"input data.txt changed: recorded {recorded}, now {now}" in stopped.stderr
    assert "--allow-drift" in stopped.stderr and _newest(project) == before, "nothing was executed"
    stopped_json, stopped_report = _rerun(project, run_id)
    assert stopped_json.returncode == 12 and "input data.txt changed" in stopped_json.stderr
    assert stopped_report is not None and stopped_report["verdict"] == "stopped"
    assert stopped_report["causes"] == ["data"] and stopped_report["rerun"] is None
    assert stopped_report["data"] == [{"what": "data.txt", "a": recorded, "b": now}]
    proc, report = _rerun(project, run_id, "--allow-drift")
    assert proc.returncode == 0, proc.stderr
    assert report["verdict"] == "drifted" and report["causes"] == ["data"]
    assert report["data"] == [{"what": "data.txt", "a": recorded, "b": now}]
    (project.path / "data.txt").unlink()
    missing = run_prov(project.path, "rerun", run_id)
    assert missing.returncode == 12 and "input data.txt missing" in missing.stderr


def test_a_run_with_an_uncommitted_patch_reruns_identical_from_a_clean_work_tree(project: GitRepo) -> None:
    (project.path / "train.py").write_text(API_SCRIPT)
    project.git("add", "train.py")
    project.git("commit", "-q", "-m", "api script")
    (project.path / "train.py").write_text(API_SCRIPT.replace("SCALE = 1.0", "SCALE = 3.0"))  # not committed
    subprocess.run([PY, "train.py"], cwd=project.path, check=True)
    run_id = _newest(project)
    original = gitprov.Repository(project.path).get_run(run_id)
    assert original.record.launcher == "script" and original.record.command == ["python", "train.py"]
    assert original.record.cwd == "." and original.record.code.patch
    assert original.get_seeds()["seed"] == 7 and original.get_seeds()["random"].startswith("state:")
    project.git("checkout", "--", "train.py")  # clean work tree
    assert project.git("status", "--porcelain", "--untracked-files=no") == ""
    proc, report = _rerun(project, run_id, "--check")
    assert proc.returncode == 0, proc.stderr
    assert report["verdict"] == "identical", report
    new = gitprov.Repository(project.path).get_run(report["rerun"])
    assert new.record.code.patch == original.record.code.patch
    assert new.get_metric("loss") == original.get_metric("loss") and original.get_metric("loss") > 0
    assert new.record.reproduces == run_id and new.record.parent is None


def test_a_param_override_is_a_variant_named_as_the_cause(project: GitRepo) -> None:
    (project.path / "train.py").write_text(API_SCRIPT)
    project.git("add", "train.py")
    project.git("commit", "-q", "-m", "api script")
    subprocess.run([PY, "train.py"], cwd=project.path, check=True)
    run_id = _newest(project)
    proc, report = _rerun(project, run_id, "--param", "lr=0.25", "--check")
    assert proc.returncode == 12
    assert report["variant"] == {"lr": 0.25} and report["causes"] == ["params"]
    new = gitprov.Repository(project.path).get_run(report["rerun"])
    assert new.get_hyperparameter("lr") == 0.25
    assert new.get_attribute("prov.rerun")["variant"] == {"lr": 0.25}
    # a tolerance wide enough for the halved loss makes it "within tolerance"
    proc, report = _rerun(project, run_id, "--param", "lr=0.25", "--check", "--rtol", "loss=0.6")
    assert proc.returncode == 0 and report["verdict"] == "within tolerance"


def test_a_commit_missing_from_the_clone_names_the_remote(make_repo, tmp_path: Path) -> None:
    bare = make_repo("sha1", bare=True)
    origin = make_repo("sha1")
    origin.git("remote", "add", "origin", str(bare.path))
    origin.git("push", "-q", "origin", "main")
    gitprov.init(origin.path, hooks=False)
    origin.commit("unpushed", {"train.py": DETERMINISTIC})
    proc = run_prov(origin.path, "run", "--", PY, "-c", "pass")
    assert proc.returncode == 0, proc.stderr
    run_id = _newest(origin)
    origin.git("push", "-q", "origin", "refs/prov/ledger:refs/prov/ledger")
    run_git(tmp_path, "clone", "-q", str(bare.path), "other")
    other = GitRepo(tmp_path / "other")
    other.git("fetch", "-q", "origin", "refs/prov/ledger:refs/prov/ledger")
    proc = run_prov(other.path, "rerun", run_id)
    assert proc.returncode == 13
    line = proc.stderr.strip()
    assert line.count("\n") == 0 and "Traceback" not in line
    assert "is not in this clone" in line and f"a clone of {bare.path} (remote 'origin' here)" in line
    assert "git fetch origin" in line
    assert len(_worktrees(other)) == 1


def test_a_patch_that_no_longer_applies_is_refused(project: GitRepo) -> None:
    (project.path / "train.py").write_text(DETERMINISTIC)
    project.git("add", "train.py")
    project.git("commit", "-q", "-m", "train")
    commit = project.git("rev-parse", "HEAD").strip()
    (project.path / "train.py").write_text(DETERMINISTIC + "# tuned\n")
    proc = run_prov(project.path, "run", "--", PY, "train.py")
    assert proc.returncode == 0, proc.stderr
    run_id = _newest(project)
    # the commit now stands for another tree (git replace): the recorded patch cannot apply
    project.git("checkout", "-q", "--", "train.py")
    project.git("commit", "-q", "--allow-empty", "-m", "x")
    (project.path / "train.py").write_text("print('rewritten')\n")
    project.git("commit", "-q", "-am", "rewrite")
    project.git("replace", commit, "HEAD")
    proc = run_prov(project.path, "rerun", run_id)
    assert proc.returncode == 13, proc.stderr
    assert f"the recorded patch of run {run_id[:12]} no longer applies to commit {commit[:12]}" in proc.stderr
    assert len(_worktrees(project)) == 1


def test_a_run_from_an_interactive_session_says_it_cannot_be_rerun(project: GitRepo) -> None:
    code = "import gitprov\nwith gitprov.start_run(name='x') as r: print(r.id)"
    out = subprocess.run([PY, "-c", code], cwd=project.path, capture_output=True, text=True, check=True)
    run_id = out.stdout.strip()
    run = gitprov.Repository(project.path).get_run(run_id)
    assert run.record.launcher == "interactive" and run.record.command == []
    shown = run_prov(project.path, "runs", "show", run_id)
    assert "rerun      cannot: it was made in an interactive session" in shown.stdout
    proc = run_prov(project.path, "rerun", run_id)
    assert proc.returncode == 13 and "cannot be rerun: it was made in an interactive session" in proc.stderr
    # a kernel's process (ipykernel imported) is a notebook, even when started from a file
    (project.path / "kernel.py").write_text("import sys, types\nsys.modules['ipykernel'] = types.ModuleType('ipykernel')\n"
                                            "import gitprov\nwith gitprov.start_run(name='nb') as r: print(r.id)\n")
    out = subprocess.run([PY, "kernel.py"], cwd=project.path, capture_output=True, text=True, check=True)
    run = gitprov.Repository(project.path).get_run(out.stdout.strip())
    assert run.record.launcher == "notebook" and run.record.command == []
    proc = run_prov(project.path, "rerun", run.id)
    assert proc.returncode == 13 and "it was made in a notebook" in proc.stderr


# -- environment drift: two virtualenvs with provtoy 1.0 and 2.0 --------------------------------

def _wheel(folder: Path, version: str) -> Path:
    """A pure-Python wheel of ``provtoy`` ``version``, built by hand (no network)."""
    files = {
        "provtoy/__init__.py": f'VERSION = "{version}"\n',
        f"provtoy-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: provtoy\nVersion: {version}\n",
        f"provtoy-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).rstrip(b'=').decode()},"
              f"{len(t.encode())}" for p, t in files.items()]
    files[f"provtoy-{version}.dist-info/RECORD"] = "\n".join([*record, f"provtoy-{version}.dist-info/RECORD,,"]) + "\n"
    path = folder / f"provtoy-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


@pytest.fixture(scope="module")
def toy_venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two virtualenvs that see this project's dependencies, one with provtoy 1.0 and
    one with provtoy 2.0, installed by pip from local wheels."""
    import site

    root = tmp_path_factory.mktemp("venvs")
    pythons = {}
    for version in ("1.0", "2.0"):
        venv = root / f"v{version}"
        subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True)
        python = venv / "bin" / "python"
        purelib = subprocess.run([python, "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        # site.addsitedir (not a bare path line) so the .pth files there run too: an
        # editable install of git-prov is found through one of them
        dirs = [*site.getsitepackages(), str(Path(gitprov.__file__).resolve().parents[1])]
        Path(purelib, "project-deps.pth").write_text(
            "".join(f"import site; site.addsitedir({d!r})\n" for d in dirs))
        subprocess.run([PY, "-m", "pip", "--python", str(python), "install", "-q", "--no-index", "--no-deps",
                        str(_wheel(root, version))], check=True, capture_output=True)
        pythons[version] = str(python)
    return pythons


def test_a_package_version_change_is_named_as_environment_drift(project: GitRepo, toy_venvs: dict[str, str]) -> None:
    script = "import gitprov, provtoy\nwith gitprov.start_run(name='toy') as run:\n" \
             "    run.log_metric('version', float(provtoy.VERSION))\n"
    (project.path / "train.py").write_text(script)
    project.git("add", "train.py")
    project.git("commit", "-q", "-m", "toy")
    subprocess.run([toy_venvs["1.0"], "train.py"], cwd=project.path, check=True)
    run_id = _newest(project)
    assert "provtoy==1.0" in gitprov.Repository(project.path).get_run(run_id).record.packages.splitlines()
    same, report = _rerun(project, run_id, "--check", python=toy_venvs["1.0"])
    assert same.returncode == 0 and report["verdict"] == "identical" and report["environment"] == []
    proc, report = _rerun(project, run_id, "--check", python=toy_venvs["2.0"])
    assert proc.returncode == 12, proc.stderr
    assert report["causes"] == ["environment"]
    assert report["environment"] == [{"what": "package provtoy", "a": "1.0", "b": "2.0"}]
    diff = run_prov(project.path, "runs", "diff", run_id, report["rerun"])
    assert "provtoy" in diff.stdout and "1.0" in diff.stdout and "2.0" in diff.stdout
    assert "cause: environment" in diff.stdout


def test_unseeded_generators_are_named_in_the_nondeterminism_suggestion(project: GitRepo) -> None:
    script = "import numpy as np\nimport gitprov\nwith gitprov.start_run(name='noise') as run:\n" \
             "    run.log_metric('x', float(np.random.random()))\n"
    (project.path / "train.py").write_text(script)
    project.git("add", "train.py")
    project.git("commit", "-q", "-m", "noise")
    subprocess.run([PY, "train.py"], cwd=project.path, check=True)
    run_id = _newest(project)
    seeds = gitprov.Repository(project.path).get_run(run_id).get_seeds()
    assert seeds["numpy.random@end"].startswith("state:") and "torch" not in seeds  # torch is not imported
    proc, report = _rerun(project, run_id)
    assert proc.returncode == 0, proc.stderr
    assert report["verdict"] == "drifted" and report["causes"] == ["nondeterminism"]
    assert "numpy.random" in report["suggestion"] and "log_seed" in report["suggestion"]
    diff = run_prov(project.path, "runs", "diff", run_id, report["rerun"], "--json")
    cause = [row for row in json.loads(diff.stdout) if row["section"] == "cause"]
    assert cause == [{"section": "cause", "key": "nondeterminism", "a": None, "b": report["suggestion"]}]


def test_a_wrapped_command_records_no_generator_states_of_its_wrapper(project: GitRepo) -> None:
    run_id = _prov_run(project, DETERMINISTIC, "--input", "data.txt")
    run = gitprov.Repository(project.path).get_run(run_id)
    assert run.get_seeds() == {} and run.record.launcher == "command" and run.record.cwd == "."
    packages = run.record.packages
    assert any(d.startswith("msgspec==") for d in packages.splitlines())
    assert "sha256:" + hashlib.sha256(packages.encode()).hexdigest() == run.record.environment.distributions_digest


def test_a_module_run_from_a_subdirectory_reruns_there(project: GitRepo, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not in the repository\n")
    script = "import gitprov, os, sys\nwith gitprov.start_run(name='mod') as run:\n" \
             f"    run.log_dataset_version('far', {str(outside)!r})\n" \
             "    run.log_attribute('in', os.path.basename(os.getcwd()))\n" \
             "    run.log_attribute('argv', sys.argv[1:])\n"
    (project.path / "pkg").mkdir()
    (project.path / "pkg" / "job.py").write_text(script)
    project.git("add", "pkg")
    project.git("commit", "-q", "-m", "module")
    subprocess.run([PY, "-m", "job", "--fast"], cwd=project.path / "pkg", check=True)
    run_id = _newest(project)
    rec = gitprov.Repository(project.path).get_run(run_id).record
    assert rec.command == ["python", "-m", "job", "--fast"] and rec.cwd == "pkg"
    proc, report = _rerun(project, run_id, "--check")
    assert proc.returncode == 0, proc.stderr
    # the dataset outside the work tree is listed, not checked, and nothing was copied
    assert [(r["key"], r["status"]) for r in report["inputs"]] == [("far", "unchecked")]
    new = gitprov.Repository(project.path).get_run(report["rerun"])
    assert new.get_attribute("argv") == ["--fast"] and new.get_attribute("in") == "pkg" and new.record.cwd == "pkg"


@pytest.mark.parametrize(("field", "value", "what"), [
    ("cwd", "../outside", "cwd"), ("cwd", "/etc", "cwd"), ("cwd", "a/../../b", "cwd"),
    ("launcher", "daemon", "launcher"), ("reproduces", "../x", "reproduces"),
])
def test_a_remote_record_with_hostile_rerun_fields_is_refused(field: str, value: object, what: str) -> None:
    from gitprov.errors import UsageError
    from gitprov.exchange.remote_values import check_record_values
    from gitprov.model import CodeVersion, RunRecord
    from gitprov.schema import current_pin

    record = RunRecord(created="2026-01-01T00:00:00.000000Z", nonce="00", code=CodeVersion(commit=None),
                       schema=current_pin(), **{field: value})
    with pytest.raises(UsageError, match=what):
        check_record_values(record)
    check_record_values(RunRecord(created="2026-01-01T00:00:00.000000Z", nonce="00", code=CodeVersion(commit=None),
                                  schema=current_pin(), cwd="pkg/sub", launcher="script", reproduces="a" * 40))


def test_a_wrapped_command_gets_the_overrides_in_prov_params(project: GitRepo) -> None:
    script = "import json, os\nopen('out.txt', 'w').write(str(json.loads(os.environ.get('PROV_PARAMS') or '{}')))\n"
    run_id = _prov_run(project, script, "--param", "lr=0.1", "--output", "out.txt")
    same, report = _rerun(project, run_id, "--check")
    assert same.returncode == 0 and report["verdict"] == "identical"
    proc, report = _rerun(project, run_id, "--param", "lr=0.2")
    assert proc.returncode == 0 and report["causes"] == ["params"]
    assert report["params"] == [{"what": "lr", "a": 0.1, "b": 0.2}]
    assert gitprov.Repository(project.path).get_run(report["rerun"]).get_hyperparameter("lr") == 0.2
