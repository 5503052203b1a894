"""The ``prov`` command line, through click's CliRunner and through real subprocesses
(which take the click-free fast path for ``show`` and ``capture``)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitprov import __version__, schema
from gitprov.cli.app import cli
from gitprov.cli.entry import _parse_fast
from tests.conftest import GitRepo, run_prov


@pytest.fixture
def in_repo(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    monkeypatch.chdir(repo.path)
    return repo


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def ok(*args: str):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def test_version() -> None:
    assert ok("--version").strip() == f"git-prov {__version__}"
    proc = run_prov(".", "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"git-prov {__version__}"


def test_help_lists_every_command() -> None:
    out = ok("--help")
    for command in ("init", "capture", "show", "log", "verify", "schema", "demo"):
        assert re.search(rf"^\s+{command}\s", out, re.M), command


def test_init(in_repo: GitRepo) -> None:
    out = ok("init")
    assert out.startswith(f"initialised git-prov in {in_repo.path}")
    assert "notes.rewriteMode=cat_sort_uniq" in out
    assert in_repo.git("config", "notes.rewriteRef").strip() == "refs/notes/prov"
    assert in_repo.git("rev-parse", "--verify", "refs/prov/ledger").strip()
    again = json.loads(ok("init", "--json"))
    assert again["lexicon_files_written"] == [] and again["config_set"] == []
    assert again["lexicon"] == schema.package_lexicon().hash
    assert again["ledger"] == in_repo.git("rev-parse", "refs/prov/ledger").strip()
    assert len(in_repo.git("rev-list", "refs/prov/ledger").split()) == 1, "init is idempotent"


def test_capture_show_and_json(in_repo: GitRepo) -> None:
    head = in_repo.git("rev-parse", "HEAD").strip()
    assert ok("capture").strip() == f"captured provenance of {head[:12]}"
    assert ok("capture", "HEAD").strip() == f"{head[:12]} already has a capture (use --force to add another)"
    data = json.loads(ok("show", "--json"))
    assert data["commit"] == head
    assert data["summary"] == "c0"
    assert len(data["captures"]) == 1 and data["captures"][0]["commit"] == head
    assert data["runs"] == [] and data["rewrites"] == []
    assert data["schema"] == schema.package_lexicon().hash
    text = ok("show", head[:8])
    assert text.startswith(f"commit {head}\n    c0\n")
    assert f"schema   {schema.package_lexicon().hash}" in text
    assert "capture  " in text
    forced = json.loads(ok("capture", "--force", "--json"))
    assert forced["created"] is True and forced["commit"] == head
    assert len(json.loads(ok("show", "--json"))["captures"]) == 2


def test_capture_an_older_revision(in_repo: GitRepo) -> None:
    first = in_repo.git("rev-parse", "HEAD").strip()
    in_repo.commit("c1")
    result = json.loads(ok("capture", "HEAD~1", "--json"))
    assert result["commit"] == first and result["created"] is True
    assert json.loads(ok("show", "HEAD", "--json"))["captures"] == []
    assert json.loads(ok("show", "HEAD~1", "--json"))["captures"][0]["commit"] == first


def test_commit_without_provenance(in_repo: GitRepo) -> None:
    head = in_repo.git("rev-parse", "HEAD").strip()
    data = json.loads(ok("show", "--json"))
    assert data == {"captures": [], "commit": head, "problems": [], "rewrites": [], "runs": [], "schema": None, "summary": "c0"}
    text = ok("show")
    assert "no provenance recorded for this commit" in text
    assert f"prov capture {head[:12]}" in text
    proc = run_prov(in_repo.path, "show")
    assert proc.returncode == 0 and proc.stdout == text and proc.stderr == ""


def test_log(in_repo: GitRepo) -> None:
    c1 = in_repo.commit("c1")
    c2 = in_repo.commit("c2 has a summary")
    ok("capture", "HEAD~1")
    entries = json.loads(ok("log", "--json"))
    assert [e["commit"] for e in entries] == [c2, c1, in_repo.git("rev-parse", "HEAD~2").strip()]
    assert [len(e["captures"]) for e in entries] == [0, 1, 0]
    lines = ok("log").splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(c2[:12]) and lines[0].endswith("c2 has a summary")
    assert "captured" in lines[1] and "captured" not in lines[0]
    assert [e["commit"] for e in json.loads(ok("log", "HEAD~2..HEAD", "--json"))] == [c2, c1]
    assert [e["commit"] for e in json.loads(ok("log", "HEAD~1", "--json"))][0] == c1
    assert len(json.loads(ok("log", "-n", "1", "--json"))) == 1
    assert ok("log", "HEAD..HEAD").strip() == "no commits in range"


def test_verify(in_repo: GitRepo) -> None:
    fresh = json.loads(ok("verify", "--json"))
    assert fresh["problems"] == [] and fresh["notes"] == 0
    assert any("does not exist yet" in w for w in fresh["warnings"])
    ok("init")
    ok("capture")
    report = json.loads(ok("verify", "--json"))
    assert report["notes"] == 1 and report["records"] == 1 and report["runs"] == 0
    assert report["problems"] == [] and report["warnings"] == []
    assert report["lexicons"] == [schema.package_lexicon().hash]
    text = ok("verify")
    assert text.startswith("checked 1 notes, 1 records, 0 runs against 1 lexicon(s)")
    assert text.rstrip().endswith("ok")


def test_schema_commands(in_repo: GitRepo) -> None:
    out = ok("schema", "show")
    assert out.startswith(f"lexicon         {schema.package_lexicon().hash}")
    assert "commit.schema.json" in out
    assert json.loads(ok("schema", "verify", "--json"))["problems"] == []


def test_demo() -> None:
    out = ok("demo")
    assert "$ prov show HEAD" in out
    assert "input      data/train.csv" in out
    assert "lockfile   requirements.txt" in out
    assert "$ prov verify\n  ok" in out


def test_demo_keep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    out = ok("demo", "--keep")
    kept = re.search(r"demo repository kept at (\S+)", out).group(1)
    assert Path(kept).parent == tmp_path
    proc = run_prov(kept, "show", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["captures"]


# -- real subprocesses; the fast path and the click path agree -------------------------


def test_fast_path_parsing() -> None:
    assert _parse_fast(["show"]) == ("show", "HEAD", set())
    assert _parse_fast(["show", "--json", "v1"]) == ("show", "v1", {"--json"})
    assert _parse_fast(["capture", "--force", "HEAD~1", "--json"]) == ("capture", "HEAD~1", {"--force", "--json"})
    for argv in (["show", "--help"], ["show", "a", "b"], ["log"], [], ["show", "--bogus"], ["show", "--"]):
        assert _parse_fast(argv) is None, argv


def test_fast_path_prints_what_click_prints(in_repo: GitRepo) -> None:
    for args in (["show"], ["show", "--json"], ["show", "HEAD"]):
        proc = run_prov(in_repo.path, *args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == ok(*args), args
    created = run_prov(in_repo.path, "capture")
    assert created.returncode == 0
    assert re.fullmatch(r"captured provenance of [0-9a-f]{12}\n", created.stdout)
    for args in (["show"], ["show", "--json"], ["capture"], ["capture", "--json"], ["capture", "HEAD", "--json"]):
        proc = run_prov(in_repo.path, *args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == ok(*args), args


def test_fast_path_does_not_need_click(in_repo: GitRepo, tmp_path: Path) -> None:
    """With click made unimportable, ``show``/``capture`` still work; ``log`` needs click."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "click.py").write_text("raise ImportError('click must not be imported on the fast path')\n")
    env = {"PYTHONPATH": str(blocker) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    assert run_prov(in_repo.path, "capture", env=env).returncode == 0
    shown = run_prov(in_repo.path, "show", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["captures"]
    assert run_prov(in_repo.path, "log", env=env).returncode != 0


def test_click_commands_through_a_subprocess(repo: GitRepo) -> None:
    init = run_prov(repo.path, "init")
    assert init.returncode == 0 and init.stdout.startswith("initialised git-prov")
    assert run_prov(repo.path, "capture").returncode == 0
    log = run_prov(repo.path, "log", "--json")
    assert log.returncode == 0 and len(json.loads(log.stdout)[0]["captures"]) == 1
    verify = run_prov(repo.path, "verify")
    assert verify.returncode == 0 and verify.stdout.rstrip().endswith("ok")
    sub = repo.path / "sub" / "dir"
    sub.mkdir(parents=True)
    from_sub = run_prov(sub, "show", "--json")
    assert from_sub.returncode == 0 and json.loads(from_sub.stdout)["captures"]


def test_git_prov_works_as_a_git_subcommand(repo: GitRepo) -> None:
    bindir = Path(sys.executable).parent
    if not (bindir / "git-prov").exists():
        pytest.skip("git-prov console script not installed next to the interpreter")
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    repo.git("prov", "capture", env=env)
    assert json.loads(repo.git("prov", "show", "--json", env=env))["captures"]


# -- the repository every command gets (cli/options.py: with_repository) -------------------


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory that is no repository; GIT_CEILING_DIRECTORIES keeps git from
    finding one above it."""
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    return plain


@pytest.mark.parametrize(("args", "message"), [
    (("capture", "--missing", "--force"), "--missing takes a RANGE of its own"),
    (("runs", "--where", "params.lr >"), "cannot parse filter"),
    (("relink", "--commit-map", "no-such-file"), "cannot read commit map no-such-file"),
    (("sync", "revision", "--to", "wandb", "--tracking-uri", "x"), "--tracking-uri does not apply to --to wandb"),
], ids=["capture", "runs", "relink", "sync-revision"])
def test_mistakes_that_need_no_repository_come_before_opening_it(outside: Path, args, message) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "not a git repository" not in result.stderr


@pytest.mark.parametrize("args", [("log",), ("runs",), ("runs", "show", "abcd"), ("lineage", "x"), ("keep",),
                                  ("sync", "status"), ("run", "--", "true"), ("capture", "--missing")], ids=" ".join)
def test_commands_outside_a_repository_say_so(outside: Path, args) -> None:
    result = invoke(*args)
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("prov: error: not a git repository") and result.stdout == ""


def test_a_group_running_a_subcommand_does_not_open_the_repository(outside: Path) -> None:
    assert "Show one run" in ok("runs", "show", "--help")
    # the group's own --where is neither parsed nor used then (as before)
    assert invoke("runs", "--where", "params.lr >", "show", "abcd").exit_code == 3


def test_schema_show_works_without_a_repository(outside: Path) -> None:
    assert json.loads(ok("schema", "show", "--json"))["vendored"] is None


def test_commands_open_the_current_repository_in_one_place() -> None:
    """``Repository(os.getcwd())`` is spelled in with_repository, and in the click-free
    fast path (entry.py), which cannot use a click decorator."""
    import ast

    import gitprov.cli

    places = set()
    for path in Path(gitprov.cli.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Repository"
                    and node.args and "getcwd" in ast.unparse(node.args[0])):
                places.add(path.name)
    assert places == {"options.py", "entry.py"}
