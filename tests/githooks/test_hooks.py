"""The git hooks, driven by the real git binary: every way a commit is made or
rewritten leaves provenance, pushes carry it, and a broken prov never blocks git."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gitprov import codec
from gitprov.api import Repository
from gitprov.githooks import HOOKS
from gitprov.githooks.install import install, status, uninstall
from gitprov.githooks.shims import render
from gitprov.model import CommitCapture, RewriteLink
from tests.conftest import ROOT, GitRepo, run_git, run_prov

pytestmark = pytest.mark.gitbin



def records(repo: GitRepo, rev: str = "HEAD") -> list:
    r = Repository(repo.path)
    return r.note_records(r.git.resolve(rev))


def own_captures(repo: GitRepo, rev: str = "HEAD") -> list[CommitCapture]:
    commit = repo.git("rev-parse", rev).strip()
    return [x for x in records(repo, rev) if isinstance(x, CommitCapture) and x.commit == commit]


def links(repo: GitRepo, rev: str = "HEAD") -> list[RewriteLink]:
    return [x for x in records(repo, rev) if isinstance(x, RewriteLink)]


def git_proc(cwd: Path, *args: str, env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, input=input, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def hooked_repo(make_repo) -> GitRepo:
    """A repository after ``prov init`` (hooks installed), with one commit before it."""
    from gitprov.api import init

    repo = make_repo()
    init(repo.path)
    return repo


def notes_commits(repo: GitRepo) -> int:
    return int(repo.git("rev-list", "--count", "refs/notes/prov").strip())


# -- commit, amend, rebase, cherry-pick, merge ---------------------------------------
def test_commit_is_captured_by_the_hook_before_git_returns(hooked_repo: GitRepo) -> None:
    head = hooked_repo.commit("one")
    [cap] = own_captures(hooked_repo)
    assert cap.commit == head and cap.trigger == "hook"
    shown = run_prov(hooked_repo.path, "show", "--json")
    assert json.loads(shown.stdout)["captures"][0]["commit"] == head


def test_amend_copies_the_old_provenance_and_links_old_to_new(hooked_repo: GitRepo) -> None:
    old = hooked_repo.commit("one")
    hooked_repo.git("commit", "-q", "--amend", "-m", "one, amended")
    new = hooked_repo.git("rev-parse", "HEAD").strip()
    recs = records(hooked_repo)
    assert {c.commit for c in recs if isinstance(c, CommitCapture)} == {old, new}
    [link] = links(hooked_repo)
    assert (link.old, link.new, link.how) == (old, new, "amend")
    assert link in links(hooked_repo, old)  # the old commit says what replaced it
    assert "replaces" in run_prov(hooked_repo.path, "show").stdout


def test_rebase_links_every_rewritten_commit(hooked_repo: GitRepo) -> None:
    hooked_repo.git("checkout", "-q", "-b", "feature")
    olds = [hooked_repo.commit("f1"), hooked_repo.commit("f2")]
    hooked_repo.git("checkout", "-q", "main")
    hooked_repo.commit("m1")
    hooked_repo.git("checkout", "-q", "feature")
    hooked_repo.git("rebase", "-q", "main")
    news = hooked_repo.git("rev-list", "--reverse", "main..feature").split()
    for old, new in zip(olds, news, strict=True):
        assert own_captures(hooked_repo, new)
        assert [(x.old, x.how) for x in links(hooked_repo, new)] == [(old, "rebase")]
        assert old in {c.commit for c in records(hooked_repo, new) if isinstance(c, CommitCapture)}


def test_interactive_rebase_squash_and_reword(hooked_repo: GitRepo) -> None:
    base = hooked_repo.git("rev-parse", "HEAD").strip()
    a, b, c = (hooked_repo.commit(n) for n in ("a", "b", "c"))
    script = "sed -i -e '2s/^pick/squash/' -e '3s/^pick/reword/'"
    hooked_repo.git("rebase", "-q", "-i", base, env={"GIT_SEQUENCE_EDITOR": script, "GIT_EDITOR": "sed -i 1s/^/edited-/"})
    squashed, reworded = hooked_repo.git("rev-list", "--reverse", f"{base}..HEAD").split()
    assert hooked_repo.git("log", "-1", "--format=%s", reworded).strip() == "edited-c"
    olds = {x.old for x in links(hooked_repo, squashed) if x.new == squashed}
    assert {a, b} <= olds  # both squashed commits lead to the result
    assert c in {x.old for x in links(hooked_repo, reworded)}
    assert own_captures(hooked_repo, squashed) and own_captures(hooked_repo, reworded)


def test_cherry_pick_is_captured_and_linked_to_the_picked_commit(hooked_repo: GitRepo) -> None:
    hooked_repo.git("checkout", "-q", "-b", "side")
    picked = hooked_repo.commit("side1")
    picked_x = hooked_repo.commit("side2")
    hooked_repo.git("checkout", "-q", "main")
    hooked_repo.git("cherry-pick", picked)
    assert own_captures(hooked_repo)
    # without -x the link depends on git leaving CHERRY_PICK_HEAD during the hook,
    # which git does not guarantee
    assert [(x.old, x.how) for x in links(hooked_repo)] in ([], [(picked, "cherry-pick")])
    hooked_repo.git("cherry-pick", "-x", picked_x)
    assert [(x.old, x.how) for x in links(hooked_repo)] == [(picked_x, "cherry-pick")]
    assert own_captures(hooked_repo)
    assert links(hooked_repo, picked_x)  # the picked commit knows where it went


def test_merge_no_ff_captures_the_merge_commit_and_ff_adds_nothing(hooked_repo: GitRepo) -> None:
    hooked_repo.git("checkout", "-q", "-b", "topic")
    tip = hooked_repo.commit("t1")
    hooked_repo.git("checkout", "-q", "main")
    hooked_repo.git("merge", "-q", "topic")  # fast-forward: no new commit
    assert hooked_repo.git("rev-parse", "HEAD").strip() == tip
    assert len([x for x in records(hooked_repo) if isinstance(x, CommitCapture)]) == 1
    hooked_repo.git("checkout", "-q", "-b", "topic2")
    hooked_repo.commit("t2")
    hooked_repo.git("checkout", "-q", "main")
    hooked_repo.commit("m2")
    hooked_repo.git("merge", "-q", "--no-ff", "-m", "merge topic2", "topic2")
    assert len(hooked_repo.git("rev-list", "--parents", "-1", "HEAD").split()) == 3
    [cap] = own_captures(hooked_repo)
    assert cap.trigger == "hook"


# -- push ------------------------------------------------------------------------------
def test_push_carries_the_provenance_refs(hooked_repo: GitRepo, make_repo) -> None:
    bare = make_repo(bare=True)
    hooked_repo.commit("one")
    hooked_repo.git("remote", "add", "origin", str(bare.path))
    hooked_repo.git("push", "-q", "origin", "main")
    remote = dict(reversed(line.split("\t")) for line in run_git(bare.path, "ls-remote", ".").splitlines())
    for ref in ("refs/notes/prov", "refs/prov/ledger"):
        assert remote[ref] == hooked_repo.git("rev-parse", ref).strip()


def test_push_merges_provenance_someone_else_pushed(hooked_repo: GitRepo, make_repo) -> None:
    bare = make_repo(bare=True)
    hooked_repo.git("remote", "add", "origin", str(bare.path))
    hooked_repo.commit("shared")
    hooked_repo.git("push", "-q", "origin", "main")
    other = hooked_repo.path.parent / "other"
    run_git(hooked_repo.path.parent, "clone", "-q", str(bare.path), str(other))
    assert run_prov(other, "init").returncode == 0
    assert run_prov(other, "pull").returncode == 0
    run_git(other, "commit", "-q", "--allow-empty", "-m", "theirs")  # captured by their hook
    run_git(other, "push", "-q", "origin", "HEAD:refs/heads/theirs")
    hooked_repo.commit("ours")
    proc = git_proc(hooked_repo.path, "push", "origin", "main")
    assert proc.returncode == 0 and "prov:" not in proc.stderr, proc.stderr
    theirs = run_git(other, "rev-parse", "HEAD").strip()
    notes = run_git(bare.path, "notes", "--ref=prov", "list").split()
    assert theirs in notes and hooked_repo.git("rev-parse", "main").strip() in notes


def _diverge_remote_notes(hooked_repo: GitRepo, make_repo) -> Path:
    bare = make_repo(bare=True)
    hooked_repo.git("remote", "add", "origin", str(bare.path))
    hooked_repo.commit("shared")
    hooked_repo.git("push", "-q", "origin", "main")
    other = hooked_repo.path.parent / "other"
    run_git(hooked_repo.path.parent, "clone", "-q", str(bare.path), str(other))
    run_git(other, "fetch", "-q", "origin", "refs/notes/prov:refs/notes/prov")
    run_git(other, "notes", "--ref=prov", "add", "-f", "-m", "{}", "HEAD")
    run_git(other, "push", "-q", "--no-verify", "origin", "refs/notes/prov")
    hooked_repo.commit("local")
    return bare.path


def test_rejected_provenance_push_warns_and_never_blocks(hooked_repo: GitRepo, make_repo) -> None:
    bare = _diverge_remote_notes(hooked_repo, make_repo)
    proc = git_proc(hooked_repo.path, "push", "origin", "main")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("prov:")]
    assert len(warnings) == 1 and "not pushed" in warnings[0] and "rejected provenance" in warnings[0]
    assert run_git(bare, "rev-parse", "main").strip() == hooked_repo.git("rev-parse", "main").strip()
    assert status(hooked_repo.path).failures[-1]["hook"] == "pre-push"


def test_strict_mode_blocks_the_push(hooked_repo: GitRepo, make_repo) -> None:
    bare = _diverge_remote_notes(hooked_repo, make_repo)
    hooked_repo.git("config", "prov.strict", "true")
    proc = git_proc(hooked_repo.path, "push", "origin", "main")
    assert proc.returncode != 0
    assert "strict mode" in proc.stderr
    assert run_git(bare, "rev-parse", "main").strip() != hooked_repo.git("rev-parse", "main").strip()


# -- installing ------------------------------------------------------------------------
def test_core_hooks_path_relative_to_the_work_tree(make_repo) -> None:
    repo = make_repo()
    repo.git("config", "core.hooksPath", "githooks")
    install(repo.path)
    assert sorted(os.listdir(repo.path / "githooks")) == sorted(HOOKS)
    assert not (repo.path / ".git" / "hooks" / "post-commit").exists()
    (repo.path / "sub").mkdir()
    (repo.path / "sub" / "f").write_text("x")
    repo.git("add", "sub/f")
    subprocess.run(["git", "commit", "-q", "-m", "from a subdirectory"], cwd=repo.path / "sub", check=True)
    assert own_captures(repo)


FOREIGN = """#!/bin/sh
echo "$0 $*" >> "{log}"
{stdin}
exit {code}
"""


def _foreign(repo: GitRepo, hook: str, code: int = 0, mode: int = 0o750) -> tuple[Path, bytes]:
    path = repo.path / ".git" / "hooks" / hook
    log = repo.path.parent / f"{repo.path.name}-{hook}.log"
    body = FOREIGN.format(log=log, code=code, stdin=f'cat >> "{log}"' if hook in ("pre-push", "post-rewrite") else "")
    path.write_text(body)
    path.chmod(mode)
    return log, body.encode()


def test_foreign_hooks_are_chained_with_args_and_stdin_and_restored(make_repo) -> None:
    repo = make_repo()
    bare = make_repo(bare=True)
    repo.git("remote", "add", "origin", str(bare.path))
    saved = {hook: _foreign(repo, hook) for hook in ("post-commit", "post-rewrite", "pre-push")}
    actions = {a.hook: a.action for a in install(repo.path)}
    assert actions["post-commit"] == actions["pre-push"] == "chained"
    hooks = repo.path / ".git" / "hooks"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in hooks.iterdir()}
    assert {a.action for a in install(repo.path)} == {"unchanged"}  # twice: nothing changes
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in hooks.iterdir()} == before

    old = repo.commit("one")
    repo.git("commit", "-q", "--amend", "-m", "amended")
    new = repo.git("rev-parse", "HEAD").strip()
    repo.git("push", "-q", "origin", "main")
    assert own_captures(repo) and links(repo)
    assert "post-commit.prov-chained" in saved["post-commit"][0].read_text()
    assert f"{old} {new}" in saved["post-rewrite"][0].read_text()  # same stdin
    pushed = saved["pre-push"][0].read_text()
    assert f"pre-push.prov-chained origin {bare.path}" in pushed
    assert f"refs/heads/main {new} refs/heads/main" in pushed
    assert "refs/notes/prov" in run_git(bare.path, "ls-remote", ".")

    uninstall(repo.path)
    for hook, (_, body) in saved.items():
        path = hooks / hook
        assert path.read_bytes() == body
        assert stat.S_IMODE(path.stat().st_mode) == 0o750
        assert not (hooks / f"{hook}.prov-chained").exists()
    assert not (hooks / "post-merge").exists()


def test_a_failing_chained_pre_push_still_blocks_and_prov_stays_out(make_repo) -> None:
    repo = make_repo()
    bare = make_repo(bare=True)
    repo.git("remote", "add", "origin", str(bare.path))
    _foreign(repo, "pre-push", code=1)
    install(repo.path)
    repo.commit("one")
    proc = git_proc(repo.path, "push", "origin", "main")
    assert proc.returncode != 0
    assert run_git(bare.path, "ls-remote", ".") == ""


def test_install_refuses_when_both_a_foreign_hook_and_a_chained_one_exist(make_repo) -> None:
    from gitprov.errors import ConfigError

    repo = make_repo()
    _foreign(repo, "post-commit")
    install(repo.path)
    _foreign(repo, "post-commit")  # another tool replaced the shim
    with pytest.raises(ConfigError, match="chained"):
        install(repo.path)


def test_status_reports_hooks_interpreter_and_chained(make_repo) -> None:
    repo = make_repo()
    _foreign(repo, "post-merge")
    install(repo.path)
    proc = run_prov(repo.path, "hooks", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    by_hook = {h["hook"]: h for h in st["hooks"]}
    assert all(h["state"] == "prov" and h["interpreter_exists"] for h in by_hook.values())
    assert by_hook["post-commit"]["interpreter"] == os.path.abspath(sys.executable)
    assert by_hook["post-merge"]["chained"].endswith("post-merge.prov-chained")
    text = run_prov(repo.path, "hooks", "status").stdout
    assert "chains post-merge.prov-chained" in text and "failures   none" in text


# -- failing open ------------------------------------------------------------------------
def test_commit_succeeds_when_the_recorded_interpreter_is_gone(make_repo, tmp_path: Path) -> None:
    repo = make_repo()
    fake = tmp_path / "gone" / "python3"
    fake.parent.mkdir()
    fake.symlink_to(sys.executable)
    install(repo.path, python=str(fake))
    fake.unlink()
    (repo.path / "f").write_text("x")
    repo.git("add", "f")
    proc = git_proc(repo.path, "commit", "-m", "no interpreter")
    assert proc.returncode == 0
    assert f"prov: provenance not captured: interpreter {fake} is missing" in proc.stderr
    assert not records(repo)


def test_commit_succeeds_when_the_interpreter_lacks_git_prov(make_repo, tmp_path: Path) -> None:
    repo = make_repo()
    bare_python = tmp_path / "elsewhere" / "python3"
    bare_python.parent.mkdir()
    bare_python.symlink_to(os.path.realpath(sys.executable))  # outside the virtualenv
    install(repo.path, python=str(bare_python))
    proc = git_proc(repo.path, "commit", "--allow-empty", "-m", "x")
    assert proc.returncode == 0
    assert "prov: provenance not captured: cannot import git-prov" in proc.stderr


def test_corrupt_provenance_fails_open_and_is_logged(hooked_repo: GitRepo) -> None:
    notes_ref = hooked_repo.path / ".git" / "refs" / "notes" / "prov"
    notes_ref.parent.mkdir(parents=True, exist_ok=True)
    notes_ref.write_text(hooked_repo.git("rev-parse", "HEAD^{tree}"))  # a tree, not a commit
    proc = git_proc(hooked_repo.path, "commit", "--allow-empty", "-m", "still works")
    assert proc.returncode == 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("prov:")]
    assert len(lines) == 1 and lines[0].startswith("prov: provenance not captured: ")
    st = status(hooked_repo.path)
    assert st.failures_total == 1 and st.failures[0]["hook"] == "post-commit"
    # strict mode turns the failure into a failing hook (git still keeps the commit)
    hooked_repo.git("config", "prov.strict", "true")
    assert run_prov(hooked_repo.path, "hooks", "run", "post-commit").returncode != 0


def test_hooks_can_be_disabled_for_one_command(hooked_repo: GitRepo) -> None:
    hooked_repo.git("commit", "-q", "--allow-empty", "-m", "skip", env={"PROV_HOOKS_DISABLED": "1"})
    assert not own_captures(hooked_repo)


# -- backfill -------------------------------------------------------------------------------
def test_capture_missing_backfills_in_one_notes_commit(make_repo) -> None:
    repo = make_repo(commits=3)
    install(repo.path)
    repo.commit("captured by the hook")
    before = notes_commits(repo)
    proc = run_prov(repo.path, "capture", "--missing", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["captured"]) == 3 and out["already"] == 1
    assert notes_commits(repo) == before + 1
    assert {c.trigger for c in own_captures(repo, "HEAD~1")} == {"backfill"}
    again = json.loads(run_prov(repo.path, "capture", "--missing", "HEAD~2..HEAD", "--json").stdout)
    assert again["captured"] == [] and again["already"] == 2


# -- secrets (DESIGN.md §8) ---------------------------------------------------------------
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAQWERTYUIOPASDFGH",
    "GITHUB_TOKEN": "ghp_" + "Ab1" * 12,
    "GITLAB_PAT": "glpat-" + "Zx9_" * 6,
    "SLACK_BOT": "xoxb-1234567890-0987654321-" + "s" * 24,
    "OPENAI_API_KEY": "sk-proj-" + "Op3n" * 8,
    "HF_TOKEN": "hf_" + "HuGg" * 9,
    "FOO_TOKEN": "foo-token-value-4821",
    "FOO_SECRET": "foo-secret-value-7734",
    "FOO_KEY": "foo-key-value-1903",
    "MY_PASSWORD": "my-password-value-5520",
}


def test_no_secret_from_the_environment_or_remote_url_enters_git(hooked_repo: GitRepo) -> None:
    hooked_repo.git("remote", "add", "origin", "https://user:pass-9f8e7d@example.com/x.git")
    env = dict(SECRETS)
    # allow-listed CI variables carrying secrets are scrubbed, not stored
    env["GITHUB_REF"] = "refs/heads/" + SECRETS["GITHUB_TOKEN"]
    env["CI_COMMIT_REF_NAME"] = SECRETS["GITLAB_PAT"]
    env["GITHUB_REPOSITORY"] = "https://user:pass-9f8e7d@example.com/x.git"
    hooked_repo.git("commit", "-q", "--allow-empty", "-m", "with secrets around", env=env)
    hooked_repo.git("commit", "-q", "--amend", "--allow-empty", "-m", "amended with secrets", env=env)
    assert own_captures(hooked_repo)[0].ci  # CI values were captured (scrubbed)
    dump = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=hooked_repo.path, capture_output=True, check=True
    ).stdout
    for value in [*SECRETS.values(), "pass-9f8e7d"]:
        assert value.encode() not in dump, value


# -- the shipped files ------------------------------------------------------------------------
def test_shipped_hooks_match_the_generator() -> None:
    for hook in HOOKS:
        shipped = ROOT / "hooks" / hook
        assert shipped.read_text() == render(hook), f"run: python -m gitprov.githooks.shims hooks ({hook})"
        assert os.access(shipped, os.X_OK)


def test_shims_are_posix_sh() -> None:
    sh = "dash" if any(os.access(os.path.join(d, "dash"), os.X_OK) for d in os.environ["PATH"].split(os.pathsep)) else "sh"
    for hook in HOOKS:
        subprocess.run([sh, "-n", "-c", render(hook, "/usr/bin/python3")], check=True)


def test_pre_commit_manifest_lists_every_stage() -> None:
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    for stage in ("post-commit", "post-rewrite", "post-merge", "pre-push"):
        assert f"entry: prov hooks run {stage}" in text
        assert f"stages: [{stage}]" in text


def test_hook_path_imports_neither_click_nor_dulwich(hooked_repo: GitRepo) -> None:
    code = (
        "import sys\n"
        "from gitprov.cli.entry import main\n"
        "rc = main(['hooks', 'run', 'post-commit'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'dulwich', 'pydantic', 'jsonschema'))\n"
        "print(rc, heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=hooked_repo.path, capture_output=True, text=True)
    assert proc.stdout.strip() == "0 []", proc.stderr


def test_rewrite_without_stdin_falls_back_to_the_reflog_for_amend(hooked_repo: GitRepo) -> None:
    """The pre-commit framework gives post-rewrite no stdin; amend still gets its link."""
    old = hooked_repo.commit("one")
    hooked_repo.git("commit", "-q", "--amend", "-m", "amended", "--no-post-rewrite")
    assert not links(hooked_repo)
    proc = run_prov(hooked_repo.path, "hooks", "run", "post-rewrite", env={"PRE_COMMIT_REWRITE_COMMAND": "amend"})
    assert proc.returncode == 0, proc.stderr
    assert [(x.old, x.how) for x in links(hooked_repo)] == [(old, "amend")]


def test_note_lines_stay_sorted_and_unique(hooked_repo: GitRepo) -> None:
    hooked_repo.commit("one")
    hooked_repo.git("commit", "-q", "--amend", "-m", "again")
    text = hooked_repo.git("notes", "--ref=prov", "show", "HEAD")
    lines = text.splitlines()
    assert lines == sorted(set(lines))
    for line in lines:
        codec.decode_note_line(line.encode())


# -- the click commands ------------------------------------------------------------------------
def test_cli_install_uninstall_and_init_no_hooks(make_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from gitprov.cli.app import cli

    repo = make_repo()
    monkeypatch.chdir(repo.path)
    runner = CliRunner()
    result = runner.invoke(cli, ["init", "--no-hooks"])
    assert result.exit_code == 0, result.output
    assert not (repo.path / ".git" / "hooks" / "post-commit").exists()
    result = runner.invoke(cli, ["hooks", "install", "--json"])
    assert result.exit_code == 0, result.output
    assert {a["action"] for a in json.loads(result.output)} == {"installed"}
    assert "unchanged" in runner.invoke(cli, ["hooks", "install"]).output
    result = runner.invoke(cli, ["hooks", "uninstall"])
    assert result.exit_code == 0 and "removed" in result.output
    assert not (repo.path / ".git" / "hooks" / "post-commit").exists()
    assert runner.invoke(cli, ["capture", "HEAD~0", "--missing"]).exit_code == 2
