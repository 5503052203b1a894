"""``prov status``: provenance not delivered yet (remotes, outbox, trackers, relinks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from . import render
from .options import with_repository

if TYPE_CHECKING:
    from ..api import Repository
    from ..status import ProvStatus

__all__ = ["status_command"]

_SHOWN = 5


def _ids(ids: list[str]) -> str:
    shown = ", ".join(i[:12] for i in ids[:_SHOWN])
    return shown + (f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else "")


def render_status(status: ProvStatus) -> list[str]:
    """The text ``prov status`` prints."""
    lines: list[str] = []
    for r in status.remotes:
        if not r.exchanged:
            lines.append(f"remote {r.remote}: never pushed to or fetched from here; 'prov push {r.remote}' sends "
                         "everything")
        elif r.clean:
            lines.append(f"remote {r.remote}: up to date (as last seen; 'prov fetch {r.remote}' looks again)")
        else:
            lines.append(f"remote {r.remote}:")
        if r.runs_added:
            lines.append(f"  {len(r.runs_added)} run(s) not pushed: {_ids(r.runs_added)}")
        if r.runs_changed:
            lines.append(f"  {len(r.runs_changed)} run(s) changed since pushed: {_ids(r.runs_changed)}")
        if r.notes:
            lines.append(f"  {len(r.notes)} commit note(s) (captures, links) not pushed: {_ids(r.notes)}")
        if r.pending is not None:
            p = r.pending
            retry = ("'prov push URL' (the URL with its credentials) retries it" if p.credentials_dropped
                     else f"'git push' or 'prov push {r.remote}' retries it")
            lines.append(f"  push pending since {p.since}, {p.attempts} failed attempt(s); {retry}")
            lines.append(f"    last error: {p.last_error}")
    for t in status.trackers:
        what = f"{t.kind} {t.target}" if t.target != t.kind else t.kind
        if t.never_synced:
            lines.append(f"sync {what}: never synced; {len(t.unsynced)} run(s) to sync ('prov sync {t.kind}')")
            continue
        if not (t.unsynced or t.failed):
            lines.append(f"sync {what}: every run synced")
            continue
        lines.append(f"sync {what}: {len(t.unsynced)} run(s) not synced, {len(t.failed)} failed "
                     f"('prov sync {t.kind}')")
        if t.unsynced:
            lines.append(f"  not synced: {_ids(t.unsynced)}")
        for run_id, error in list(t.failed.items())[:_SHOWN]:
            lines.append(f"  failed {run_id[:12]}: {error}")
    if status.relinks:
        runs = sum(len(r.runs) for r in status.relinks)
        lines.append(f"relink: {runs} run(s) on {len(status.relinks)} commit(s) no branch or tag reaches and no "
                     "rewrite link carries on")
        for r in status.relinks[:_SHOWN]:
            lines.append(f"  {r.commit[:12]}: {_ids(r.runs)}")
        lines.append("  after a squash merge: prov relink OLD_BASE..OLD_TIP NEW_COMMIT; after filter-repo or BFG: "
                     "prov relink --commit-map FILE")
    if not status.remotes and not status.trackers and not status.relinks:
        lines.append("no remote, no tracker, nothing to relink")
    return lines


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@with_repository()
def status_command(as_json: bool, repo: Repository) -> None:
    """Show provenance not delivered yet: per remote, runs and commit notes it lacks (as
    last seen, no network) and pushes waiting in the outbox with their last error; per
    tracker, runs not synced; commits awaiting 'prov relink'.
    """
    status = repo.status()
    if as_json:
        render.emit_json(status.to_json())
        return
    for line in render_status(status):
        click.echo(line)
