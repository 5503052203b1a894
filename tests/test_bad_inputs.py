"""The catalogue of bad inputs (issue 16): every one, through the Python API or the CLI,
is refused with a ``ProvError`` (a documented exit code on the CLI), one line naming the
problem, no traceback, and nothing half-written: ``git fsck --strict`` and
``prov verify`` pass after each, and a run that refused a value still ends normally
with what it logged before."""

from __future__ import annotations

import math
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

import gitprov
from gitprov.errors import ProvError

from .conftest import GitRepo, run_prov

TOKEN = "ghp_" + "a1B2" * 9  # a GitHub token's shape, assembled so scanners do not flag the file
DEEP: Any = 1
for _ in range(70):
    DEEP = [DEEP]
BIG = "x" * (2 << 20)

#: refused by an active run: (id, call on the run ``r``)
RUN_CALLS: list[tuple[str, Any]] = [
    # metric keys
    *[(f"metric key {name}", (lambda k: lambda r: r.log_metric(k, 1.0))(key)) for name, key in [
        ("empty", ""), ("dotdot", "../x"), ("dot segment", "a/./b"), ("leading slash", "/x"), ("dollar", "$x"),
        ("control", "a\nb"), ("DEL", "a\x7fb"), ("surrogate", "a\udc80"), ("too long", "k" * 300), ("int", 5),
        ("None", None), ("bytes", b"k")]],
    # metric values
    *[(f"metric value {name}", (lambda v: lambda r: r.log_metric("loss", v))(value)) for name, value in [
        ("str", "1.0"), ("None", None), ("bool", True), ("complex", 1j), ("huge int", 10**400), ("list", [1.0]),
        ("object", object()), ("dict", {"a": 1})]],
    # steps
    *[(f"step {name}", (lambda s: lambda r: r.log_metric("loss", 1.0, step=s))(step)) for name, step in [
        ("float", 1.5), ("str", "3"), ("2**63", 2**63), ("-2**63", -(2**63)), ("2**62", 2**62), ("list", [1]),
        ("bool", True)]],
    # timestamps
    *[(f"timestamp {name}", (lambda t: lambda r: r.log_metric("loss", 1.0, timestamp=t))(ts)) for name, ts in [
        ("str", "now"), ("NaN", math.nan), ("inf", math.inf), ("-inf", -math.inf), ("negative", -1),
        ("1e16", 1e16), ("bool", True), ("object", object()), ("list", [1])]],
    ("log_metrics not a dict", lambda r: r.log_metrics([("loss", 1.0)])),
    # hyperparameters
    *[(f"param key {name}", (lambda k: lambda r: r.log_hyperparameter(k, 1))(key)) for name, key in [
        ("empty", ""), ("dotdot", ".."), ("dollar", "$lr"), ("control", "l\tr"), ("surrogate", "l\udc80"),
        ("too long", "p" * 251), ("int", 3)]],
    *[(f"param value {name}", (lambda v: lambda r: r.log_hyperparameter("p", v))(value)) for name, value in [
        ("NaN", math.nan), ("inf", math.inf), ("set", {1}), ("bytes", b"x"), ("object", object()),
        ("too big", BIG), ("too deep", DEEP), ("token", TOKEN), ("url credentials", "https://u:pw@h/x"),
        ("surrogate", "a\udc80"), ("non-str key", {1: "a"}), ("dollar key", {"$where": 1}),
        ("tuple key", {(1,): 1})]],
    ("params not a dict", lambda r: r.log_hyperparameters(["lr", 1])),
    ("param changed without overwrite", lambda r: (r.log_hyperparameter("q", 1), r.log_hyperparameter("q", 2))),
    # tags and attributes
    ("tags not a dict or list", lambda r: r.log_tags("a")),
    ("tag key dotdot", lambda r: r.log_tag("..", "v")),
    ("tag key surrogate", lambda r: r.log_tag("t\udc80", "v")),
    ("tag value not text", lambda r: r.log_tags({"t": 5})),
    ("tag value surrogate", lambda r: r.log_tags({"t": "v\udc80"})),
    ("tag value token", lambda r: r.log_tag("t", TOKEN)),
    ("attribute key dollar", lambda r: r.log_attribute("$a", 1)),
    ("attribute value NaN", lambda r: r.log_attribute("a", math.nan)),
    ("attribute value object", lambda r: r.log_attribute("a", object())),
    ("attributes not a dict", lambda r: r.log_attributes([1])),
    # observations
    ("observation key dotdot", lambda r: r.log_observation("..", 1)),
    ("observation value object", lambda r: r.log_observation("o", object())),
    ("observation value NaN", lambda r: r.log_observation("o", math.nan)),
    ("observation timestamp NaN", lambda r: r.log_observation("o", 1, timestamp=math.nan)),
    # artifacts
    ("artifact path missing", lambda r: r.log_artifact("model", "no/such/file.bin")),
    ("artifact key dotdot", lambda r: r.log_artifact("../m", b"x")),
    ("artifact key empty", lambda r: r.log_artifact("", b"x")),
    ("artifact source unpicklable function", lambda r: r.log_artifact("m", lambda: 1)),
    ("artifact source unpicklable generator", lambda r: r.log_artifact("m", (i for i in ()))),
    # datasets
    ("dataset path missing", lambda r: r.log_dataset_version("train", "data/missing.csv")),
    ("dataset typo file", lambda r: r.log_dataset_version("train", "typo.csv")),
    ("dataset empty", lambda r: r.log_dataset_version("train", "")),
    ("dataset control", lambda r: r.log_dataset_version("train", "a\nb")),
    ("dataset key dotdot", lambda r: r.log_dataset_version("..", "sha256:" + "0" * 64)),
    # names, stages, ending
    ("rename control", lambda r: r.rename("a\nb")),
    ("rename too long", lambda r: r.rename("n" * 300)),
    ("rename int", lambda r: r.rename(5)),
    ("stage name dotdot", lambda r: r.stage("..")),
    ("stage params not a dict", lambda r: r.stage("fit", params=[1])),
    ("stage params NaN", lambda r: r.stage("fit", params={"a": math.nan})),
    ("stage inputs wrong type", lambda r: r.stage("fit", inputs=5)),
    ("stage input missing path", lambda r: r.stage("fit", inputs={"x": "no/such.csv"})),
    # seeds
    ("seed float", lambda r: r.log_seed(1.5)),
    ("seed bool", lambda r: r.log_seed(True)),
    ("seed None", lambda r: r.log_seed(None)),
    ("seed key dotdot", lambda r: r.log_seed(1, "..")),
    ("seed token", lambda r: r.log_seed(TOKEN)),
    ("end with a bad status", lambda r: r.end("done")),
    ("end with an int status", lambda r: r.end(3)),
    # the calls of issue 17 (Verta, curifactory)
    ("attribute replaced without overwrite", lambda r: (r.log_attribute("o", 1), r.log_attribute("o", 2))),
    ("setup script invalid Python", lambda r: r.log_setup_script("def (:")),
    ("setup script not text", lambda r: r.log_setup_script(b"x = 1")),
    ("log_code exec_path missing", lambda r: r.log_code(exec_path="no/such.py")),
    ("log_code unknown commit", lambda r: r.log_code(commit_hash="no-such-rev")),
    ("log_model missing path", lambda r: r.log_model("no/such/model.pkl")),
    ("log_model bad requirements", lambda r: r.log_model(b"m", requirements=5)),
    ("log_model unpicklable", lambda r: r.log_model(lambda: 1)),
    ("get_model without one", lambda r: r.get_model()),
    ("stage data not a dict", lambda r: r.stage("fit", data=5)),
    ("stage cache path with a slash", lambda r: r.stage("fit").get_path("a/b")),
    ("stage cache path dotdot", lambda r: r.stage("fit").get_dir("..")),
]

