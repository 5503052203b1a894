"""``prov sync``: mirror runs to MLflow or Weights & Biases, and show what is synced."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..errors import SyncError
from . import render
from .options import with_repository

if TYPE_CHECKING:
    from ..api import Repository

__all__ = ["sync_group"]


def _quiet_trackers() -> None:
    """The trackers' own terminal chatter (MLflow's "Creating initial MLflow database
    tables...", W&B's "git root … does not exist") would mix with the report; users
    turn it back on with MLFLOW_LOGGING_LEVEL=INFO or WANDB_SILENT=false."""
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _common(f: Any) -> Any:
    f = click.option("--interval", type=click.FloatRange(min=0.1), default=5.0, show_default=True, metavar="S",
                     help="With --watch: seconds between looks at the ledger.")(f)
    f = click.option("--watch", is_flag=True,
                     help="Keep syncing as the ledger moves, until SIGINT or SIGTERM (exit 0).")(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (with --watch: one line per sync).")(f)
    f = click.option("--dry-run", is_flag=True, help="Show what would be written; write nothing.")(f)
    f = click.option("--run", "run_ids", multiple=True, metavar="ID", help="Sync only this run (id or prefix; repeatable).")(f)
    f = click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
                     help="Retries per run on connection errors (exponential backoff).")(f)
    f = click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True,
                     help="Runs synced in parallel.")(f)
    f = click.option("--progress/--no-progress", default=None,
                     help="Say on stderr what is about to be synced, before the tracker is contacted, and "
                          "show a progress bar (default: when stderr is a terminal, as git does).")(f)
    return f


def _run(repo: Any, make_bridge: Callable[[], Any], target: tuple[str, str], workers: int, retries: int,
         dry_run: bool, run_ids: tuple[str, ...], as_json: bool, watch: bool = False, interval: float = 5.0,
         progress: bool | None = None) -> None:
    """One sync (or ``--watch``) to the bridge ``make_bridge`` makes; ``target``: its kind
    and address (no credentials), known before the bridge's module is imported."""
    if watch:
        if dry_run:
            raise click.UsageError("--watch and --dry-run do not go together")
        _watch(repo, make_bridge(), interval, as_json, workers=workers, retries=retries,
               run_ids=list(run_ids) or None)
        return

    import json
    import tempfile

    from ..sync.plan import plan_size

    terminal = sys.stderr.isatty()
    if progress is None:
        progress = terminal
    total = 0
    if progress:
        # said before the tracker's library (or even the bridge) is imported and its server
        # contacted: from the run index alone, the first thing a sync of a big ledger shows
        total = plan_size(repo.store, list(run_ids) or None)
        click.echo(_first_line(target, total, dry_run), err=True)
    from ..sync.engine import sync_runs

    bridge = make_bridge()
    show_bar = progress and terminal and not as_json
    # results are not kept in memory: they are put aside in a temporary file and printed
    # once the sync is over, so a sync that stops (an unreachable tracker, found when the
    # first run needs it) prints nothing but its one line, and the JSON document's counts
    # can come before them
    with tempfile.TemporaryFile("w+", encoding="utf-8") as aside:
        rows = _Rows(aside, as_json)
        options = {"workers": workers, "retries": retries, "dry_run": dry_run, "run_ids": list(run_ids) or None,
                   "keep_results": False}
        if show_bar:
            with click.progressbar(length=total, label=f"syncing to {bridge.kind}", file=sys.stderr) as bar:
                report = sync_runs(repo, bridge, on_result=lambda r: (rows.add(r), bar.update(1)), **options)
        else:
            report = sync_runs(repo, bridge, on_result=rows.add, **options)
        aside.seek(0)
        if as_json:
            render.emit_json_with(report.to_json(), "runs", map(json.loads, aside))
        else:
            sys.stdout.writelines(aside)
            click.echo(_summary(report))
    for line in report.warnings:
        click.echo(f"prov: warning: {line}", err=True)
    if report.failed_count:
        raise SyncError(f"{report.failed_count} of {report.total} run(s) not synced; "
                        "they stay pending: run the sync again ('prov sync status' lists them)")


