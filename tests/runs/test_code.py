"""A run's code version: the patch of uncommitted changes, and the reuse of the last
``git diff`` while nothing it read has changed (runs/code.py). The oracle is always a
fresh ``git diff --binary HEAD`` by the real git."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from gitprov.runs import code
from gitprov.store.repo import GitRepository
from tests.conftest import GitRepo, run_git

SETTLE = code._RACY_NS / 1e9 + 0.05  # long enough for a snapshot to stop being racy


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The git commands code.py spawns."""
    calls: list[list[str]] = []
    real = code.gitbin.output

    def spawn(args, **kwargs):
        calls.append(args)
        return real(args, **kwargs)

    monkeypatch.setattr(code.gitbin, "output", spawn)
    monkeypatch.setattr(code, "_snapshots", {})
    return calls


def diffs(calls: list[list[str]]) -> int:
    return sum(1 for argv in calls if "diff" in argv)


def patch_of(repo: GitRepo) -> bytes:
    git = GitRepository.open(str(repo.path))
    version = code.code_version(git)
    if version.patch is None:
        assert not version.is_dirty
        return b""
    return git.odb.read_typed(version.patch, "blob")


def truth(repo: GitRepo) -> bytes:
    return run_git(repo.path, *code._DIFF).encode()


def test_an_unchanged_work_tree_reuses_the_last_diff(repo: GitRepo, counted) -> None:
    (repo.path / "file-c0.txt").write_text("edited\n")
    time.sleep(SETTLE)
    first = patch_of(repo)
    assert first == truth(repo) and first
    for _ in range(3):
        assert patch_of(repo) == first
    assert diffs(counted) == 1
    (repo.path / "untracked.txt").write_text("not part of git diff HEAD\n")
    assert patch_of(repo) == first and diffs(counted) == 1


@pytest.mark.parametrize("change", ["same-size edit", "same size and mtime", "chmod", "delete",
                                    "stage a new file", "commit", "config", "environment",
                                    "untracked .gitattributes", "attributes file"])
def test_any_change_git_diff_reads_makes_a_new_diff(repo: GitRepo, counted, change: str, monkeypatch) -> None:
    target = repo.path / "file-c0.txt"
    target.write_text("aaaa\n")
    attributes = repo.path / "attributes"
    if change == "attributes file":
        attributes.write_text("")
        repo.git("config", "core.attributesFile", str(attributes))
    time.sleep(SETTLE)
    before = patch_of(repo)
    assert patch_of(repo) == before and diffs(counted) == 1  # cached
    if change == "same-size edit":
        target.write_text("bbbb\n")
    elif change == "same size and mtime":
        st = os.stat(target)
        target.write_text("cccc\n")
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the ctime tells
    elif change == "chmod":
        target.chmod(0o755)
    elif change == "delete":
        target.unlink()
    elif change == "stage a new file":
        (repo.path / "new.txt").write_text("new\n")
        repo.git("add", "new.txt")
    elif change == "commit":
        repo.git("commit", "-qam", "commit the edit")
    elif change == "config":
        repo.git("config", "diff.noprefix", "true")
    elif change == "environment":
        monkeypatch.setenv("GIT_DIFF_OPTS", "--unified=1")
    elif change == "untracked .gitattributes":
        (repo.path / ".gitattributes").write_text("*.txt -diff\n")
    elif change == "attributes file":
        attributes.write_text("*.txt -diff\n")
    after = patch_of(repo)
    assert after == truth(repo)
    assert diffs(counted) == 2
    if change not in ("environment", "config"):  # (re-run, and output unchanged: fine)
        assert after != before


def test_a_racy_snapshot_is_not_reused(repo: GitRepo, counted) -> None:
    (repo.path / "file-c0.txt").write_text("just written\n")
    patch_of(repo)  # the file's timestamps are too fresh to trust
    patch_of(repo)
    assert diffs(counted) == 2
    time.sleep(SETTLE)
    patch_of(repo)
    patch_of(repo)
    assert diffs(counted) == 3


