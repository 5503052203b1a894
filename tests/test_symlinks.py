"""No write or read follows a symlink out of the repository (issue 16,
docs/design/security.md): a cloned repository can plant symlinks where git-prov writes
(``.provenance-schema/``) or where its patterns look (``[inputs] paths``), and a shared
``core.hooksPath`` lies outside every repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import gitprov

from .conftest import GitRepo, run_prov


def _one_line(proc, code: int, *words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    target = tmp_path / "outside"
    target.mkdir()
    (target / "somefile").write_text("precious\n")
    (target / "hostname").write_text("secret-host\n")
    return target


def test_a_schema_file_symlinked_out_of_the_tree_is_not_written_through(repo: GitRepo, outside: Path) -> None:
    lexicon = repo.path / ".provenance-schema"
    lexicon.mkdir()
    (lexicon / "manifest.json").symlink_to(outside / "somefile")
    _one_line(run_prov(repo.path, "init", "--no-hooks"), 9, "manifest.json", "symbolic link")
    assert (outside / "somefile").read_text() == "precious\n"


def test_a_symlinked_schema_directory_is_refused(repo: GitRepo, outside: Path) -> None:
    (repo.path / ".provenance-schema").symlink_to(outside)
    _one_line(run_prov(repo.path, "init", "--no-hooks"), 9, ".provenance-schema", "symbolic link")
    assert sorted(p.name for p in outside.iterdir()) == ["hostname", "somefile"]


def test_a_dangling_symlink_creates_nothing_outside(repo: GitRepo, outside: Path) -> None:
    lexicon = repo.path / ".provenance-schema"
    lexicon.mkdir()
    (lexicon / "run.schema.json").symlink_to(outside / "new-file")
    _one_line(run_prov(repo.path, "init", "--no-hooks"), 9, "run.schema.json")
    assert not (outside / "new-file").exists()


def test_a_schema_path_that_is_a_file_is_one_line(repo: GitRepo) -> None:
    (repo.path / ".provenance-schema").write_text("not a directory")
    _one_line(run_prov(repo.path, "init", "--no-hooks"), 9, ".provenance-schema", "not a directory")


def test_a_prov_dir_that_is_a_file_is_one_line(repo: GitRepo) -> None:
    (repo.path / ".git" / "prov").write_text("not a directory")
    _one_line(run_prov(repo.path, "init", "--no-hooks"), 9, "prov", "not a directory")


def test_init_writes_the_lexicon_as_regular_files(repo: GitRepo) -> None:
    gitprov.init(repo.path, hooks=False)
    files = list((repo.path / ".provenance-schema").iterdir())
    assert files and all(f.is_file() and not f.is_symlink() for f in files)
    assert not [f for f in files if f.name.endswith(".tmp")]


def test_input_patterns_do_not_follow_symlinks_out_of_the_work_tree(prov_repo: GitRepo, outside: Path) -> None:
    (prov_repo.path / "escape").symlink_to(outside)
    (prov_repo.path / "data").mkdir()
    (prov_repo.path / "data" / "train.csv").write_text("a,b\n")
    (prov_repo.path / "data" / "leak.csv").symlink_to(outside / "hostname")
    (prov_repo.path / "data" / "inner.csv").symlink_to(prov_repo.path / "data" / "train.csv")
    (prov_repo.path / ".provenance.toml").write_text('[inputs]\npaths = ["escape/host*", "data/*.csv", "**/somefile"]\n')
    prov_repo.commit("settings", {"x.txt": "x"})
    gitprov.capture("HEAD", prov_repo.path)
    inputs = sorted(i.path for c in gitprov.Repository(prov_repo.path).show("HEAD").captures for i in c.inputs)
    assert inputs == ["data/inner.csv", "data/train.csv"]
    notes = prov_repo.git("notes", "--ref=prov", "show", "HEAD")
    assert "hostname" not in notes and "somefile" not in notes and "leak" not in notes


def test_a_hooks_path_outside_the_repository_is_refused_and_not_created(repo: GitRepo, tmp_path: Path) -> None:
    shared = tmp_path / "shared-hooks"
    repo.git("config", "core.hooksPath", str(shared))
    _one_line(run_prov(repo.path, "init"), 9, "core.hooksPath", "outside this repository")
    assert not shared.exists()
    repo.git("config", "core.hooksPath", ".githooks")  # inside the work tree: installed there
    assert run_prov(repo.path, "init").returncode == 0
    assert (repo.path / ".githooks" / "post-commit").is_file()
    assert os.access(repo.path / ".githooks" / "post-commit", os.X_OK)
