"""Every user error: one ``prov: error:`` line on stderr, its documented exit code, no
traceback, and nothing written. Both the click-free fast path (``show``, ``capture``)
and the click application (``log``, ``verify``, ``init``) are exercised in real
subprocesses."""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gitprov
from gitprov import api, errors
from gitprov.store.objects import encode_commit, format_named
from tests.conftest import GitRepo, run_git, run_prov, unpack_all

FAST = [("show",), ("capture",)]


@pytest.fixture
def repo(make_repo) -> GitRepo:
    """One SHA-1 repository: error paths do not depend on the object format (the
    tests that do, empty repository and ambiguous short ids, run in both)."""
    return make_repo("sha1")
CLICK = [("log",), ("verify",)]


def snapshot(git_dir: Path) -> tuple:
    """Refs, object count and every file below objects/ and refs/ (what a write changes)."""
    refs = run_git(git_dir, "--git-dir", str(git_dir), "for-each-ref")
    count = run_git(git_dir, "--git-dir", str(git_dir), "count-objects", "-v")
    files = sorted(
        str(p.relative_to(git_dir)) for sub in ("objects", "refs") for p in (git_dir / sub).rglob("*")
    )
    packed = (git_dir / "packed-refs").read_bytes() if (git_dir / "packed-refs").exists() else b""
    return refs, count, files, packed


def assert_one_error_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("prov: error: "), lines[0]
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def check(cwd: Path, git_dir: Path | None, args: tuple, code: int, *needles: str) -> str:
    before = snapshot(git_dir) if git_dir else None
    proc = run_prov(cwd, *args)
    line = assert_one_error_line(proc, code, *needles)
    if git_dir:
        assert snapshot(git_dir) == before, "an error must leave the repository untouched"
    return line


def test_exit_codes_match_the_documentation() -> None:
    from gitprov.cli import app

    documented = {
        errors.ProvError: 1, errors.UsageError: 2, errors.RepositoryError: 3, errors.NotARepositoryError: 3,
        errors.BareRepositoryError: 3, errors.EmptyRepositoryError: 3, errors.RevisionError: 4,
        errors.UnknownRevisionError: 4, errors.AmbiguousRevisionError: 4, errors.DataError: 5,
        errors.FormatVersionError: 6, errors.WriteError: 7, errors.ReadOnlyRepositoryError: 7,
        errors.ConcurrentUpdateError: 7, errors.VerificationError: 8, errors.ConfigError: 9,
        errors.QueryError: 2, errors.UnknownFieldError: 2,
    }
    for cls, code in documented.items():
        assert cls.exit_code == code, cls
    # every error class (including ones added later) is in the drawn tree, and its
    # exit code is documented in the CLI's docstring
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.ProvError), name
        assert name in errors.__doc__, f"{name} missing from the tree in errors.py"
        assert f"{cls.exit_code} " in app.__doc__, f"exit code {cls.exit_code} of {name} not documented"


# -- the one exception tree: errors.py's drawing, the classes and docs/errors.md agree ------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
_NODE = re.compile(r"^(?P<lead>(?:[│ ]   )*(?:[├└]── )?)(?P<name>[A-Z]\w*)(?: \((?P<code>\d+)\))?(?:\s|$)")


def drawn_tree(drawing: str) -> dict[str, tuple[str | None, int | None]]:
    """``name -> (parent, exit code written beside it or None)`` of a tree drawn with
    ``├──``/``└──``, four columns a level; text to the right of a node is a comment."""
    tree: dict[str, tuple[str | None, int | None]] = {}
    path: list[str] = []
    for line in textwrap.dedent(drawing).splitlines():
        match = _NODE.match(line)
        if not line.strip():
            continue
        assert match, f"not a node of the tree: {line!r}"
        depth = len(match["lead"]) // 4
        assert depth <= len(path), f"drawn below no parent: {line!r}"
        del path[depth:]
        assert match["name"] not in tree, f"{match['name']} drawn twice"
        tree[match["name"]] = (path[-1] if path else None, int(match["code"]) if match["code"] else None)
        path.append(match["name"])
    return tree