def test_submodules_are_never_reused(repo: GitRepo, make_repo, counted) -> None:
    sub = make_repo("sha1" if run_git(repo.path, "rev-parse", "--show-object-format").strip() == "sha1" else "sha256")
    run_git(repo.path, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub.path), "sub")
    repo.git("commit", "-qm", "submodule")
    run_git(repo.path / "sub", "commit", "-q", "--allow-empty", "-m", "moved")  # the superproject's stat is unchanged
    time.sleep(SETTLE)
    first = patch_of(repo)
    assert first == truth(repo) and b"Subproject commit" in first
    patch_of(repo)
    assert diffs(counted) == 2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_edits_always_give_what_git_diff_gives(repo: GitRepo, counted, seed: int) -> None:
    rng = random.Random(seed)
    names = [f"f{i}.txt" for i in range(4)]
    for name in names:
        (repo.path / name).write_text(f"{name}\n")
    repo.git("add", *names)
    repo.git("commit", "-qm", "files")
    for _ in range(25):
        name = rng.choice(names)
        path: Path = repo.path / name
        op = rng.choice(["edit", "edit-same-size", "chmod", "delete", "restore", "stage", "commit", "wait", "none"])
        if op == "edit":
            path.write_text(rng.choice("xyz") * rng.randint(1, 20) + "\n")
        elif op == "edit-same-size" and path.exists():
            size = path.stat().st_size
            path.write_text(rng.choice("pqr") * (size - 1) + "\n")
        elif op == "chmod" and path.exists():
            path.chmod(rng.choice([0o644, 0o755]))
        elif op == "delete" and path.exists():
            path.unlink()
        elif op == "restore":
            repo.git("checkout", "-q", "HEAD", "--", name, check=False)  # (gone from HEAD: nothing)
        elif op == "stage":
            repo.git("add", "-A")
        elif op == "commit":
            repo.git("commit", "-qam", "step", "--allow-empty")
        elif op == "wait":
            time.sleep(SETTLE)
        assert patch_of(repo) == truth(repo), op
        assert patch_of(repo) == truth(repo), op  # reused or not, the same
    assert diffs(counted) < 50  # some of the 50 diffs were reused


def test_config_includes_are_watched(repo: GitRepo, tmp_path, counted) -> None:
    """Files the config includes (nested, conditional, not there yet) are watched like
    the config itself: the diff is reused until one of them changes."""
    included, nested = tmp_path / "included.gitconfig", tmp_path / "nested.gitconfig"
    included.write_text(f"[include]\n\tpath = {nested}\n")
    repo.git("config", "include.path", str(included))
    repo.git("config", "includeIf.onbranch:main.path", str(tmp_path / "on-main.gitconfig"))
    (repo.path / "file-c0.txt").write_text("edited\n")
    time.sleep(SETTLE)
    first = patch_of(repo)
    assert patch_of(repo) == first == truth(repo)
    assert diffs(counted) == 1
    nested.write_text("[diff]\n\tcontext = 0\n")  # a file that did not exist when the diff was taken
    time.sleep(SETTLE)
    assert patch_of(repo) == truth(repo)
    assert diffs(counted) == 2
    included.write_text("")
    (tmp_path / "on-main.gitconfig").write_text("[diff]\n\tcontext = 1\n")
    time.sleep(SETTLE)
    assert patch_of(repo) == truth(repo)
    assert patch_of(repo) == truth(repo)
    assert diffs(counted) == 3


def test_a_config_git_cannot_read_is_never_reused(repo: GitRepo, counted) -> None:
    (repo.path / "file-c0.txt").write_text("edited\n")
    time.sleep(SETTLE)
    git = GitRepository.open(str(repo.path))
    with open(repo.path / ".git" / "config", "a") as f:
        f.write("[broken\n")
    for _ in range(2):
        code.code_version(git)
    assert diffs(counted) == 2


def test_the_stored_patch_applies_whatever_the_users_diff_settings(repo: GitRepo, tmp_path, counted) -> None:
    repo.git("config", "diff.noprefix", "true")
    repo.git("config", "diff.upper.textconv", "tr a-z A-Z")
    (repo.path / ".gitattributes").write_text("*.txt diff=upper\n")
    repo.git("add", ".gitattributes")
    repo.git("commit", "-qm", "attributes")
    (repo.path / "file-c0.txt").write_text("changed, not committed\n")
    patch = patch_of(repo)
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(repo.path), str(clone))
    run_git(clone, "apply", "-", input=patch.decode())
    assert (clone / "file-c0.txt").read_text() == "changed, not committed\n"
