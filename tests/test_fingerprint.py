"""``fingerprint``: only allow-listed CI variables are read (scrubbed and cut), lock
files are recognised by name at the root of the commit, and installed distributions
enter a capture as a digest and a count."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitprov import codec, fingerprint
from gitprov.fingerprint import (
    CI_VARIABLES,
    ci_identifiers,
    distributions,
    environment,
    environment_fields,
    is_lockfile,
)
from gitprov.scrub import REDACTED
from tests.conftest import GitRepo

SENTINEL = "s3ntinel-" + "9f8e7d6c5b4a"  # a value that must never reach a record
SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "HF_TOKEN", "OPENAI_API_KEY", "DB_PASSWORD",
               "MY_SERVICE_SECRET", "CI_JOB_TOKEN", "SOME_PLAIN_VARIABLE")


@pytest.fixture
def no_ci(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The test's own environment without any CI variable the machine may set."""
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# -- CI identifiers ------------------------------------------------------------------

names = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789", min_size=1, max_size=24)


@given(st.dictionaries(st.one_of(names, st.sampled_from(CI_VARIABLES)), st.text(max_size=20), max_size=12))
def test_only_allow_listed_variables_with_a_value_are_read(env: dict[str, str]) -> None:
    found = ci_identifiers(env)
    assert set(found) == {name for name in CI_VARIABLES if env.get(name)}


def test_ci_identifiers_reads_os_environ_by_default(no_ci: pytest.MonkeyPatch) -> None:
    no_ci.setenv("GITHUB_ACTIONS", "true")
    no_ci.setenv("GITHUB_RUN_ID", "4242")
    no_ci.setenv("GITHUB_TOKEN", SENTINEL)
    no_ci.setenv("CI_JOB_TOKEN", SENTINEL)  # GitLab's job token: CI_-prefixed, not allow-listed
    assert ci_identifiers() == {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "4242"}


def test_no_ci_variable_reads_nothing_and_leaves_scrub_unimported(no_ci: pytest.MonkeyPatch) -> None:
    no_ci.delitem(sys.modules, "gitprov.scrub", raising=False)
    assert ci_identifiers() == {}
    assert ci_identifiers({"CI": ""}) == {}  # set but empty counts as absent
    assert "gitprov.scrub" not in sys.modules  # the token patterns are compiled only in CI


@pytest.mark.parametrize(("value", "stored"), [
    ("refs/heads/main", "refs/heads/main"),
    ("https://ci-user:" + SENTINEL + "@jenkins.example.com/", "https://jenkins.example.com/"),
    ("build with ghp_" + "A" * 36, f"build with {REDACTED}"),
    ("x" * 300, "x" * 200),                                    # cut to 200 characters
    ("x" * 195 + "hf_" + "B" * 30, ("x" * 195 + REDACTED)[:200]),  # scrubbed first, then cut
])
def test_ci_values_are_scrubbed_then_cut(value: str, stored: str) -> None:
    assert ci_identifiers({"JENKINS_URL": value}) == {"JENKINS_URL": stored}


# -- nothing else from the environment reaches a record ------------------------------

def plant_secrets(mp: pytest.MonkeyPatch) -> None:
    for name in SECRET_VARS:
        mp.setenv(name, SENTINEL)
    mp.setenv("CI", "true")
    mp.setenv("GITHUB_SHA", "0" * 40)


def test_a_planted_secret_never_appears_in_the_encoded_environment(no_ci: pytest.MonkeyPatch) -> None:
    plant_secrets(no_ci)
    encoded = codec.encode(environment({"uv.lock": "1" * 40}))
    assert SENTINEL.encode() not in encoded
    assert set(json.loads(encoded)) == {
        "python_implementation", "python_version", "platform", "machine",
        "distributions_digest", "distributions_count", "lockfiles",
    }
    assert ci_identifiers() == {"CI": "true", "GITHUB_SHA": "0" * 40}


def test_a_planted_secret_never_appears_in_a_capture(no_ci: pytest.MonkeyPatch, make_repo) -> None:
    from gitprov.api import Repository
    from gitprov.quickcapture import canonical_json, capture_fields

    plant_secrets(no_ci)
    repo: GitRepo = make_repo()
    head = repo.git("rev-parse", "HEAD").strip()
    prov = Repository(str(repo.path))
    full = codec.encode(prov.build_capture(head))   # the full capture path
    lean = canonical_json(capture_fields(prov.git, head, "hook"))  # the commit hook's path
    for encoded in (full, lean):
        assert SENTINEL.encode() not in encoded
        assert b'"ci":{"CI":"true","GITHUB_SHA":"' + b"0" * 40 + b'"}' in encoded


