"""``prov run`` (wrap a command as a run) and ``prov runs`` (list, show, diff)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

import click

from ..errors import UsageError
from . import render
from .options import with_repository

if TYPE_CHECKING:
    from ..api import Repository

__all__ = ["run_command", "runs_group"]


def _parse_param(text: str) -> tuple[str, Any]:
    key, eq, raw = text.partition("=")
    if not eq or not key:
        raise UsageError(f"--param {text!r} must look like key=value")
    import msgspec

    try:  # numbers, booleans, JSON; anything else stays a string
        value = msgspec.json.decode(raw) if raw and raw[0] in '-0123456789tfn[{"' else raw
    except msgspec.DecodeError:
        value = raw
    return key, value


def _exec_path(command: tuple[str, ...]) -> str:
    """The script an interpreter runs (``python train.py`` -> train.py), else the program."""
    for arg in command[1:]:
        if not arg.startswith("-") and os.path.isfile(arg):
            return arg
    return command[0]


def run_summary(run: Any) -> dict[str, Any]:
    state = run.state
    return {
        "id": run.id,
        "name": state.name,
        "experiment": state.experiment,
        "status": state.status,
        "created": run.record.created,
        "ended": state.ended,
        "commit": run.record.code.commit,
        "dirty": run.record.code.is_dirty,
        "params": run.get_hyperparameters(),
        "metrics": {k: m.value for k, m in sorted(state.metrics.items())},
        "tags": state.tags,
    }


@click.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--name", default="", help="Run name (default: the command's name).")
@click.option("--experiment", default="", help="Experiment the run belongs to.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A hyperparameter (repeatable).")
@click.option("--input", "inputs", multiple=True, metavar="PATH", help="A file read by the command; its sha256 is recorded before (repeatable).")
@click.option("--output", "outputs", multiple=True, metavar="PATH", help="A file written by the command; its sha256 is recorded after (repeatable).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@with_repository()
def run_command(name: str, experiment: str, params: tuple[str, ...], inputs: tuple[str, ...],
                outputs: tuple[str, ...], command: tuple[str, ...], repo: Repository) -> None:
    """Run COMMAND as a recorded run and exit with its exit code.

    Records the scrubbed command line, exit code, duration, sha256 of inputs before
    and outputs after, the code version and the environment. Put the command after
    ``--``: ``prov run --param lr=0.1 -- python train.py``.
    """
    parsed = dict(_parse_param(p) for p in params)
    for path in inputs:
        if not os.path.isfile(path) and not os.path.isdir(path):
            raise UsageError(f"--input {path!r} does not exist")
    run = repo.start_run(name=name or os.path.basename(command[0]), experiment=experiment,
                         params=parsed, command=list(command), exec_path=_exec_path(command))
    for path in inputs:
        run.log_dataset_version(f"input/{path}", path)
    run.flush()  # visible to other processes (and to nested runs) while the command runs
    env = dict(os.environ, PROV_RUN_ID=run.id)
    started = time.time()
    try:
        proc = subprocess.Popen(list(command), env=env)
    except OSError as exc:
        run.log_attributes({"prov.error": f"cannot start {command[0]}: {exc.strerror}"})
        run.end("failed", exit_code=127)
        raise UsageError(f"cannot run {command[0]!r}: {exc.strerror}") from exc
    previous = {sig: signal.signal(sig, lambda s, _f: proc.send_signal(s)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    run.log_attributes({"prov.duration_seconds": round(time.time() - started, 3)})
    for path in outputs:
        if os.path.exists(path):
            run.log_dataset_version(f"output/{path}", path)
        else:
            run.log_attributes({f"prov.missing_output/{path}": True})
    status = "finished" if code == 0 else ("killed" if code < 0 else "failed")
    run.end(status, exit_code=code)
    click.echo(f"prov: run {run.id[:12]} {status} (exit {code})", err=True)
    raise SystemExit(code if code >= 0 else 128 - code)


def _parse_where(params: dict[str, Any]) -> None:
    """--where's filter becomes its query dict before the repository is opened."""
    if params["where"] is not None:
        from ..index import parse_filter

        params["where"] = parse_filter(params["where"])


