"""``prov rerun``: rebuild a run's code, check its inputs and environment, execute its
command again as a new run that ``reproduces`` it, and say whether the results match.

The code is rebuilt in a scratch worktree (``git worktree add --detach`` at the run's
commit, its recorded patch applied with ``git apply --index``); declared inputs that git
does not track are copied in from the work tree and every recorded digest is checked
before anything runs. A ``prov run`` command is executed by this process, which records
the new run as ``prov run`` does; a script that called ``start_run`` is executed with
this interpreter and its first run takes ``PROV_REPRODUCES`` (and overridden params,
``PROV_PARAMS``). The results are then compared (``runs/compare.py``).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import codec
from ..errors import DriftError, ProvError, RerunError, UsageError
from ..model import CommitCapture, Lineage, RunRecord
from ..store import gitbin
from . import compare
from .compare import OUTPUT_PREFIX, Tolerance
from .reading import resolve_run_id
from .run import Run

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["rerun", "rerunnable"]

_CANNOT = {
    "notebook": "it was made in a notebook, whose cells cannot be executed again as one command",
    "interactive": "it was made in an interactive session (or python -c), which recorded no command",
}


def rerunnable(record: RunRecord) -> str | None:
    """None when ``prov rerun`` can execute the run again, else why not."""
    from ..scrub import REDACTED

    if record.launcher in _CANNOT:
        return _CANNOT[record.launcher]
    if not record.command:
        return "its record holds no command line (a run started with an explicit empty command, or by an older git-prov)"
    if any(REDACTED in arg for arg in record.command):
        return "a secret was redacted from its command line"
    if not record.code.commit:
        return "it recorded no commit"
    return None


def _missing_commit(store: ProvStore, run_id: str, record: RunRecord) -> RerunError:
    """The commit is not in this clone: name the clone it was made in, and the remote
    here with the same URL (the run records ``remote.origin.url``; git cannot say which
    remote has a commit it does not have without fetching)."""
    from ..scrub import scrub_url

    commit, url = record.code.commit or "", record.code.repo_url
    config = store.git.config
    remotes = [name for name in config.remote_names()
               if url and scrub_url(config.get(f"remote.{name}.url") or "") == url]
    where = f"commit {commit[:12]} of run {run_id[:12]} is not in this clone"
    if remotes:
        return RerunError(f"{where}; the run was made in a clone of {url} (remote '{remotes[0]}' here): fetch it with "
                          f"'git fetch {remotes[0]}' (if it was never pushed, only the clone that made the run has it)")
    if url:
        return RerunError(f"{where}; the run was made in a clone of {url}, which is no remote here: "
                          f"'git fetch {url}' (if it was never pushed, only the clone that made the run has it)")
    return RerunError(f"{where}, and the run recorded no remote; fetch the commit from the clone that made the run")


def _git(args: list[str], what: str, input: bytes | None = None) -> None:
    gitbin.run_checked(args, what=what, input=input, error=RerunError)


def _rebuild(store: ProvStore, run_id: str, record: RunRecord, dest: str) -> bytes | None:
    """A detached worktree at ``dest`` at the run's commit; the patch to apply to it."""
    git = store.git
    commit = record.code.commit or ""
    if not git.odb.contains(commit):
        raise _missing_commit(store, run_id, record)
    patch = None
    if record.code.patch:
        if not git.odb.contains(record.code.patch):
            raise RerunError(f"the uncommitted patch of run {run_id[:12]} (blob {record.code.patch[:12]}) is not in "
                             "this clone; fetch the provenance of the clone that made it (prov pull)")
        patch = git.odb.read_typed(record.code.patch, "blob")
    _git(["-C", store.work_tree or ".", "worktree", "add", "--detach", "--quiet", dest, commit],
         f"make a worktree at {commit[:12]} in {dest}")
    return patch


def _apply(run_id: str, record: RunRecord, dest: str, patch: bytes | None) -> None:
    """The run's uncommitted changes applied to the worktree (and its index)."""
    commit = record.code.commit or ""
    if patch:
        proc = gitbin.run(["-C", dest, "apply", "--index", "--binary", "--whitespace=nowarn", "-"], input=patch,
                          error=RerunError)
        if proc.returncode != 0:
            raise RerunError(f"the recorded patch of run {run_id[:12]} no longer applies to commit {commit[:12]}: "
                             f"{gitbin.failure(proc)}")


def _remove(store: ProvStore, dest: str) -> None:
    proc = gitbin.run(["-C", store.work_tree or ".", "worktree", "remove", "--force", dest])
    if proc.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        gitbin.run(["-C", store.work_tree or ".", "worktree", "prune"])


