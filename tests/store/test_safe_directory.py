"""A repository owned by another user is refused as git refuses it, unless
``safe.directory`` (global config) lists it (issue 16)."""

from __future__ import annotations

import os
import subprocess

import pytest

from ..conftest import GitRepo, run_prov

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="making a repository owned by another user needs root")


def test_a_repository_owned_by_someone_else_is_refused_like_git_does(prov_repo: GitRepo) -> None:
    os.chown(prov_repo.path, 4242, 4242)
    git = subprocess.run(["git", "status"], cwd=prov_repo.path, capture_output=True, text=True)
    assert git.returncode != 0 and "dubious ownership" in git.stderr  # the oracle
    env = {"SUDO_UID": ""}
    proc = run_prov(prov_repo.path, "show", env=env)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "dubious ownership" in lines[0]
    assert f"git config --global --add safe.directory {prov_repo.path}" in lines[0]
    for args in (("run", "--", "true"), ("runs",), ("capture",)):
        assert run_prov(prov_repo.path, *args, env=env).returncode == 3

    subprocess.run(["git", "config", "--global", "--add", "safe.directory", str(prov_repo.path)], check=True)
    assert run_prov(prov_repo.path, "show", env=env).returncode == 0
    subprocess.run(["git", "config", "--global", "--add", "safe.directory", ""], check=True)  # resets the list
    assert run_prov(prov_repo.path, "show", env=env).returncode == 3
    subprocess.run(["git", "config", "--global", "--add", "safe.directory", "*"], check=True)
    assert run_prov(prov_repo.path, "show", env=env).returncode == 0


def test_a_repository_listed_only_in_its_own_config_is_still_refused(prov_repo: GitRepo) -> None:
    prov_repo.git("config", "safe.directory", "*")  # the repository's own config: git ignores it here
    os.chown(prov_repo.path, 4242, 4242)
    assert run_prov(prov_repo.path, "show", env={"SUDO_UID": ""}).returncode == 3