@click.group("runs", invoke_without_command=True)
@click.option("--experiment", help="Only runs of this experiment.")
@click.option("--status", type=click.Choice(["running", "finished", "failed", "killed", "crashed"]), help="Only runs with this status.")
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted runs.")
@click.option("--where", "where", metavar="FILTER",
              help="Only runs matching FILTER, e.g. \"params.lr > 0.01 and metrics.acc >= 0.9\".")
@click.option("--order-by", "order_by", metavar="ORDER", help="Sort by FIELD [asc|desc], comma-separated, e.g. \"metrics.acc desc\" (default: newest first).")
@click.option("--limit", type=click.IntRange(min=0), help="Show at most this many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
@with_repository(before=_parse_where)
def runs_group(ctx: click.Context, experiment: str | None, status: str | None, include_deleted: bool,
               where: dict[str, Any] | None, order_by: str | None, limit: int | None, as_json: bool,
               repo: Repository | None) -> None:
    """List runs (newest first); see also 'prov runs show' and 'prov runs diff'.

    --where takes filters in MLflow's dialect (what mlflow.search_runs takes, with the
    same meaning: like, ilike, in, is null, params compared as strings,
    attributes.run_name/status/start_time) over params.*, metrics.*, attributes.*,
    tags, tags.*, inputs.*, outputs.*, status, experiment, name, created and commit,
    combined with and, or, not and parentheses. The query index under .git/prov is used.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..index import parse_order

    clauses = [where or {}]
    clauses += [{"experiment": experiment}] if experiment is not None else []
    clauses += [{"status": status}] if status is not None else []
    query = {"$and": [c for c in clauses if c]} if any(clauses) else {}
    # streamed: each page of runs is printed as it is read, whatever the ledger's size
    runs = repo.iter_runs(query, parse_order(order_by), limit, include_deleted=include_deleted)
    if as_json:
        render.emit_json_array(run_summary(r) for r in runs)
    else:
        _print_runs(runs, any(v is not None for v in (experiment, status, where, limit)) or include_deleted)
    for run_id, why in sorted(repo.index().skipped().items()):
        click.echo(f"prov: warning: run {run_id[:12]} left out: {why}; see prov verify", err=True)


def _print_runs(runs: Any, filtered: bool) -> None:
    first = next(runs, None)
    if first is None:
        if filtered:
            click.echo("no runs match (drop a filter, or see every run with 'prov runs')")
        else:
            click.echo("no runs yet (start one with gitprov.start_run() or 'prov run -- CMD')")
        return
    for r in itertools.chain([first], runs):
        metrics = ", ".join(f"{k}={m.value:.4g}" for k, m in sorted(r.state.metrics.items())[:3])
        label = r.state.name + (f" [{r.state.experiment}]" if r.state.experiment else "")
        click.echo(f"{r.id[:12]}  {r.state.status:8}  {r.record.created[:19]}  {label}  {metrics}".rstrip())


@runs_group.command("show")
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@with_repository()
def runs_show(run_id: str, as_json: bool, repo: Repository) -> None:
    """Show one run (RUN is an id or a unique prefix)."""
    from .. import codec

    run = repo.get_run(run_id)
    if as_json:
        render.emit_json({"id": run.id, "record": codec.to_plain(run.record), "state": codec.to_plain(run.state)})
        return
    click.echo(render.render_run(run))


@runs_group.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@with_repository()
def runs_diff(a: str, b: str, as_json: bool, repo: Repository) -> None:
    """Compare two runs: params, metrics, code, data and environment (each package
    that differs), and name what can explain different results: code, data,
    environment, params, or nondeterminism when nothing else differs."""
    from ..runs.compare import explain

    run_a, run_b = repo.get_run(a), repo.get_run(b)
    rows = render.diff_runs(run_a, run_b)
    why = explain(run_a, run_b)
    if why["causes"]:
        rows.append({"section": "cause", "key": ", ".join(why["causes"]), "a": None, "b": why["suggestion"]})
    if as_json:
        render.emit_json(rows)
        return
    if not rows:
        click.echo("no differences")
    for row in rows:
        if row["section"] == "cause":
            click.echo(f"cause: {row['key']}" + (f" ({row['b']})" if row["b"] else ""))
            continue
        click.echo(f"{row['section']:11} {row['key']:30} {render.short(row['a']):>24}  →  {render.short(row['b'])}")