def _digest(path: str) -> str | None:
    from .artifacts import directory_digest
    from .inputs import sha256_file

    if os.path.isfile(path):
        return "sha256:" + sha256_file(path)
    if os.path.isdir(path):
        return directory_digest(path)[0]
    return None


def _declared_inputs(store: ProvStore, commit: str) -> dict[str, str]:
    """``path -> sha256:…`` of the inputs the commit's capture declared (``[inputs]``)."""
    out: dict[str, str] = {}
    for line in store.notes.read(commit):
        if b'"kind":"commit"' not in line:
            continue
        try:
            capture = codec.decode(line, CommitCapture, f"capture of {commit[:12]}")
        except ProvError:
            continue
        out.update({f.path: f"sha256:{f.sha256}" for f in capture.inputs})
    return out


def _check_inputs(store: ProvStore, run: Run, dest: str) -> list[dict[str, Any]]:
    """Every recorded input digest recomputed on the file the rerun reads: the
    worktree's, or the work tree's copied in when git does not track it."""
    from .._util.paths import is_inside

    work_tree = store.work_tree or ""
    wanted: dict[str, tuple[str, str]] = {}  # key -> (path relative to the work tree, recorded digest)
    for key, version in sorted(run.state.datasets.items()):
        if key.startswith(OUTPUT_PREFIX):
            continue
        rel = posixpath.normpath(version.path) if version.path else ""
        if rel and not posixpath.isabs(rel) and rel != ".." and not rel.startswith("../"):
            wanted[key] = (rel, version.digest)
        else:
            wanted[key] = ("", version.digest)
    for path, digest in _declared_inputs(store, run.record.code.commit or "").items():
        wanted.setdefault(f"declared/{path}", (path, digest))
    rows = []
    for key, (rel, recorded) in wanted.items():
        if not rel:
            rows.append({"key": key, "path": None, "recorded": recorded, "now": None, "status": "unchecked"})
            continue
        target, source = os.path.join(dest, rel), os.path.join(work_tree, rel)
        if not is_inside(target, dest):  # a path through a symlink of the commit that leads out
            rows.append({"key": key, "path": rel, "recorded": recorded, "now": None, "status": "missing"})
            continue
        if not os.path.exists(target) and os.path.exists(source) and is_inside(source, work_tree):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.isdir(source):
                shutil.copytree(source, target, symlinks=True)
            else:
                shutil.copy2(source, target)
        now = _digest(target)
        status = "missing" if now is None else "same" if now == recorded else "changed"
        rows.append({"key": key, "path": rel, "recorded": recorded, "now": now, "status": status})
    return rows


def _current_record(store: ProvStore) -> RunRecord:
    """A record of this process's environment, to compare before anything runs."""
    from ..fingerprint import distributions, environment
    from ..model import CodeVersion
    from ..schema import current_pin

    dists = distributions()
    return RunRecord(created="", nonce="", code=CodeVersion(commit=None), environment=environment(dists=dists),
                     packages="\n".join(dists), schema=current_pin())


