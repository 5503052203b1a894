"""Planted secrets never reach a git object or a file under ``.git/`` (issue 16, DESIGN.md §8).

Each secret is a distinct string with no token shape (so only the name or the place it
stands in gives it away); every one goes in through a path a user takes: ``prov run``'s
command line and ``--param``, the API's params, hyperparameters, stage params and
command, and the CI variables a capture reads. Then every object git has is printed
whole (``git cat-file --batch-all-objects --batch``, so packed and compressed objects
are searched as git reads them) and every file under ``.git/`` is read raw, the run
index included.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import gitprov
from gitprov.scrub import is_redaction

from .conftest import GitRepo, run_prov

#: 30 planted secrets: name -> value (the value is what must never be found)
SECRETS = {f"s{i:02d}": f"pl4nted-{i:02d}-qx7v" for i in range(1, 31)}
S = SECRETS


def _argv_secrets() -> list[str]:
    return [
        f"--password={S['s01']}", "--password", S["s02"], f"--db-pass={S['s03']}", f"DB_PASS={S['s04']}",
        "--header", f"Authorization: Bearer {S['s05']}", f'{{"password": "{S["s06"]}", "lr": 0.1}}',
        "--api-key", S["s07"], f"--client-secret={S['s08']}", f"https://user:{S['s09']}@example.com/x",
        "--url", f"https://h/x?token={S['s10']}&n=1", "-H", f"X-Api-Key: {S['s11']}",
        "--config", f"{{db: {{password: {S['s12']}}}, lr: 0.1}}", f"--Auth-Token={S['s13']}",
        "--sshKey", S["s14"], "--cookie", f"session={S['s15']}", f"PGPASSWORD={S['s16']}",
        f"--credentials={S['s17']}", "--lr", "0.1",
    ]


def _everything_git_holds(repo: GitRepo) -> bytes:
    objects = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch", "--unordered"],
                             cwd=repo.path, capture_output=True, check=True).stdout
    files = b"".join(p.read_bytes() for p in (repo.path / ".git").rglob("*") if p.is_file() and not p.is_symlink())
    return objects + files


def test_thirty_planted_secrets_reach_no_git_object_and_no_file_under_dot_git(prov_repo: GitRepo) -> None:
    path: Path = prov_repo.path
    ci = {"CI": "true", "BUILD_ID": f"password={S['s18']}", "JOB_NAME": f"https://ci:{S['s19']}@ci.example.com/job"}
    proc = run_prov(path, "run", "--name", "planted", "--param", f"api_key={S['s20']}",
                    "--param", f"db.password={S['s21']}", "--param", "lr=0.1", "--", "true", *_argv_secrets(), env=ci)
    assert proc.returncode == 0, proc.stderr
    proc = run_prov(path, "run", "--name", "shell", "--", "sh", "-c",
                    f"true --password={S['s22']} && DB_PASS={S['s23']} true", env=ci)
    assert proc.returncode == 0, proc.stderr

    repo = gitprov.Repository(path)
    with repo.start_run(name="api", params={"access_token": S["s24"], "db": {"password": S["s25"], "host": "h"}},
                        command=["python", "train.py", "--token", S["s26"]]) as run:
        run.log_hyperparameters({"hfToken": S["s27"], "lr": 0.1})
        with run.stage("fit", params={"secret": S["s28"], "epochs": 3}):
            pass
        run.log_hyperparameter("wandb_api_key", S["s29"])
        run.log_hyperparameter("pwd", S["s30"])
        run_id = run.id

    stored = repo.get_run(run_id)
    params = stored.get_hyperparameters()
    assert params["lr"] == 0.1 and params["db"]["host"] == "h"
    assert all(is_redaction(params[k]) for k in ("access_token", "hfToken", "wandb_api_key", "pwd"))
    assert is_redaction(params["db"]["password"])
    # the index (built by a listing) holds the marks, not the values
    assert run_prov(path, "runs", "--json").returncode == 0

    everything = _everything_git_holds(prov_repo)
    assert everything, "nothing was read"
    found = sorted(name for name, value in SECRETS.items() if value.encode() in everything)
    assert found == [], f"secrets found in git objects or .git/ files: {found}"
    prov_repo.fsck()


def test_equal_secret_params_get_equal_marks_in_one_clone_and_a_shared_key_across_clones(prov_repo: GitRepo,
                                                                                     make_repo) -> None:
    repo = gitprov.Repository(prov_repo.path)
    marks = []
    for value in ("same", "same", "other"):
        with repo.start_run(name="r", params={"api_key": value}, code=False, environment=False) as run:
            marks.append(run.get_hyperparameter("api_key"))
    assert marks[0] == marks[1] != marks[2]
    key_file = prov_repo.path / ".git" / "prov" / "redaction-key"
    assert key_file.stat().st_mode & 0o077 == 0, "the clone's key is private to its owner"

    other = make_repo()
    gitprov.init(other.path, hooks=False)
    for clone in (prov_repo, other):
        clone.git("config", "prov.redactionKey", "team-shared-key")
    shared = []
    for clone in (prov_repo, other):
        with gitprov.Repository(clone.path).start_run(name="r", params={"api_key": "same"}, code=False,
                                                      environment=False) as run:
            shared.append(run.get_hyperparameter("api_key"))
    assert shared[0] == shared[1] != marks[0]


def test_a_changed_secret_hyperparameter_needs_overwrite_and_the_message_does_not_show_it(prov_repo: GitRepo) -> None:
    import pytest

    from gitprov.errors import UsageError

    repo = gitprov.Repository(prov_repo.path)
    with repo.start_run(name="r", params={"api_key": "first-value"}, code=False, environment=False) as run:
        run.log_hyperparameter("api_key", "first-value")  # the same value again: nothing to change
        with pytest.raises(UsageError) as err:
            run.log_hyperparameter("api_key", "second-value")
        assert "second-value" not in str(err.value) and "first-value" not in str(err.value)
        run.log_hyperparameter("api_key", "second-value", overwrite=True)


def test_settings_add_secret_shapes_and_names(prov_repo: GitRepo) -> None:
    (prov_repo.path / ".provenance.toml").write_text('[secrets]\npatterns = ["acme_[0-9a-f]{8}"]\nnames = ["vault"]\n')
    proc = run_prov(prov_repo.path, "run", "--param", "vault_path=/v/1", "--", "true", "--note=acme_0123abcd",
                    "--vault-addr", "v.example")
    assert proc.returncode == 0, proc.stderr
    everything = _everything_git_holds(prov_repo)
    assert b"acme_0123abcd" not in everything and b"v.example" not in everything and b"/v/1" not in everything


def test_an_invalid_secrets_pattern_is_one_line_naming_it(prov_repo: GitRepo) -> None:
    (prov_repo.path / ".provenance.toml").write_text('[secrets]\npatterns = ["acme_[0-9"]\n')
    proc = run_prov(prov_repo.path, "run", "--", "true")
    assert proc.returncode != 0
    assert "secrets pattern 'acme_[0-9' is not a regular expression" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_prov_runs_show_prints_a_redacted_param_as_its_mark(prov_repo: GitRepo) -> None:
    proc = run_prov(prov_repo.path, "run", "--param", "api_key=hunter2", "--", "true")
    assert proc.returncode == 0, proc.stderr
    run_id = gitprov.Repository(prov_repo.path).find_runs()[0].id
    shown = run_prov(prov_repo.path, "runs", "show", run_id[:12]).stdout
    assert "[redacted] hmac-sha256:" in shown and "hunter2" not in shown