def class_tree() -> dict[str, tuple[str | None, int | None]]:
    """The same shape read from the classes of ``gitprov.errors``: each class's parent in
    the tree, and its exit code where it sets one itself (else it shares its parent's)."""
    tree: dict[str, tuple[str | None, int | None]] = {}

    def walk(cls: type, parent: str | None) -> None:
        tree[cls.__name__] = (parent, cls.__dict__.get("exit_code"))
        for sub in cls.__subclasses__():
            if sub.__module__ == "gitprov.errors":  # classes elsewhere: test_no_exception_class_outside_errors_py
                walk(sub, cls.__name__)

    walk(errors.ProvError, None)
    return tree


def _docstring_drawing() -> str:
    return errors.__doc__.split("::\n", 1)[1]


def _docs_drawing() -> str:
    text = DOCS.read_text(encoding="utf-8")
    return text.split("The exception tree", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]


def test_drawn_trees_are_the_class_tree() -> None:
    classes = class_tree()
    assert drawn_tree(_docstring_drawing()) == classes, "update the tree in errors.py's docstring"
    assert drawn_tree(_docs_drawing()) == classes, "update the tree in docs/errors.md"
    assert sorted(errors.__all__) == sorted(classes)
    for name, (parent, own_code) in classes.items():  # undrawn codes are the parent's
        if own_code is None:
            assert getattr(errors, name).exit_code == getattr(errors, parent).exit_code, name


def test_every_error_is_in_the_exit_code_table_and_its_sections() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = {int(m[1]): m[2] for m in re.finditer(r"^\| (\d+) \| ([^|]*) \|", text, re.M)}
    for name in errors.__all__:
        code = getattr(errors, name).exit_code
        assert f"`{name}`" in rows.get(code, ""), f"docs/errors.md: {name} missing from the row of exit code {code}"
    headings = re.findall(r"^### (\d+) — (.*)$", text, re.M)
    assert headings
    for code, title in headings:
        for name in re.findall(r"`(\w+)`", title):
            assert getattr(errors, name).exit_code == int(code), f"docs/errors.md: '### {code} — {title}'"


def test_gitprov_exports_every_error() -> None:
    for name in errors.__all__:
        assert name in gitprov.__all__, name
        assert getattr(gitprov, name) is getattr(errors, name), name


# Exception classes still defined outside errors.py, to be moved there (issue 13). An entry
# that no longer matches fails the test, so the list only shrinks.
NOT_MOVED_YET: set[tuple[str, str]] = set()


def _exception_classes(trees: dict[Path, ast.Module]) -> dict[tuple[Path, str], ast.ClassDef]:
    """Classes whose bases are exceptions: built-in ones, gitprov's, another class found
    here, or a foreign name ending in Error/Exception/Warning (click's, msgspec's …)."""
    known = {n for n in dir(builtins) if isinstance(getattr(builtins, n), type) and issubclass(getattr(builtins, n), BaseException)}
    known |= set(errors.__all__)
    classes = {(p, node.name): node for p, tree in trees.items() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    found: dict[tuple[Path, str], ast.ClassDef] = {}
    while True:
        new = {
            key: node for key, node in classes.items() if key not in found and any(
                name in known or name.endswith(("Error", "Exception", "Warning"))
                for name in (b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in node.bases)
            )
        }
        if not new:
            return found
        found |= new
        known |= {name for _, name in new}


def _caught_in(tree: ast.Module, name: str) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            types = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            if any(isinstance(t, ast.Name) and t.id == name for t in types):
                return True
    return False


def test_no_exception_class_outside_errors_py() -> None:
    """Every exception git-prov raises is one of errors.py's. The one kind allowed elsewhere
    is a private class for control flow inside one module: it must be caught there."""
    src = Path(gitprov.__file__).parent
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(src.rglob("*.py")) if p != src / "errors.py"}
    outside = set()
    for (path, name) in _exception_classes(trees):
        where = path.relative_to(src).as_posix()
        if name.startswith("_"):
            assert _caught_in(trees[path], name), f"{where}: private exception {name} escapes its module; define it in errors.py"
        else:
            outside.add((where, name))
    assert outside - NOT_MOVED_YET == set(), "define these in gitprov/errors.py (and draw and document them there)"
    assert NOT_MOVED_YET - outside == set(), "moved: remove them from NOT_MOVED_YET"