def _first_line(target: tuple[str, str], total: int, dry_run: bool) -> str:
    """``prov: sync mlflow: 100,000 runs to compare; syncing what changed to <address>``
    (the address as the sync state keys it: never credentials)."""
    kind, address = target
    what = "checking what would sync" if dry_run else "syncing what changed"
    return f"prov: sync {kind}: {total:,} run{'' if total == 1 else 's'} to compare; {what} to {address}"


class _Rows:
    """Each result as it comes, written to ``out``: a table row (after the header) or a JSON line."""

    def __init__(self, out: Any, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.header = not as_json

    def add(self, result: Any) -> None:
        import json

        if self.as_json:
            self.out.write(json.dumps(result.to_json()) + "\n")
            return
        if self.header:
            self.out.write(_HEADER + "\n")
            self.header = False
        self.out.writelines(line + "\n" for line in _row(result))
        self.out.flush()


def _watch(repo: Any, bridge: Any, interval: float, as_json: bool, **options: Any) -> None:
    """Sync whenever the ledger moves; SIGINT/SIGTERM stop it cleanly (exit 0)."""
    import json
    import signal
    import threading

    from ..sync.watch import watch

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_report(report: Any) -> None:
        if as_json:
            from ..codec import to_output

            sys.stdout.write(json.dumps(to_output(report.to_json()), sort_keys=True) + "\n")
        else:
            click.echo(render_report(report, changed_only=True))
        for line in report.warnings:
            click.echo(f"prov: warning: {line}", err=True)
        sys.stdout.flush()

    def on_busy(exc: Exception) -> None:
        click.echo(f"prov: warning: {exc}; trying again in {interval:g}s", err=True)

    if not as_json:
        click.echo(f"watching {repo.ledger.ref} every {interval:g}s; syncing to {bridge.kind} {bridge.address} "
                   "(Ctrl-C to stop)", err=True)
    try:
        watch(repo, bridge, stop, interval=interval, on_report=on_report, on_busy=on_busy, **options)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not as_json:
        click.echo("stopped; runs not synced yet stay pending ('prov sync status')", err=True)


def render_report(report: Any, changed_only: bool = False) -> str:
    """The per-run result table and a one-line summary (``changed_only``: rows of runs
    that were written, failed or skipped)."""
    lines = []
    rows = [r for r in report.results if not changed_only or r.status != "unchanged"]
    if rows:
        lines.append(_HEADER)
    for r in rows:
        lines += _row(r)
    lines.append(_summary(report))
    return "\n".join(lines)


_HEADER = f"{'RUN':12}  {'STATUS':10}  {'EXTERNAL ID':32}  {'NAME':16}  WRITTEN"


def _row(r: Any) -> list[str]:
    written = " ".join(f"{k}={v}" for k, v in r.written.items()) or "-"
    lines = [f"{r.run_id[:12]:12}  {r.status:10}  {(r.external_id or '-')[:32]:32}  {r.name[:16]:16}  {written}"]
    if r.error:
        lines.append(f"{'':12}  error: {r.error}")
    return lines


def _summary(report: Any) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts().items())) or "no runs"
    verb = "would sync" if report.dry_run else "synced"
    return f"{verb} to {report.kind} {report.target}: {counts} ({report.seconds:.1f}s)"


@click.group("sync")
def sync_group() -> None:
    """Mirror runs to MLflow or Weights & Biases (idempotent and incremental)."""


@sync_group.command("mlflow")
@click.option("--tracking-uri", metavar="URI",
              help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else a store in .git/prov/mlflow).")
