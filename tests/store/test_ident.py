"""The identity on prov's own commits (store/ident.py): the committer git would use.
The oracle is ``git var GIT_COMMITTER_IDENT``, which fails where ``git commit`` would."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import gitprov
from gitprov.store.config import GitConfig
from gitprov.store.ident import committer, strip_crud
from gitprov.store.repo import GitRepository
from tests.conftest import GitRepo, run_git

IDENT = re.compile(r"(.*) <(.*)> \d+ [+-]\d{4}")


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No identity from the environment: config (and git's guesses) decide."""
    for name in ("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def git_committer(repo: Path) -> tuple[str, str] | None:
    proc = subprocess.run(["git", "var", "GIT_COMMITTER_IDENT"], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    m = IDENT.fullmatch(proc.stdout.strip())
    assert m, proc.stdout
    return m.group(1), m.group(2)


#: (global config, local config, environment, whether git refuses: None where the machine decides)
CASES = {
    "user from the global file": ("[user]\n\tname = Global Person\n\temail = global@example.com\n", "", {}, False),
    "committer over user": ("[user]\n\tname = U\n\temail = u@example.com\n[committer]\n\tname = C\n\temail = c@e.com\n",
                            "", {}, False),
    "environment over config": ("[user]\n\tname = U\n\temail = u@example.com\n", "",
                                {"GIT_COMMITTER_NAME": "Env Person", "GIT_COMMITTER_EMAIL": "env@example.com"}, False),
    "environment name only": ("[user]\n\tname = U\n\temail = u@example.com\n", "", {"GIT_COMMITTER_NAME": "Env"}, False),
    "local over global": ("[user]\n\tname = U\n\temail = u@example.com\n", "[user]\n\tname = Local\n", {}, False),
    "empty committer.email": ("[user]\n\tname = U\n\temail = u@example.com\n[committer]\n\temail =\n", "", {}, False),
    "author.email only": ("[user]\n\tname = U\n[author]\n\temail = a@example.com\n", "", {}, False),
    "EMAIL variable": ("[user]\n\tname = U\n", "", {"EMAIL": "  mail@example.com "}, False),
    "EMAIL loses to config": ("[user]\n\tname = U\n\temail = u@example.com\n", "", {"EMAIL": "mail@example.com"}, False),
    "config only, no email": ("[user]\n\tname = U\n\tuseConfigOnly = true\n", "", {"EMAIL": "mail@example.com"}, True),
    "config only, no name": ("[user]\n\temail = u@example.com\n\tuseConfigOnly = yes\n", "", {}, True),
    "config only, all set": ("[user]\n\tname = U\n\temail = u@example.com\n\tuseConfigOnly = 1\n", "", {}, False),
    "useConfigOnly invalid": ("[user]\n\tname = U\n\temail = u@example.com\n\tuseConfigOnly = maybe\n", "", {}, True),
    "empty name": ("[user]\n\tname =\n\temail = u@example.com\n", "", {}, True),
    "empty environment name": ("[user]\n\tname = U\n\temail = u@example.com\n", "", {"GIT_COMMITTER_NAME": ""}, True),
    "empty environment email": ("[user]\n\tname = U\n\temail = u@example.com\n", "", {"GIT_COMMITTER_EMAIL": ""},
                                False),
    "bare user.name": ("[user]\n\tname\n\temail = u@example.com\n", "", {}, True),
    "crud": ("[user]\n\tname = \" .Jo<h>n, \"\n\temail = \"<u@example.com>.\"\n", "", {}, False),
    "only crud": ("[user]\n\tname = \"...\"\n\temail = u@example.com\n", "", {}, True),
    "author name only": ("[author]\n\tname = A\n[user]\n\temail = u@example.com\n", "", {}, True),
    "git -c": ("[user]\n\tname = U\n\temail = u@example.com\n", "",
               {"GIT_CONFIG_PARAMETERS": "'user.name'='Dash C' 'user.email'='c@example.com'"}, False),
    "guessed name": ("[user]\n\temail = u@example.com\n", "", {}, None),
    "guessed email": ("[user]\n\tname = U\n", "", {}, None),
}


@pytest.mark.parametrize(("global_text", "local_text", "env", "refused"), CASES.values(), ids=CASES.keys())
def test_the_committer_is_who_git_would_commit_as(make_repo: Callable[..., GitRepo], isolated_git: Path,
                                                  bare_env: pytest.MonkeyPatch, global_text: str, local_text: str,
                                                  env: dict[str, str], refused: bool | None) -> None:
    repo = make_repo(commits=0)
    (isolated_git / ".gitconfig").write_text(global_text)
    if local_text:
        with open(repo.path / ".git" / "config", "a") as f:
            f.write(local_text)
    for name, value in env.items():
        bare_env.setenv(name, value)
    expected = git_committer(repo.path)
    if refused is not None:
        assert (expected is None) is refused
    assert committer(GitRepository.open(str(repo.path)).config) == expected


def test_an_in_memory_repository_takes_the_environment() -> None:
    assert committer(GitConfig({})) == ("Test User", "test@example.com")


def test_strip_crud_as_git() -> None:
    assert strip_crud(" .Jo<h>n, ") == "John"
    assert strip_crud("<a@b.c>.") == "a@b.c"
    assert strip_crud("Ann\nLee") == "AnnLee"
    assert strip_crud("'\"") == ""


def test_prov_commits_carry_the_identity_from_an_included_file(make_repo: Callable[..., GitRepo],
                                                               isolated_git: Path, bare_env: pytest.MonkeyPatch) -> None:
    (isolated_git / "identity.gitconfig").write_text("[user]\n\tname = Included Person\n\temail = inc@example.com\n")
    (isolated_git / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[include]\n\tpath = ~/identity.gitconfig\n")
    repo = make_repo(commits=1)
    gitprov.init(repo.path, hooks=False)
    with gitprov.Repository(repo.path).start_run(name="who", environment=False) as run:
        run.log_metric("loss", 0.5)
    gitprov.Repository(repo.path).capture("HEAD", force=True)
    for ref in ("refs/prov/ledger", "refs/notes/prov"):
        line = run_git(repo.path, "log", "-1", "--format=%an <%ae>|%cn <%ce>", ref).strip()
        assert line == "Included Person <inc@example.com>|Included Person <inc@example.com>", ref