# -- lock files ----------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "uv.lock", "poetry.lock", "requirements.txt", "requirements-dev.txt", "requirements_gpu.txt",
    "environment.yml", "environment.yaml", "Pipfile.lock", "pyproject.toml", "conda-lock.yml",
    "conda-lock.yaml", "pixi.lock",
])
def test_lockfile_names(name: str) -> None:
    assert is_lockfile(name)


@pytest.mark.parametrize("name", [
    "uv.lock.bak", "my-uv.lock", "Pipfile", "setup.py", "setup.cfg", "package-lock.json",
    "requirements.in", "requirements.txt.orig", "environment.json", "sub/uv.lock", "UV.LOCK", "",
])
def test_not_lockfile_names(name: str) -> None:
    assert not is_lockfile(name)


def test_a_capture_records_root_lock_files_by_blob_id(no_ci: pytest.MonkeyPatch, make_repo) -> None:
    from gitprov.api import Repository
    from gitprov.quickcapture import capture_fields

    repo: GitRepo = make_repo()
    head = repo.commit("deps", files={
        "uv.lock": "u\n", "requirements-dev.txt": "pytest\n", "pyproject.toml": "[project]\n",
        "sub/poetry.lock": "nested\n", "README.md": "hello\n", "requirements/base.txt": "x\n",
    })
    expected = {name: repo.git("rev-parse", f"HEAD:{name}").strip()
                for name in ("pyproject.toml", "requirements-dev.txt", "uv.lock")}
    prov = Repository(str(repo.path))
    full = prov.build_capture(head).environment.lockfiles
    lean = capture_fields(prov.git, head, "hook")["environment"]["lockfiles"]
    assert full == lean == expected
    assert list(full) == sorted(full) and list(lean) == sorted(lean)


# -- installed distributions ---------------------------------------------------------

def make_site(path: Path, *entries: str) -> str:
    path.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        (path / entry).mkdir()
    return str(path)


def test_distributions_are_listed_normalised_and_sorted(tmp_path: Path) -> None:
    one = make_site(tmp_path / "one", "Foo_Bar-1.2.dist-info", "baz.qux-0.1.egg-info", "numpy-2.0.0.dist-info",
                    "numpy", "not-a-dist", "README.txt")
    two = make_site(tmp_path / "two", "foo-bar-1.2.dist-info", "Zed-3.dist-info")
    listed = distributions([one, two, str(tmp_path / "missing")])
    assert listed == ["baz-qux==0.1", "foo-bar==1.2", "numpy==2.0.0", "zed==3"]


def test_the_sys_path_listing_is_redone_when_a_directory_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = make_site(tmp_path / "site", "alpha-1.0.dist-info")
    monkeypatch.setattr(sys, "path", [site])
    monkeypatch.setattr(fingerprint, "_listed", None)
    first = distributions()
    assert first == ["alpha==1.0"]
    first.append("mutated==0")  # a copy: the kept listing is not changed
    assert distributions() == ["alpha==1.0"]
    (tmp_path / "site" / "beta-2.0.dist-info").mkdir()
    os.utime(site, ns=(1_000_000_000, 1_000_000_000))  # a different mtime, whatever the clock's resolution
    assert distributions() == ["alpha==1.0", "beta==2.0"]


def test_the_environment_holds_a_digest_and_a_count_not_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    dists = ["alpha==1.0", "beta==2.0"]
    monkeypatch.setattr(fingerprint, "distributions", lambda: list(dists))
    fields = environment_fields({"uv.lock": "b" * 40, "pyproject.toml": "a" * 40})
    assert fields["distributions_digest"] == "sha256:" + hashlib.sha256(b"alpha==1.0\nbeta==2.0").hexdigest()
    assert fields["distributions_count"] == 2
    assert list(fields["lockfiles"]) == ["pyproject.toml", "uv.lock"]
    assert fields["python_version"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert fields["python_implementation"] == sys.implementation.name and fields["platform"] == sys.platform
    assert "alpha" not in repr(fields)
    # the struct (full capture path) and the plain fields (the hook's lean path) encode alike
    assert codec.encode(environment({"uv.lock": "b" * 40, "pyproject.toml": "a" * 40})) == codec.encode(fields)