@click.option("--experiment-prefix", default="", metavar="P", help="Prefix for the MLflow experiment names.")
@click.option("--artifact-location", metavar="URI", help="Artifact root for experiments this sync creates.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=8.0, show_default=True, metavar="S",
              help="Seconds to wait for the tracking server (first contact in all, then each request).")
@click.option("--register-models", is_flag=True,
              help="Also register each lineage model in MLflow's model registry (a version per prov version).")
@_common
@with_repository()
def sync_mlflow_command(tracking_uri: str | None, experiment_prefix: str, artifact_location: str | None,
                        timeout: float, register_models: bool, workers: int, retries: int,
                        run_ids: tuple[str, ...], dry_run: bool, as_json: bool, watch: bool, interval: float,
                        progress: bool | None, repo: Repository) -> None:
    """Mirror every run to MLflow: params, metric histories, tags, git commit, artifacts, datasets.

    A run is found again by its prov.run_id tag, so a repeated sync writes only what is new.
    A server that cannot be reached ends the sync with exit code 10 within --timeout seconds.
    """
    from ..scrub import scrub_url
    from ..sync.mlflow_store import require_mlflow, resolve_tracking_uri

    _quiet_trackers()
    require_mlflow()
    uri = resolve_tracking_uri(tracking_uri, repo.store)

    def bridge() -> Any:
        from ..sync.mlflow_bridge import MlflowBridge

        return MlflowBridge(uri, experiment_prefix=experiment_prefix, artifact_location=artifact_location,
                            store=repo.store, retries=retries, timeout=timeout, register_models=register_models)

    _run(repo, bridge, ("mlflow", scrub_url(uri)), workers, retries, dry_run, run_ids, as_json, watch, interval,
         progress)


@sync_group.command("wandb")
@click.option("--project", required=True, metavar="P", help="W&B project.")
@click.option("--entity", metavar="E", help="W&B entity (user or team).")
@click.option("--dir", "directory", metavar="PATH",
              help="Where W&B keeps its run files (default: $WANDB_DIR, else .git/prov).")
@_common
@with_repository()
def sync_wandb_command(project: str, entity: str | None, directory: str | None, workers: int, retries: int,
                       run_ids: tuple[str, ...], dry_run: bool, as_json: bool, watch: bool, interval: float,
                       progress: bool | None, repo: Repository) -> None:
    """Mirror every run to Weights & Biases (offline too: WANDB_MODE=offline).

    Each run gets a W&B run id derived from its prov run id.
    """
    from ..sync.wandb_bridge import WandbBridge

    _quiet_trackers()
    bridge = WandbBridge(project, entity=entity, directory=directory, store=repo.store)
    _run(repo, lambda: bridge, (bridge.kind, bridge.address), workers, retries, dry_run, run_ids, as_json, watch,
         interval, progress)


def _options_apply(params: dict[str, Any]) -> None:
    """Options of the other tracker are refused before the repository is opened."""
    backend = params["backend"]
    others = ("project", "entity") if backend == "mlflow" else ("tracking_uri", "experiment", "artifact_location")
    wrong = ["--" + name.replace("_", "-") for name in others if params[name]]
    if wrong:
        raise click.UsageError(f"{', '.join(wrong)} does not apply to --to {backend}")


