"""The one boundary to the git binary (store/gitbin.py), with the real git: a git that
cannot be started is one ``ProvError`` line, git never prompts for a password, a named
git dir wins over the environment's, and a failing command names git's reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitprov.errors import ProvError, RemoteError, WriteError
from gitprov.store import gitbin
from tests.conftest import GitRepo, run_prov
from tests.exchange.clones import make_run
from tests.test_imports import loaded_after

pytestmark = pytest.mark.gitbin

#: a git alias that prints the environment git gives the commands it runs
PRINT_ENV = ["-c", "alias.print-env=!env", "print-env"]


def environment_seen(via: str, git_dir: str | None) -> dict[str, str]:
    """The environment git had, when started by ``run`` or ``output``."""
    if via == "run":
        out = gitbin.run(PRINT_ENV, git_dir=git_dir, text=True).stdout
    else:
        out = gitbin.output(PRINT_ENV, git_dir=git_dir)[1].decode()
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture
def no_git_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


@pytest.mark.parametrize("error", [ProvError, RemoteError])
def test_git_missing_from_path_is_one_line(repo: GitRepo, no_git_on_path: Path, error: type[ProvError]) -> None:
    git_dir = str(repo.path / ".git")
    starts = [
        lambda: gitbin.run(["rev-parse", "HEAD"], git_dir=git_dir, error=error),
        lambda: gitbin.run_checked(["rev-parse", "HEAD"], git_dir=git_dir, error=error),
        lambda: gitbin.output(["rev-parse", "HEAD"], git_dir=git_dir, error=error),
        lambda: gitbin.start(["cat-file", "--batch"], git_dir=git_dir, error=error),
    ]
    for start in starts:
        with pytest.raises(error) as caught:
            start()
        message = str(caught.value)
        assert message.startswith("cannot run git: ") and message.endswith("; is git installed and on PATH?")
        assert "\n" not in message
        assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_prov_without_git_says_so_in_one_line(make_repo, tmp_path: Path) -> None:
    """``prov push`` needs git for the transport: exit 11, one line, no traceback."""
    repo = make_repo()
    make_run(repo.path, "local")
    repo.git("remote", "add", "origin", f"file://{tmp_path}/remote.git")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    proc = run_prov(repo.path, "push", env={"PATH": str(empty)})
    assert proc.returncode == 11, proc.stderr
    assert proc.stderr.splitlines() == [
        "prov: error: cannot run git: No such file or directory; is git installed and on PATH?"]


@pytest.mark.parametrize("via", ["run", "output"])
def test_git_never_prompts_for_a_password(repo: GitRepo, monkeypatch: pytest.MonkeyPatch, via: str) -> None:
    monkeypatch.delenv("GIT_TERMINAL_PROMPT", raising=False)
    assert environment_seen(via, str(repo.path / ".git"))["GIT_TERMINAL_PROMPT"] == "0"
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "1")  # the user's explicit choice is kept
    assert environment_seen(via, str(repo.path / ".git"))["GIT_TERMINAL_PROMPT"] == "1"


@pytest.mark.parametrize("via", ["run", "output"])
def test_a_named_git_dir_wins_over_git_dir_in_the_environment(make_repo, monkeypatch: pytest.MonkeyPatch, via: str) -> None:
    ours, other = make_repo(), make_repo()
    (other.path / "extra.txt").write_text("x")
    other.commit("other")
    monkeypatch.setenv("GIT_DIR", str(other.path / ".git"))
    git_dir = str(ours.path / ".git")
    assert environment_seen(via, git_dir)["GIT_DIR"] == git_dir
    head = ours.git("--git-dir", git_dir, "rev-parse", "HEAD").strip()
    assert gitbin.run(["rev-parse", "HEAD"], git_dir=git_dir, text=True).stdout.strip() == head
    assert gitbin.output(["rev-parse", "HEAD"], git_dir=git_dir)[1].decode().strip() == head
    # without a named git dir, git finds the repository as the user's git would
    assert environment_seen(via, None)["GIT_DIR"] == str(other.path / ".git")


def test_dropped_variables_are_not_passed_on(repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``GIT_OBJECT_DIRECTORY`` of the environment would make git look for the named
    repository's objects elsewhere; a caller that drops it reads the repository's own."""
    (tmp_path / "no-objects").mkdir()
    monkeypatch.setenv("GIT_OBJECT_DIRECTORY", str(tmp_path / "no-objects"))
    git_dir = str(repo.path / ".git")
    assert gitbin.run(["cat-file", "-e", "HEAD"], git_dir=git_dir).returncode != 0
    assert gitbin.run(["cat-file", "-e", "HEAD"], git_dir=git_dir, drop=["GIT_OBJECT_DIRECTORY"]).returncode == 0
    seen = environment_seen("run", git_dir)
    assert seen["GIT_OBJECT_DIRECTORY"] == str(tmp_path / "no-objects")
    out = gitbin.run(PRINT_ENV, git_dir=git_dir, text=True, drop=["GIT_OBJECT_DIRECTORY"], extra={"PROV_X": "1"}).stdout
    assert "GIT_OBJECT_DIRECTORY=" not in out and "PROV_X=1" in out.splitlines()