def test_the_exception_scan_finds_what_it_must() -> None:
    code = (
        "class A(ValueError): pass\nclass B(A): pass\nclass C(click.ClickException): pass\n"
        "class D(errors.DataError): pass\nclass E(msgspec.Struct): pass\nclass F: pass\n"
    )
    found = {name for _, name in _exception_classes({Path("m.py"): ast.parse(code)})}
    assert found == {"A", "B", "C", "D"}
    assert _caught_in(ast.parse("try:\n    pass\nexcept (OSError, _Gone):\n    pass\n"), "_Gone")
    assert not _caught_in(ast.parse("try:\n    pass\nexcept OSError:\n    raise _Gone\n"), "_Gone")


def test_a_tree_drawing_that_disagrees_fails() -> None:
    good = drawn_tree(_docstring_drawing())
    assert good["UnknownFieldError"] == ("QueryError", None) and good["ProvError"] == (None, 1)
    moved = _docstring_drawing().replace("│   └── MissingExtraError", "└── MissingExtraError", 1)
    assert drawn_tree(moved) != class_tree()
    assert drawn_tree(_docstring_drawing().replace("ConfigError (9)", "ConfigError (12)")) != class_tree()
    without = "\n".join(line for line in _docstring_drawing().splitlines() if "ConfigError" not in line)
    assert drawn_tree(without) != class_tree()


# -- repositories prov cannot work in -----------------------------------------------------


def test_not_a_git_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for args in FAST + CLICK + [("init",)]:
        check(plain, None, args, 3, "not a git repository", "git init")
    assert list(plain.iterdir()) == []


def test_bare_repository(make_repo) -> None:
    bare = make_repo(bare=True)
    for args in FAST + CLICK + [("init",)]:
        check(bare.path, bare.path, args, 3, "bare repository")


def test_empty_repository(make_repo, object_format: str) -> None:
    empty = make_repo(object_format, commits=0)
    for args in FAST + [("log",), ("show", "--json"), ("capture", "HEAD")]:
        check(empty.path, empty.path / ".git", args, 3, "no commits yet", "make a first commit")