@sync_group.command("revision")
@click.argument("revision", default="HEAD")
@click.option("--to", "backend", type=click.Choice(["mlflow", "wandb"]), required=True, help="The tracker.")
@click.option("--tracking-uri", metavar="URI", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or MLflow's default).")
@click.option("--experiment", metavar="NAME", help="MLflow experiment of the new run (default: Default).")
@click.option("--artifact-location", metavar="URI", help="MLflow artifact root, if the experiment is created.")
@click.option("--project", metavar="P", help="W&B project (default: git-prov).")
@click.option("--entity", metavar="E", help="W&B entity (user or team).")
@click.option("--run-id", metavar="ID", help="Add to this existing tracker run instead of starting a new one.")
@click.option("--run-name", metavar="NAME", help="Name of the new tracker run.")
@click.option("--json", "as_json", is_flag=True, help="Print the run id and the bundle as JSON.")
@with_repository(before=_options_apply)
def sync_revision_command(revision: str, backend: str, tracking_uri: str | None, experiment: str | None,
                          artifact_location: str | None, project: str | None, entity: str | None,
                          run_id: str | None, run_name: str | None, as_json: bool, repo: Repository) -> None:
    """Log REVISION (default HEAD) to a tracker run: the commit, not a copy of the data.

    The run gets a provenance bundle (commit id, lexicon tree id and manifest hash,
    schema version, work tree) as an artifact, so it pins exactly what its records
    were made against.
    """
    from ..integrations.tracking import log_revision, provenance_bundle

    options: dict[str, Any] = {"run_id": run_id, "run_name": run_name}
    _quiet_trackers()
    if backend == "mlflow":
        from ..sync.mlflow_store import local_store

        # files prov makes stay out of the work tree (.git/prov/mlflow by default)
        tracking_uri, artifact_location = local_store(repo.store, tracking_uri, artifact_location)
        options.update(tracking_uri=tracking_uri, experiment=experiment, artifact_location=artifact_location)
    else:
        options.update(project=project, entity=entity,
                       directory=os.environ.get("WANDB_DIR") or repo.git.prov_dir())
    bundle = provenance_bundle(repo, revision)
    external = log_revision(repo, bundle.revision, backend, **{k: v for k, v in options.items() if v is not None})
    if as_json:
        render.emit_json({"backend": backend, "external_id": external.run_id, "artifact": str(external),
                          "bundle": bundle.to_json()})
    else:
        click.echo(f"logged revision {bundle.revision[:12]} to {backend} run {external.run_id} "
                   f"(lexicon {bundle.lexicon[:19]}, schema version {bundle.schema_version})")


@sync_group.command("auto")
@click.option("--lock-wait", type=click.FloatRange(min=0), default=600.0, show_default=True, metavar="S",
              help="Seconds to wait for another sync to the same target to finish.")
@with_repository()
def sync_auto_command(lock_wait: float, repo: Repository) -> None:
    """Sync to every target in git config prov.sync.auto (what the post-commit hook
    starts in the background; its output goes to .git/prov/sync/auto.log).

    Target options come from git config: prov.sync.mlflow.trackingUri,
    .experimentPrefix, .artifactLocation; prov.sync.wandb.project, .entity;
    prov.sync.workers.
    """
    from ..sync.auto import configured_targets, run

    _quiet_trackers()
    if not configured_targets(repo.git.config):
        raise SyncError("no auto-sync target: set one with 'git config prov.sync.auto mlflow' (or wandb)")
    code = run(repo, lock_wait=lock_wait, out=click.echo)
    if code:
        raise SyncError("some runs were not synced; they stay pending ('prov sync status' lists them)")


@sync_group.command("status")
@click.argument("target", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@with_repository()
def sync_status_command(target: str | None, as_json: bool, repo: Repository) -> None:
    """List synced, pending and failed runs per target (TARGET: mlflow, wandb or a state key)."""
    from ..sync.engine import sync_status

    statuses = sync_status(repo, target)
    if as_json:
        render.emit_json([s.to_json() for s in statuses])
        return
    if not statuses:
        click.echo("no sync yet" + (f" to {target}" if target else "") + "; run 'prov sync mlflow' or 'prov sync wandb'")
        return
    for s in statuses:
        click.echo(f"{s.kind} {s.target}: {len(s.synced)} synced, {len(s.pending)} pending, {len(s.failed)} failed")
        for run_id in s.pending:
            click.echo(f"  pending  {run_id[:12]}")
        for run_id, error in s.failed.items():
            click.echo(f"  failed   {run_id[:12]}  {error}")