#: refused by the repository or ``start_run``: (id, call on the ``gitprov.Repository`` ``repo``)
REPO_CALLS: list[tuple[str, Any]] = [
    ("run name control", lambda repo: repo.start_run(name="a\nb")),
    ("run name surrogate", lambda repo: repo.start_run(name="a\udc80")),
    ("run name too long", lambda repo: repo.start_run(name="n" * 300)),
    ("run name int", lambda repo: repo.start_run(name=5)),
    ("experiment control", lambda repo: repo.start_run(experiment="e\x00")),
    ("params not a dict", lambda repo: repo.start_run(params=[1])),
    ("params bad key", lambda repo: repo.start_run(params={"../x": 1})),
    ("params NaN", lambda repo: repo.start_run(params={"lr": math.nan})),
    ("params token", lambda repo: repo.start_run(params={"note": TOKEN})),
    ("tags bad", lambda repo: repo.start_run(tags={"..": "x"})),
    ("spill points zero", lambda repo: repo.start_run(spill_points=0)),
    ("spill seconds negative", lambda repo: repo.start_run(spill_seconds=-1)),
    ("flush seconds zero", lambda repo: repo.start_run(flush_seconds=0)),
    ("get_run not an id", lambda repo: repo.get_run("not a sha")),
    ("get_run short", lambda repo: repo.get_run("ab")),
    ("get_run unknown", lambda repo: repo.get_run("0" * 40)),
    ("get_run int", lambda repo: repo.get_run(5)),
    ("show unknown revision", lambda repo: repo.show("no-such-branch")),
    ("show a range", lambda repo: repo.show("HEAD~1..HEAD")),
    ("show a blob", lambda repo: repo.show(repo.git.odb.write("blob", b"x"))),
    ("log unknown revision", lambda repo: repo.log("no-such-branch")),
    ("capture unknown revision", lambda repo: repo.capture("nope")),
    ("find_runs bad filter", lambda repo: repo.find_runs("params.lr >")),
    ("find_runs unknown operator", lambda repo: repo.find_runs({"params.lr": {"$near": 1}})),
    ("find_runs deep filter", lambda repo: repo.find_runs("(" * 500 + "params.a = 1" + ")" * 500)),
    ("find_runs deep dict", lambda repo: repo.find_runs(_deep_query(500))),
    ("find_runs not a dict", lambda repo: repo.find_runs(5)),
    ("find_runs bad order", lambda repo: repo.find_runs(order_by="params.lr sideways")),
    ("find_runs regex error", lambda repo: repo.find_runs({"name": {"$regex": "("}})),
    ("find_runs NaN", lambda repo: repo.find_runs({"metrics.acc": {"$gt": math.nan}})),
    ("find_runs bad status", lambda repo: repo.find_runs({"status": "done"})),
    ("find_cached without args_hash", lambda repo: repo.find_cached("fit")),
    ("find_cached bad inputs", lambda repo: repo.find_cached("fit", "sha256:00", inputs=5)),
    ("lineage unknown", lambda repo: repo.lineage("nope")),
    ("lineage bad direction", lambda repo: repo.lineage("run:" + "0" * 40, direction="sideways")),
    ("lineage negative depth", lambda repo: repo.lineage("run:" + "0" * 40, depth=-1)),
    ("export unknown format", lambda repo: repo.export("prov-xml")),
    ("export unknown run", lambda repo: repo.export("prov-json", ["0000"])),
    ("export unknown target", lambda repo: repo.export("prov-json", ["nope"])),
    ("export bad filter", lambda repo: repo.export("prov-json", where="params.lr >")),
    ("export sign not in-toto", lambda repo: repo.export("prov-n", sign=True)),
    ("export url not openlineage", lambda repo: repo.export("in-toto", url="http://127.0.0.1:9")),
    ("export namespace control", lambda repo: repo.export("openlineage", namespace="a\nb")),
    ("relink unknown", lambda repo: repo.relink("nope..HEAD")),
    ("pull unknown remote", lambda repo: repo.pull("no-such-remote")),
    ("fetch dash remote", lambda repo: repo.fetch("-x")),
]