def test_verify_in_an_empty_repository_is_not_an_error(make_repo) -> None:
    empty = make_repo(commits=0)
    before = snapshot(empty.path / ".git")
    proc = run_prov(empty.path, "verify", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["problems"] == []
    assert snapshot(empty.path / ".git") == before


# -- revisions -------------------------------------------------------------------------------


def test_unknown_revision(repo: GitRepo) -> None:
    for args in [("show", "nosuch"), ("capture", "nosuch"), ("log", "nosuch"), ("log", "HEAD~5..HEAD"), ("show", "HEAD~7"), ("capture", "deadbeef")]:
        check(repo.path, repo.path / ".git", args, 4, "unknown revision")


def _colliding_prefix(repo: GitRepo, object_format: str) -> str:
    fmt = format_named(object_format)
    tree = repo.git("rev-parse", "HEAD^{tree}").strip()
    seen: dict[str, bytes] = {}
    i = 0
    while True:
        body = encode_commit(tree, [], "A <a@x> 1700000000 +0000", f"collide {i}")
        first = seen.setdefault(fmt.hash_object("commit", body)[:4], body)
        if first is not body:
            break
        i += 1
    for n, data in enumerate((first, body)):
        oid = subprocess.run(["git", "hash-object", "-t", "commit", "-w", "--stdin"], cwd=repo.path, input=data, capture_output=True, check=True).stdout.decode().strip()
        repo.git("branch", f"collide{n}", oid)
    return oid[:4]


def test_ambiguous_short_id(make_repo, object_format: str) -> None:
    repo = make_repo(object_format)
    prefix = _colliding_prefix(repo, object_format)
    for args in [("show",), ("capture",), ("log",)]:
        check(repo.path, repo.path / ".git", (*args, prefix), 4, "ambiguous", prefix)


# -- data under refs/notes/prov that prov cannot read ----------------------------------------------


def _note(repo: GitRepo, text: str) -> None:
    repo.git("notes", "--ref=prov", "add", "-f", "-m", text, "HEAD")


CORRUPT = {
    "garbage": ("garbage", "not valid JSON"),
    "foreign": ('{"kind": "commit", "commit": "x"}', "not written by git-prov"),
    "future": ('{"format_version": 99, "kind": "commit"}', "upgrade"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_unreadable_notes(repo: GitRepo, case: str) -> None:
    """A note line prov cannot read does not stop the others: show and log leave it out
    with one warning naming it, a capture still lands, verify reports it."""
    text, needle = CORRUPT[case]
    _note(repo, text)
    for args in [("show",), ("log",), ("show", "--json")]:
        before = snapshot(repo.path / ".git")
        proc = run_prov(repo.path, *args)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("prov: warning: "), proc.stderr
        for word in (needle, "refs/notes/prov", "git notes --ref=prov show"):
            assert word in lines[0], (word, lines[0])
        assert snapshot(repo.path / ".git") == before
    assert run_prov(repo.path, "capture").returncode == 0
    # prov verify reports the line as a problem (exit 8) instead of stopping at it
    before = snapshot(repo.path / ".git")
    proc = run_prov(repo.path, "verify")
    assert_one_error_line(proc, 8, "1 problem(s) found")
    assert needle in proc.stdout
    assert snapshot(repo.path / ".git") == before


def test_notes_ref_pointing_at_a_blob(repo: GitRepo) -> None:
    blob = run_git(repo.path, "hash-object", "-w", "--stdin", input="not a commit").strip()
    repo.git("update-ref", "refs/notes/prov", blob)
    for args in (("show",), ("capture",), ("log",)):
        check(repo.path, repo.path / ".git", args, 5, "refs/notes/prov")
    assert_one_error_line(run_prov(repo.path, "verify"), 8)


def test_corrupt_loose_object(repo: GitRepo) -> None:
    api.capture("HEAD", repo.path)
    unpack_all(repo.path)  # the capture's pack, made loose
    note_blob = repo.git("rev-parse", "refs/notes/prov:" + repo.git("rev-parse", "HEAD").strip()).strip()
    path = repo.path / ".git" / "objects" / note_blob[:2] / note_blob[2:]
    os.chmod(path, 0o644)
    path.write_bytes(b"this is not zlib")
    check(repo.path, repo.path / ".git", ("show",), 5, "corrupt")


# -- read-only repositories --------------------------------------------------------------------


@pytest.fixture
def read_only_repo(tmp_path: Path):
    """A repository whose ``.git`` the prov subprocess cannot write, and a runner for it.

    Root ignores permission bits, so as root ``.git`` is bind-mounted read-only in a
    private mount namespace of the prov process (skipped where that is not allowed);
    otherwise ``.git`` with its objects and refs is made read-only with chmod.
    """
    path = tmp_path / "repo"
    run_git(tmp_path, "init", "-q", str(path))
    GitRepo(path).commit("c0")
    git_dir = path / ".git"
    exe = str(Path(sys.executable).with_name("prov"))
    if os.geteuid() == 0:
        wrap = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(git_dir), exe]

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([*wrap, *args], cwd=path, capture_output=True, text=True)

        probe = run("--version")
        if shutil.which("unshare") is None or probe.returncode != 0:
            pytest.skip(f"running as root (permissions are ignored) and cannot mount read-only: {probe.stderr.strip()[:200]}")
        yield GitRepo(path), run
    else:
        subprocess.run(["chmod", "-R", "a-w", str(git_dir)], check=True)
        yield GitRepo(path), lambda *args: run_prov(path, *args)
        subprocess.run(["chmod", "-R", "u+w", str(git_dir)], check=True)


def test_read_only_repository(read_only_repo) -> None:
    repo, run = read_only_repo
    git_dir = repo.path / ".git"
    before = snapshot(git_dir)
    for args in (("capture",), ("capture", "--json"), ("init",)):
        assert_one_error_line(run(*args), 7, "cannot write")
        assert snapshot(git_dir) == before
    # reading needs no write access
    for args in (("show", "--json"), ("log",), ("verify",)):
        proc = run(*args)
        assert proc.returncode == 0, (args, proc.stderr)
    assert snapshot(git_dir) == before
    assert not list(git_dir.rglob("tmp_obj_*"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [('[inputs]\npath = ["x"]\n', "unknown field"), ("[inputs\n", "invalid"), ('[inputs]\npaths = ["../x"]\n', "leaves the work tree")],
    ids=["unknown-key", "not-toml", "escaping-glob"],
)
def test_invalid_settings(repo: GitRepo, text: str, needle: str) -> None:
    (repo.path / ".provenance.toml").write_text(text)
    check(repo.path, repo.path / ".git", ("capture",), 9, ".provenance.toml", needle)
