"""``prov fetch / pull / push`` (provenance through git remotes), ``prov relink`` and
``prov keep`` (provenance across history rewrites and garbage collection)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from . import render
from .options import with_repository

if TYPE_CHECKING:
    from ..api import Repository

__all__ = ["fetch_command", "keep_command", "pull_command", "push_command", "relink_command"]

_REMOTE = click.argument("remote", required=False, metavar="[REMOTE]")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print what moved as JSON.")


def _short(oid: str | None) -> str:
    return oid[:12] if oid else "(none)"


def _terminal() -> Any:
    """stderr when it is a terminal (progress is shown there), else None (quiet)."""
    import sys

    return sys.stderr if sys.stderr.isatty() else None


def _timed(call: Any) -> Any:
    """``call()``'s result, with the seconds it took as ``elapsed``."""
    import time

    start = time.monotonic()
    result = call()
    result.elapsed = time.monotonic() - start
    return result


def _print(result: Any, as_json: bool, verb: str) -> None:
    if as_json:
        render.emit_json(result.to_json())
        return
    from ..scrub import scrub_url

    where = scrub_url(result.remote)
    lines = []
    for phase, outcomes in (("fetched", result.fetched), ("merged", result.merged), ("pushed", result.pushed)):
        for o in outcomes:
            if o.action in ("up to date", "absent") or o.before == o.after:
                continue
            lines.append(f"  {phase:<8} {o.ref:<18} {_short(o.before)} -> {_short(o.after)} ({o.action})")
    if not lines:
        click.echo(f"{verb} {where}: everything up to date")
        return
    click.echo(f"{verb} {where}:")
    for line in lines:
        click.echo(line)
    if result.runs_added or result.notes_changed:
        click.echo(f"  {len(result.runs_added)} new run(s), {result.notes_changed} note(s) added or changed locally")
    if result.push_attempts > 1:
        click.echo(f"  pushed after {result.push_attempts} attempts (the remote moved; merged its provenance first)")


@click.command("fetch")
@_REMOTE
@_JSON
@with_repository()
def fetch_command(remote: str | None, as_json: bool, repo: Repository) -> None:
    """Fetch REMOTE's provenance into refs/prov-remotes/REMOTE/ without merging it.

    REMOTE defaults to the current branch's upstream remote, else origin.
    """
    _print(_timed(lambda: repo.fetch(remote, progress=_terminal())), as_json, "fetched from")


@click.command("pull")
@_REMOTE
@click.option("--require-signed/--no-require-signed", "require_signed", default=None,
              help="Refuse provenance not signed by an allowed signer (default: git config prov.pull.requireSigned).")
@_JSON
@with_repository()
def pull_command(remote: str | None, require_signed: bool | None, as_json: bool, repo: Repository) -> None:
    """Fetch REMOTE's provenance, validate it, and merge it into this clone.

    Runs are merged as a union: nothing recorded here is ever overwritten. Data that
    fails validation is rejected whole (exit code 5) and nothing local changes.
    On a terminal, the transfer (git's own progress), validation and merge show
    progress on stderr; --json prints what moved, the runs checked and added, what git
    received and the seconds it took.
    """
    _print(_timed(lambda: repo.pull(remote, progress=_terminal(), require_signed=require_signed)), as_json,
           "pulled from")


@click.command("push")
@_REMOTE
@_JSON
@with_repository()
def push_command(remote: str | None, as_json: bool, repo: Repository) -> None:
    """Push this clone's provenance to REMOTE (refs/notes/prov, refs/prov/ledger).

    Never forced: when the remote holds provenance this clone lacks, it is pulled and
    merged first, then the push is retried. The pre-push hook does this on 'git push'.
    """
    _print(_timed(lambda: repo.push(remote)), as_json, "pushed to")


def _read_commit_map(params: dict[str, Any]) -> None:
    """--commit-map's file is read before the repository is opened: its text replaces the path."""
    from ..errors import UsageError

    path = params["commit_map"]
    if path is not None:
        try:
            with click.open_file(path, "r", encoding="utf-8", errors="replace") as f:
                params["commit_map"] = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read commit map {path}: {exc.strerror}") from exc


@click.command("relink")
@click.argument("old_range", required=False, metavar="OLD_RANGE")
@click.argument("new_commit", required=False, metavar="NEW_COMMIT")
@click.option("--commit-map", "commit_map", type=click.Path(dir_okay=False, allow_dash=True),
              help="A file of 'OLD NEW' commit ids (git filter-repo's commit-map, BFG's object-id map); - for stdin.")
@_JSON
@with_repository(before=_read_commit_map)
def relink_command(old_range: str | None, new_commit: str | None, commit_map: str | None, as_json: bool,
                   repo: Repository) -> None:
    """Link NEW_COMMIT to the provenance of the commits in OLD_RANGE.

    For history rewrites no git hook reports, such as a squash merge:
    'prov relink main..feature SQUASH_COMMIT' copies each old commit's captures and run
    links onto SQUASH_COMMIT, so 'prov show' lists its runs, and records a rewrite link
    on both. OLD_RANGE is A..B, "^A B", or one commit (that commit alone).
    """
    result = repo.relink(old_range, new_commit, commit_map=commit_map)
    if as_json:
        render.emit_json({"new": result.new, "old": result.old, "runs": result.runs})
        return
    targets = ", ".join(_short(n) for n in result.new[:5]) + (" …" if len(result.new) > 5 else "")
    click.echo(f"linked {len(result.old)} old commit(s) to {targets}: {result.runs} run link(s) copied")


@click.command("keep")
@_JSON
@with_repository()
def keep_command(as_json: bool, repo: Repository) -> None:
    """Protect every commit a run was made against from 'git gc' (refs/prov/keep).

    Done on 'prov pull', 'prov push' and 'prov relink' too; 'git config prov.keep false'
    turns it off.
    """
    kept = repo.keep()
    if as_json:
        render.emit_json({"kept": kept})
    else:
        click.echo(f"kept {len(kept)} more commit(s) in refs/prov/keep" if kept else "every commit runs pin is already kept")