def _execute(argv: list[str], cwd: str, env: dict[str, str], quiet: bool) -> int:
    """Run the command, signals forwarded; its stdout goes to stderr when ``quiet``."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=sys.stderr.fileno() if quiet else None)
    except OSError as exc:
        raise RerunError(f"cannot run {argv[0]!r}: {exc.strerror}; is it installed and on PATH?") from exc
    previous = {sig: signal.signal(sig, lambda s, _f: proc.send_signal(s)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _runs_at(store: ProvStore, commit: str) -> set[str]:
    return set(store.ledger.iter_commit_run_ids(commit))


def _run_command(store: ProvStore, scratch: ProvStore, original: Run, dest: str, cwd: str,
                 overrides: dict[str, Any], quiet: bool) -> tuple[str | None, int]:
    """Execute a ``prov run`` command as a new run recorded here, as ``prov run`` does."""
    from .start import start_run

    rec = original.record
    new = start_run(scratch, name=original.name, experiment=original.experiment,
                    params={**original.get_hyperparameters(), **overrides}, command=list(rec.command),
                    exec_path=rec.code.exec_path, reproduces=original.id, cwd=rec.cwd)
    for key, version in original.state.datasets.items():
        if key.startswith("input/") and version.path and os.path.exists(os.path.join(dest, version.path)):
            new.log_dataset_version(key, os.path.join(dest, version.path))
    new.flush()
    env = dict(os.environ, PROV_RUN_ID=new.id, PROV_PARAMS=codec.encode(overrides).decode())
    env.pop("PROV_REPRODUCES", None)
    started = time.time()
    try:
        code = _execute(list(rec.command), cwd, env, quiet)
    except RerunError:
        new.end("failed", exit_code=127)
        raise
    new.log_attributes({"prov.duration_seconds": round(time.time() - started, 3)})
    for key, version in original.state.datasets.items():
        if key.startswith(OUTPUT_PREFIX) and version.path:
            target = os.path.join(dest, version.path)
            if os.path.exists(target):
                new.log_dataset_version(key, target)
            else:
                new.log_attributes({f"prov.missing_output/{key[len(OUTPUT_PREFIX):]}": True})
    new.end("finished" if code == 0 else ("killed" if code < 0 else "failed"), exit_code=code)
    return new.id, code


def _run_script(store: ProvStore, original: Run, cwd: str, overrides: dict[str, Any],
                quiet: bool) -> tuple[str | None, int]:
    """Execute a script that starts its own run; find that run by ``reproduces``."""
    rec = original.record
    argv = list(rec.command)
    if argv and argv[0] == "python":
        argv[0] = sys.executable
    commit = rec.code.commit or ""
    before = _runs_at(store, commit)
    env = dict(os.environ, PROV_REPRODUCES=original.id, PROV_PARAMS=codec.encode(overrides).decode())
    env.pop("PROV_RUN_ID", None)
    code = _execute(argv, cwd, env, quiet)
    for run_id in sorted(_runs_at(store, commit) - before):
        other = Run.load(store, run_id)
        if other.record.reproduces == original.id:
            return run_id, code
    return None, code


def rerun(store: ProvStore, run_ref: str, *, workdir: str | None = None, keep: bool = False,
          params: dict[str, Any] | None = None, tolerance: Tolerance | None = None, allow_drift: bool = False,
          quiet: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Rebuild, check and execute run ``run_ref`` again; the report (a plain dict).

    Raises ``RerunError`` when the run cannot be rebuilt or executed, ``DriftError``
    when an input changed (unless ``allow_drift``)."""
    from ..store.prov_store import ProvStore

    say = progress or (lambda _text: None)
    original = Run.load(store, resolve_run_id(store.ledger, run_ref))
    rec = original.record
    why = rerunnable(rec)
    if why:
        raise RerunError(f"run {original.id[:12]} cannot be rerun: {why}")
    if store.work_tree is None:
        raise RerunError("prov rerun needs a repository with a work tree")
    overrides = dict(params or {})
    if workdir is not None:
        dest = os.path.abspath(workdir)
        if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
            raise UsageError(f"--in {workdir}: the directory exists and is not empty; name a new or empty directory")
    else:
        dest = tempfile.mkdtemp(prefix="prov-rerun-")
    made = False
    try:
        patch = _rebuild(store, original.id, rec, dest)
        made = True
        _apply(original.id, rec, dest, patch)
        say(f"rebuilt {rec.code.commit[:12] if rec.code.commit else ''}"
            + (" + recorded patch" if rec.code.patch else "") + f" in {dest}")
        inputs = _check_inputs(store, original, dest)
        drifted = [r for r in inputs if r["status"] in ("changed", "missing")]
        if drifted and not allow_drift:
            first = drifted[0]
            more = f" (and {len(drifted) - 1} more)" if len(drifted) > 1 else ""
            error = DriftError(f"input {first['path']} {first['status']}: recorded {first['recorded']}, now "
                               f"{first['now'] or 'missing'}{more}; restore it, or pass --allow-drift to rerun anyway")
            error.report = _stopped_report(original, inputs, drifted)  # type: ignore[attr-defined]
            raise error
        environment = compare.environment_changes(rec, _current_record(store))
        cwd = os.path.normpath(os.path.join(dest, rec.cwd or "."))
        if not (cwd == dest or cwd.startswith(dest + os.sep)) or not os.path.isdir(cwd):
            raise RerunError(f"the working directory of run {original.id[:12]} ({rec.cwd}) is not in its commit")
        say("executing: " + " ".join(rec.command))
        if rec.launcher == "script":
            new_id, exit_code = _run_script(store, original, cwd, overrides, quiet)
        else:
            new_id, exit_code = _run_command(store, ProvStore.open(dest), original, dest, cwd, overrides, quiet)
        report = _report(store, original, new_id, exit_code, inputs, environment, overrides, tolerance)
        report["worktree"] = dest if keep else None
        if new_id is not None:
            _annotate(store, new_id, original.id, report)
        return report
    finally:
        if not keep:
            if made:
                _remove(store, dest)
            elif workdir is None:
                shutil.rmtree(dest, ignore_errors=True)


