"""The documentation site: generated CLI reference, nav, strict build, runnable examples."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from gitprov.cli.app import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"
REGENERATE = "run `python docs/gen_cli_ref.py` and commit docs/cli.md"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_ref", DOCS / "gen_cli_ref.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _commands(cmd: click.Command, path: tuple[str, ...], parent: click.Context | None = None):
    """Every visible command of the click app, walked independently of the generator."""
    ctx = click.Context(cmd, info_name=path[-1], parent=parent)
    yield path
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _commands(sub, (*path, name), ctx)


def _nav_pages() -> list[str]:
    """The ``.md`` files named in mkdocs.yml's nav (commented-out entries excluded)."""
    text = MKDOCS_YML.read_text(encoding="utf-8")
    nav = text.split("\nnav:", 1)[1]
    nav = re.split(r"\n(?=[A-Za-z_])", nav, maxsplit=1)[0]  # up to the next top-level key
    return re.findall(r"^\s*-\s*(?:[^:#\n]+:\s*)?([\w./-]+\.md)\s*$", nav, re.M)


# -- the CLI reference -----------------------------------------------------------------


def test_cli_reference_is_generated_from_the_current_cli() -> None:
    committed = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert _generator().render() == committed, f"docs/cli.md is out of date with the click app: {REGENERATE}"


def test_every_command_is_in_the_cli_reference() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [
        " ".join(path)
        for path in _commands(cli, ("prov",))
        if not re.search(rf"^#+ {re.escape(' '.join(path))} \{{#", text, re.M)
    ]
    assert missing == [], f"commands missing from docs/cli.md: {missing}; {REGENERATE}"


def test_cli_reference_has_the_exit_code_table() -> None:
    rows = _generator().exit_code_rows(sys.modules["gitprov.cli.app"].__doc__ or "")
    assert [code for code, _ in rows][:2] == ["0", "1"], "cannot parse 'Exit codes:' in cli/app.py's docstring"
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for code, _meaning in rows:
        assert re.search(rf"^\| {code} \| ", text, re.M), f"exit code {code} missing from docs/cli.md"


def test_every_error_class_and_exit_code_is_documented() -> None:
    from gitprov import errors

    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    classes = [getattr(errors, name) for name in errors.__all__]
    missing = [c.__name__ for c in classes if f"`{c.__name__}`" not in text]
    assert missing == [], f"docs/errors.md does not document {missing}"
    codes = sorted({c.exit_code for c in classes})
    undocumented = [code for code in codes if not re.search(rf"^\| {code} \| ", text, re.M)]
    assert undocumented == [], f"exit codes missing from the table in docs/errors.md: {undocumented}"


# -- the site --------------------------------------------------------------------------


def test_every_nav_page_exists() -> None:
    pages = _nav_pages()
    assert "index.md" in pages and "cli.md" in pages
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert missing == [], f"mkdocs.yml nav names pages that do not exist: {missing}"


def test_every_page_is_in_the_nav() -> None:
    pages = set(_nav_pages())
    orphans = sorted(
        str(p.relative_to(DOCS)).replace(os.sep, "/") for p in DOCS.rglob("*.md")
    )
    orphans = [p for p in orphans if p not in pages]
    assert orphans == [], f"pages not reachable from the site nav: {orphans}; add them to nav in mkdocs.yml"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",  # not --quiet: it hides the warnings strict counts
         "--config-file", str(MKDOCS_YML), "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / "site" / "index.html").is_file()


# -- runnable examples -----------------------------------------------------------------


def _blocks(page: str, lang: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def _env_with_prov() -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    if not (Path(bindir) / "prov").exists():
        pytest.skip(f"the prov console script is not installed next to {sys.executable}")
    return {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}


def test_quickstart_commands_run(tmp_path: Path) -> None:
    """Every ``$`` line of the quickstart's console blocks, in order, in a fresh directory."""
    commands = [
        line[2:]
        for block in _blocks("quickstart.md", "console")
        for line in block.splitlines()
        if line.startswith("$ ")
    ]
    assert any(c.startswith("prov capture") for c in commands)
    script = "set -e\n" + "".join(f"echo '>>> {i}'\n{c}\n" for i, c in enumerate(commands))
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, env=_env_with_prov())
    failed = re.findall(r">>> (\d+)", proc.stdout)
    where = commands[int(failed[-1])] if failed else "?"
    assert proc.returncode == 0, f"quickstart command failed: {where!r}\n{proc.stdout[-2000:]}\n{proc.stderr}"
    assert "\nok\n" in proc.stdout, "prov verify did not print ok"


def _normalise(text: str) -> list[str]:
    text = re.sub(r"[0-9a-f]{12,}", "<id>", text)
    text = re.sub(r"\b\d+\.\d+\.\d+\b", "<version>", text)
    return text.strip().splitlines()


def test_api_example_runs_and_prints_what_the_page_says(tmp_path: Path) -> None:
    code = "\n".join(_blocks("api.md", "python"))
    expected = _blocks("api.md", "text")
    documented = next(b for b in expected if b.startswith("True "))
    env = _env_with_prov()
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "train.py").write_text("print('training')\n")
    subprocess.run(["git", "add", "train.py"], cwd=tmp_path, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "Add training script"], cwd=tmp_path, check=True)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"the docs/api.md example failed:\n{proc.stderr}"
    assert _normalise(proc.stdout) == _normalise(documented), "docs/api.md shows output the example no longer prints"
