"""What importing git-prov loads (measured in fresh interpreters) and the layering of
its packages (DESIGN.md §2)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gitprov
from tests.test_layers import imports_of

SRC = Path(gitprov.__file__).parent
FORBIDDEN = ("click", "pydantic", "mlflow", "wandb", "dulwich", "rich", "prov", "rdflib", "openlineage",
             "in_toto_attestation")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(proc.stdout))


@pytest.mark.parametrize(
    "statement",
    [
        "import gitprov",
        "import gitprov.api",
        "import gitprov.cli.entry",
        "import gitprov; gitprov.Repository; gitprov.show",
        "from gitprov.cli import render",
        # the hook path and what a training loop calls
        "import gitprov.githooks.runtime",
        "import gitprov.quickcapture",
        "import gitprov.runs.start",
        "import gitprov.settings",
    ],
)
def test_import_loads_no_heavy_or_optional_dependency(statement: str) -> None:
    modules = loaded_after(statement)
    heavy = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    assert heavy == [], f"{statement!r} loaded {heavy}"


def test_lower_layers_load_nothing_above_them() -> None:
    model = loaded_after("import gitprov.model")
    assert not {m for m in model if m.startswith(("gitprov.store", "gitprov.api", "gitprov.cli", "dulwich"))}
    store = loaded_after("import gitprov.store.repo, gitprov.store.notes, gitprov.store.ledger")
    assert not {m for m in store if m.startswith(("gitprov.api", "gitprov.cli", "click"))}


def test_the_click_app_is_what_loads_click() -> None:
    assert "click" in loaded_after("import gitprov.cli.app")


def test_the_user_facing_models_are_what_load_pydantic() -> None:
    for statement in ("import gitprov.lineage", "import gitprov.integrations.tracking"):
        assert "pydantic" in loaded_after(statement), statement


def test_a_run_loads_no_pydantic(make_repo) -> None:
    """``start_run``, ``log_metric`` and ``end`` (and ``init`` before them)."""
    path = make_repo("sha1").path
    statement = (f"import gitprov; gitprov.init({str(path)!r}, hooks=False)\n"
                 f"run = gitprov.Repository({str(path)!r}).start_run(name='r', environment=False)\n"
                 "run.log_metric('loss', 0.5); run.log_metric('loss', 0.25, step=1); run.end()")
    assert sorted(m for m in loaded_after(statement) if m.split(".")[0] in FORBIDDEN) == []


def test_every_required_dependency_is_imported() -> None:
    """A dependency every install pays for must be used by the package; test-only ones
    belong in the ``test`` extra."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    project = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    required = {re.split(r"[<>=;\[ ]", dep, maxsplit=1)[0] for dep in project["dependencies"]}
    indirect = {"tomli": "msgspec.toml reads TOML with it before Python 3.11"}
    imported = {m.split(".")[0] for path in SRC.rglob("*.py") for m in imports_of(path)}
    assert sorted(required - imported - set(indirect)) == []



def test_dulwich_is_loaded_by_bulk_readers_only() -> None:
    """Its compiled delta application (``store/packfile.py``'s ``native_apply_delta``) is
    imported by bulk readers at their first delta (a pull's reader of the arriving pack,
    a cold build's reader of the packs), never by a run, the hooks' paths or a read
    (``test_import_loads_no_heavy_or_optional_dependency``)."""
    assert "dulwich" not in loaded_after("import gitprov.api, gitprov.store.packstream, gitprov.exchange.arriving, "
                                         "gitprov.store.packfile, gitprov.index.reading")
    assert "dulwich" in loaded_after("from gitprov.store import packstream; assert packstream.native_apply_delta()")
    assert "dulwich" in loaded_after("from gitprov.store import packfile; packfile._bulk_applier()")


def test_public_names() -> None:
    expected = {
        "AmbiguousRevisionError", "BareRepositoryError", "CommitProvenance", "ConcurrentUpdateError",
        "ConfigError", "DataError", "DriftError", "EmptyRepositoryError", "FormatVersionError", "MissingExtraError",
        "MissingObjectError", "RerunError", "BuildChildError", "PackStreamError",
        "NotARepositoryError", "ProvError", "QueryError", "ReadOnlyRepositoryError", "RemoteDataError",
        "RemoteError", "Repository", "RepositoryError", "RevisionError", "SyncError", "UnknownFieldError",
        "UnknownRevisionError", "UsageError", "VerificationError", "WriteError", "__version__",
        "capture", "export", "init", "log", "show", "start_run", "Run", "MetricPoint", "Observation",
    }
    assert sorted(gitprov.__all__) == sorted(expected), "update this test when the public surface changes"
    assert len(gitprov.__all__) == len(set(gitprov.__all__))
    for name in gitprov.__all__:
        assert getattr(gitprov, name) is not None, name
    with pytest.raises(AttributeError):
        gitprov.no_such_name  # noqa: B018


def test_every_module_declares_all_that_exists() -> None:
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
        if "__all__" not in names:
            continue
        module = ".".join(("gitprov", *path.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
        if module.endswith("__main__"):
            continue
        mod = __import__(module, fromlist=["_"])
        for name in mod.__all__:
            assert hasattr(mod, name), f"{module}.__all__ names {name!r}, which does not exist"


def _layer(name: str) -> list[Path]:
    return sorted((SRC / name).rglob("*.py"))


@pytest.mark.parametrize("path", _layer("model"), ids=lambda p: p.name)
def test_model_imports_no_third_party_library_but_msgspec(path: Path) -> None:
    """(Which gitprov units each layer may import: tests/test_layers.py.)"""
    bad = {m for m in imports_of(path) if m.split(".")[0] in FORBIDDEN}
    assert bad == set(), f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _layer("store"), ids=lambda p: p.name)
def test_store_imports_no_optional_or_heavy_library(path: Path) -> None:
    bad = {m for m in imports_of(path) if m.split(".")[0] in FORBIDDEN} - _STORE_MAY_IMPORT.get(path.name, set())
    assert bad == set(), f"{path.name} imports {sorted(bad)}"


#: the one exception: dulwich's compiled delta application, imported inside
#: ``native_apply_delta`` by bulk readers (``test_dulwich_is_loaded_by_…``)
_STORE_MAY_IMPORT = {"packfile.py": {"dulwich._pack", "dulwich._pack.apply_delta"}}


def test_only_the_cli_imports_click() -> None:
    for path in sorted(SRC.rglob("*.py")):
        if "click" in {m.split(".")[0] for m in imports_of(path)}:
            assert path.relative_to(SRC).parts[0] == "cli", path


def test_opening_a_repository_and_show_load_no_run_code(prov_repo) -> None:
    """``prov show`` opens a ``Repository``: without journals of dead runs that must not
    load the run package or its recovery (it cost ``prov show`` 14 ms once), nor the
    index's bulk reader for a commit with a few runs (git, subprocess: 10-20 ms)."""
    make = "import gitprov\nwith gitprov.Repository('.').start_run('r', environment=False): pass\n"
    subprocess.run([sys.executable, "-c", make], capture_output=True, text=True, check=True, cwd=prov_repo.path)
    code = ("import sys, json, gitprov\nrepo = gitprov.Repository('.')\nassert len(repo.show().runs) == 1\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('gitprov.runs', 'gitprov.index', "
            "'secrets', 'subprocess')))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=prov_repo.path)
    assert json.loads(proc.stdout) == []


def test_the_rewrite_hooks_history_module_loads_no_index() -> None:
    """post-rewrite and the full post-commit path import ``history`` for its rewrite
    links; the run index (and what it loads) is for keep and verify only."""
    assert not {m for m in loaded_after("import gitprov.history") if m.startswith("gitprov.index")}