def _stopped_report(original: Run, inputs: list[dict[str, Any]], drifted: list[dict[str, Any]]) -> dict[str, Any]:
    """The report of a rerun stopped before executing because inputs changed (what
    ``--json`` prints with the error): verdict ``stopped``, cause ``data``."""
    rec = original.record
    return {"run": original.id, "rerun": None, "commit": rec.code.commit, "patch": rec.code.patch,
            "command": list(rec.command), "exit_code": None, "variant": None, "inputs": inputs,
            "code": [], "data": [{"what": r["path"] or r["key"], "a": r["recorded"], "b": r["now"]} for r in drifted],
            "environment": [], "params": [], "results": [], "verdict": "stopped", "causes": ["data"],
            "suggestion": "restore the inputs, or pass --allow-drift to rerun anyway"}


def _report(store: ProvStore, original: Run, new_id: str | None, exit_code: int, inputs: list[dict[str, Any]],
            environment: list[dict[str, Any]], overrides: dict[str, Any],
            tolerance: Tolerance | None) -> dict[str, Any]:
    rec = original.record
    report: dict[str, Any] = {
        "run": original.id, "rerun": new_id, "commit": rec.code.commit, "patch": rec.code.patch,
        "command": list(rec.command), "exit_code": exit_code, "variant": overrides or None, "inputs": inputs,
    }
    data = [{"what": r["path"] or r["key"], "a": r["recorded"], "b": r["now"]}
            for r in inputs if r["status"] in ("changed", "missing")]
    if new_id is None:
        results = [{"kind": "exit", "key": "run", "a": original.id, "b": None, "status": compare.DRIFTED},
                   {"kind": "exit", "key": "exit code", "a": original.state.exit_code or 0, "b": exit_code,
                    "status": compare.IDENTICAL if exit_code == (original.state.exit_code or 0) else compare.DRIFTED}]
        code: list[dict[str, Any]] = []
        params = compare.param_changes(original.get_hyperparameters(),
                                       {**original.get_hyperparameters(), **overrides})
    else:
        new = Run.load(store, new_id)
        if new.record.environment is not None:
            environment = compare.environment_changes(rec, new.record)
        results = compare.result_changes(original.state, new.state, tolerance)
        if rec.launcher == "script":  # the process's exit code was not recorded: its run's status stands for it
            results = [r for r in results if r["key"] != "exit code"]
            if original.state.status == "finished":  # a script whose run finished exited 0
                results.append({"kind": "exit", "key": "process exit code", "a": 0, "b": exit_code,
                                "status": compare.IDENTICAL if exit_code == 0 else compare.DRIFTED})
        code = compare.code_changes(rec, new.record)
        params = compare.param_changes(original.get_hyperparameters(), new.get_hyperparameters())
        seen = {row["what"] for row in data}
        data += [row for row in compare.data_changes(original.state, new.state)
                 if row["what"] not in seen and original.state.datasets.get(row["what"], None) is not None
                 and (original.state.datasets[row["what"]].path or row["what"]) not in seen]
        report["seeds"] = {"original": original.get_seeds(), "rerun": new.get_seeds()}
    verdict = compare.verdict(results)
    report.update({"code": code, "data": data, "environment": environment, "params": params,
                   "results": results, "verdict": verdict, "causes": [], "suggestion": None})
    if verdict == compare.DRIFTED:
        report["causes"] = compare.causes(code=code, data=data, environment=environment, params=params)
        if report["causes"] == ["nondeterminism"]:
            seeds = report.get("seeds") or {"original": {}, "rerun": {}}
            report["suggestion"] = compare.seed_suggestion(seeds["original"], seeds["rerun"])
    return report


def _annotate(store: ProvStore, new_id: str, original_id: str, report: dict[str, Any]) -> None:
    """The new run's lineage names the run it reproduces; its attributes, the verdict."""
    new = Run.load(store, new_id)
    lineage = new.state.lineage
    key = f"run:{original_id}"
    if key not in lineage.inputs:
        new.state.lineage = Lineage(inputs={**lineage.inputs, key: []}, outputs=dict(lineage.outputs))
    new.log_attributes({"prov.rerun": {"reproduces": original_id, "verdict": report["verdict"],
                                       "causes": report["causes"], "variant": report["variant"]}})