@pytest.fixture
def object_format() -> str:
    """One object format is enough for input checks (the conftest runs both)."""
    return "sha1"


def _deep_query(levels: int) -> dict:
    query: dict = {"params.a": 1}
    for _ in range(levels):
        query = {"$not": query}
    return query


def _assert_one_line(exc: BaseException) -> None:
    assert isinstance(exc, ProvError), f"{type(exc).__name__} is not a ProvError: {exc}"
    message = str(exc)
    assert message and "\n" not in message and len(message) < 600, message
    assert "Traceback" not in message


def _assert_intact(repo: GitRepo) -> None:
    repo.fsck()
    verify = run_prov(repo.path, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    """One repository for the whole catalogue (each case checks it after itself)."""
    path = tmp_path_factory.mktemp("catalogue") / "repo"
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    repo = GitRepo(path)
    # module-scoped: made before the per-test git isolation, so it names its own identity
    repo.git("config", "user.name", "Catalogue")
    repo.git("config", "user.email", "catalogue@example.com")
    repo.commit("one")
    repo.commit("two")
    gitprov.init(path, hooks=False)
    return repo


@pytest.mark.parametrize(("what", "call"), RUN_CALLS, ids=[c[0] for c in RUN_CALLS])
def test_an_active_run_refuses(shared: GitRepo, what: str, call: Any) -> None:
    repo = gitprov.Repository(shared.path)
    run = repo.start_run(name=f"catalogue {what}"[:200], code=False, environment=False)
    run.log_metric("before", 1.0)
    with pytest.raises(Exception) as err:
        call(run)
    _assert_one_line(err.value)
    if run.status == "running":
        run.end()
    stored = repo.get_run(run.id)
    assert stored.get_metric("before") == 1.0


@pytest.mark.parametrize(("what", "call"), REPO_CALLS, ids=[c[0] for c in REPO_CALLS])
def test_the_repository_refuses(shared: GitRepo, what: str, call: Any) -> None:
    repo = gitprov.Repository(shared.path)
    tip = shared.git("rev-parse", "refs/prov/ledger").strip()
    with pytest.raises(Exception) as err:
        result = call(repo)
        if isinstance(result, gitprov.Run):  # accepted: end it so the catalogue stays clean
            result.end()
    _assert_one_line(err.value)
    assert shared.git("rev-parse", "refs/prov/ledger").strip() == tip, "a refused call wrote to the ledger"


def test_the_catalogue_left_the_repository_intact(shared: GitRepo) -> None:
    _assert_intact(shared)


#: (id, argv, documented exit code); ``$REPO`` is replaced by the repository's path
CLI_CASES: list[tuple[str, list[str], int]] = [
    ("show unknown revision", ["show", "nope"], 4),
    ("show a range", ["show", "HEAD~1..HEAD"], 2),
    ("show too many arguments", ["show", "HEAD", "HEAD"], 2),
    ("show bad option", ["show", "--bogus"], 2),
    ("log unknown revision", ["log", "nope"], 4),
    ("log zero count", ["log", "-n", "0"], 2),
    ("log count not a number", ["log", "-n", "x"], 2),
    ("capture unknown revision", ["capture", "nope"], 4),
    ("capture beyond history", ["capture", "HEAD~99"], 4),
    ("runs bad filter", ["runs", "--where", "params.lr >"], 2),
    ("runs unclosed parenthesis", ["runs", "--where", "(params.lr > 1"], 2),
    ("runs deep filter", ["runs", "--where", "(" * 3000 + "params.a = 1" + ")" * 3000], 2),
    ("runs bad character", ["runs", "--where", "params.lr # 1"], 2),
    ("runs bad order", ["runs", "--order-by", "params.lr sideways"], 2),
    ("runs negative limit", ["runs", "--limit", "-1"], 2),
    ("runs bad status", ["runs", "--status", "bogus"], 2),
    ("runs show not an id", ["runs", "show", "zzzz"], 2),
    ("runs show unknown", ["runs", "show", "0000"], 2),
    ("runs diff unknown", ["runs", "diff", "0000", "1111"], 2),
    ("run without a command", ["run"], 2),
    ("rerun unknown", ["rerun", "0000"], 2),
    ("rerun not an id", ["rerun", "zz"], 2),
    ("rerun bad rtol", ["rerun", "0000", "--rtol", "tight"], 2),
    ("rerun negative atol", ["rerun", "0000", "--atol", "loss=-1"], 2),
    ("rerun rtol without a metric", ["rerun", "0000", "--rtol", "=0.1"], 2),
    ("rerun param without =", ["rerun", "0000", "--param", "noequals"], 2),
    ("run param without =", ["run", "--param", "noequals", "--", "true"], 2),
    ("run param undecodable", ["run", "--param", "\udcff=1", "--", "true"], 2),
    ("run param bad key", ["run", "--param", "../x=1", "--", "true"], 2),
    ("run param token", ["run", "--param", f"note={TOKEN}", "--", "true"], 2),
    ("run missing input", ["run", "--input", "no/such.csv", "--", "true"], 2),
    ("run name control", ["run", "--name", "a\x01b", "--", "true"], 2),
    ("lineage unknown", ["lineage", "nope"], 2),
    ("lineage bad depth", ["lineage", "--depth", "-1", "nope"], 2),
    ("report bad filter", ["report", "--where", "params.lr >"], 2),
    ("report unknown run", ["report", "0000"], 2),
    ("report nothing matches", ["report", "--where", "params.nothing_has_this = 1"], 2),
    ("report zero limit", ["report", "--limit", "0"], 2),
    ("report unwritable output", ["report", "-o", "/no/such/dir/report.html"], 7),
    ("ui port out of range", ["ui", "--port", "70000"], 2),
    ("export unknown format", ["export", "--format", "prov-xml"], 2),
    ("export without a format", ["export"], 2),
    ("export unknown run", ["export", "--format", "prov-json", "0000"], 2),
    ("export bad filter", ["export", "--format", "openlineage", "--where", "params.lr >"], 2),
    ("export sign not in-toto", ["export", "--format", "prov-o", "--sign"], 2),
    ("export namespace not openlineage", ["export", "--format", "in-toto", "--namespace", "x"], 2),
    ("export into a missing directory", ["export", "--format", "prov-json", "-o", "no/such/dir/out.json"], 7),
    ("verify bad option", ["verify", "--bogus"], 2),
    ("schema show bad option", ["schema", "show", "--bogus"], 2),
    ("schema unknown command", ["schema", "nope"], 2),
    ("unknown command", ["nope"], 2),
    ("hooks install missing python", ["hooks", "install", "--python", "/no/such/python"], 2),
    ("pull unknown remote", ["pull", "no-such-remote"], 11),
    ("pull dash remote", ["pull", "-x"], 2),
    ("push unreachable path", ["push", "/no/such/remote.git"], 11),
    ("fetch unreachable url", ["fetch", "http://127.0.0.1:9/x.git"], 11),
    ("relink without a new commit", ["relink", "nope..HEAD"], 2),
    ("relink unknown", ["relink", "nope..HEAD", "HEAD"], 4),
    ("sync unknown target", ["sync", "nope"], 2),
    ("sync mlflow zero timeout", ["sync", "mlflow", "--timeout", "0"], 2),
]


@pytest.mark.parametrize(("what", "argv", "code"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_the_cli_refuses(shared: GitRepo, what: str, argv: list[str], code: int) -> None:
    tip = shared.git("rev-parse", "refs/prov/ledger").strip()
    proc = run_prov(shared.path, *[os.fsdecode(os.fsencode(a)) for a in argv])
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    assert re.match(r"(prov: error: |Error: )\S", last), proc.stderr
    assert len(last) < 600
    if what != "run without a command":
        assert shared.git("rev-parse", "refs/prov/ledger").strip() == tip


#: bad repositories and settings: (id, how to spoil a fresh repository, argv, exit code)
SPOILED: list[tuple[str, Any, list[str], int]] = [
    ("settings not TOML", lambda p: (p / ".provenance.toml").write_text("[inputs\n"), ["capture"], 9),
    ("settings unknown key", lambda p: (p / ".provenance.toml").write_text("[inputs]\npath = []\n"), ["capture"], 9),
    ("settings wrong type", lambda p: (p / ".provenance.toml").write_text("[hooks]\nstrict = 'yes'\n"), ["capture"], 9),
    ("settings absolute input", lambda p: (p / ".provenance.toml").write_text('[inputs]\npaths = ["/etc/*"]\n'),
     ["capture"], 9),
    ("settings bad secrets pattern", lambda p: (p / ".provenance.toml").write_text('[secrets]\npatterns = ["("]\n'),
     ["run", "--", "true"], 9),
    ("settings long secrets pattern",
     lambda p: (p / ".provenance.toml").write_text(f'[secrets]\npatterns = ["{"a" * 300}"]\n'), ["run", "--", "true"], 9),
    ("notes ref at a blob", lambda p: _git(p, "update-ref", "refs/notes/prov", _git(p, "hash-object", "-w", "--stdin",
                                                                                   input="x")), ["show"], 5),
    ("ledger ref at a code commit", lambda p: _git(p, "update-ref", "refs/prov/ledger", "HEAD"), ["run", "--", "true"], 5),
    ("schema dir is a file", lambda p: (_rmtree(p / ".provenance-schema"), (p / ".provenance-schema").write_text("x")),
     ["init", "--no-hooks"], 9),
    ("prov dir is a file", lambda p: (_rmtree(p / ".git" / "prov"), (p / ".git" / "prov").write_text("x")),
     ["init", "--no-hooks"], 9),
    ("prov dir is a file: runs", lambda p: (_rmtree(p / ".git" / "prov"), (p / ".git" / "prov").write_text("x")),
     ["runs"], 7),
    ("prov dir is a file: run", lambda p: (_rmtree(p / ".git" / "prov"), (p / ".git" / "prov").write_text("x")),
     ["run", "--", "true"], 7),
    ("hooks path outside", lambda p: _git(p, "config", "core.hooksPath", "/tmp/prov-shared-hooks-test"), ["init"], 9),
    ("GIT_CONFIG_NOSYSTEM not a boolean", None, ["show"], 9),
]


def _git(path: Path, *args: str, input: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, input=input,
                          check=True).stdout.strip()


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize(("what", "spoil", "argv", "code"), SPOILED, ids=[c[0] for c in SPOILED])
def test_a_spoiled_repository_is_one_line(prov_repo: GitRepo, what: str, spoil: Any, argv: list[str], code: int) -> None:
    env = None
    if spoil is None:
        env = {"GIT_CONFIG_NOSYSTEM": "maybe"}
    else:
        spoil(prov_repo.path)
    proc = run_prov(prov_repo.path, *argv, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("prov: error")]
    assert len(lines) == 1, proc.stderr


@pytest.mark.parametrize("argv", [["show"], ["log"], ["runs"], ["capture"], ["run", "--", "true"], ["verify"],
                                  ["lineage", "x"], ["pull"], ["push"], ["status"]])
def test_outside_a_repository_every_command_is_exit_3(tmp_path: Path, argv: list[str]) -> None:
    proc = run_prov(tmp_path, *argv, env={"GIT_CEILING_DIRECTORIES": str(tmp_path.parent)})
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (2, 3), (argv, proc.returncode, proc.stderr)
    assert "not a git repository" in proc.stderr or proc.returncode == 2


def test_the_catalogue_has_at_least_170_bad_inputs() -> None:
    total = len(RUN_CALLS) + len(REPO_CALLS) + len(CLI_CASES) + len(SPOILED) + 10
    assert total >= 170, total