def test_a_failing_command_names_gits_reason(repo: GitRepo) -> None:
    git_dir = str(repo.path / ".git")
    with pytest.raises(ProvError) as caught:
        gitbin.run_checked(["rev-parse", "--verify", "no-such-branch"], git_dir=git_dir)
    assert str(caught.value) == "cannot run git rev-parse --verify no-such-branch: Needed a single revision"
    with pytest.raises(WriteError) as caught:
        gitbin.run_checked(["config", "--local", "no-section-key", "x"], git_dir=git_dir, text=True,
                           what="set git config no-section-key", error=WriteError)
    assert str(caught.value).startswith("cannot set git config no-section-key: key does not contain a section")
    proc = gitbin.run_checked(["rev-parse", "HEAD"], git_dir=git_dir, text=True)
    assert repo.git("rev-parse", "HEAD") == proc.stdout


def test_the_reason_is_gits_fatal_line_not_its_hints(repo: GitRepo, tmp_path: Path) -> None:
    """git's advice and warnings around the error are left out; the exit status stands
    in when git says nothing."""
    proc = gitbin.run(["fetch", str(tmp_path / "nowhere")], git_dir=str(repo.path / ".git"), text=True)
    assert proc.returncode != 0 and len(proc.stderr.splitlines()) > 1
    assert gitbin.failure(proc) == f"'{tmp_path / 'nowhere'}' does not appear to be a git repository"
    repo.commit("second")
    silent = gitbin.run(["merge-base", "--is-ancestor", "HEAD", "HEAD~1"], git_dir=str(repo.path / ".git"))
    assert silent.returncode == 1 and gitbin.failure(silent) == "git exited with 1"


def test_a_started_git_answers_on_its_pipes(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    head = repo.git("rev-parse", "HEAD").strip()
    monkeypatch.setenv("GIT_DIR", "/nonexistent")
    proc = gitbin.start(["cat-file", "--batch"], git_dir=str(repo.path / ".git"))
    out, _ = proc.communicate(b"HEAD\n")
    assert out.startswith(f"{head} commit ".encode()) and proc.returncode == 0


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give a repository away")
def test_safe_directory_is_gits_own_check(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    """A repository owned by another user: git refuses to discover it (``-C``), as it
    does for the user's own commands, and reads it when the git dir is named (git
    checks ownership only when it discovers a repository)."""
    monkeypatch.delenv("SUDO_UID", raising=False)
    for root, dirs, files in os.walk(repo.path):
        for name in (*dirs, *files):
            os.lchown(os.path.join(root, name), 65534, 65534)
    os.lchown(repo.path, 65534, 65534)
    status, _ = gitbin.output(["-C", str(repo.path), "rev-parse", "HEAD"])
    assert status == 128
    status, out = gitbin.output(["rev-parse", "HEAD"], git_dir=str(repo.path / ".git"))
    assert status == 0 and out.strip()


def test_importing_the_boundary_does_not_import_subprocess() -> None:
    assert "subprocess" not in loaded_after("import gitprov.store.gitbin, gitprov.store.repo")
