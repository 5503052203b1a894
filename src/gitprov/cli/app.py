"""The click application: every ``prov`` command, thin over ``gitprov.api``.

Exit codes: 0 success; 1 unexpected provenance error; 2 bad usage; 3 not a usable
repository (none, bare, empty); 4 unknown or ambiguous revision; 5 corrupt or foreign
data under the prov refs; 6 record format newer than this git-prov; 7 cannot write
(read-only repository, lock held); 8 ``verify`` found problems; 9 invalid configuration;
10 a sync to a tracker failed (extra missing, tracker unreachable, a run not synced), or an
export's library is missing or its endpoint unreachable;
11 a git remote could not be reached or refused a fetch or push; 12 ``prov rerun``: an
input changed, or ``--check`` found drift; 13 ``prov rerun``: the run cannot be rebuilt.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from .._version import __version__
from ..errors import ProvError, VerificationError
from . import render
from .options import with_repository

if TYPE_CHECKING:
    from ..api import Repository

__all__ = ["cli"]


class ProvGroup(click.Group):
    """Turns a ``ProvError`` into one line on stderr and its documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProvError as exc:
            if ctx.params.get("debug") or os.environ.get("PROV_DEBUG"):
                raise
            from ..runs import open_runs

            open_runs.abandon()  # a wrapper run that could not be written: one line, not a second at exit
            click.echo(f"prov: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:
            ctx.exit(0)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


@click.group(cls=ProvGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="git-prov", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """git-prov: provenance of commits and ML runs, stored inside the git repository."""


@cli.command()
@click.option("--no-hooks", is_flag=True, help="Do not install the git hooks.")
@click.option("--pull/--no-pull", "pull", default=None,
              help="Fetch and merge the remote's provenance now (default: ask on a terminal).")
@json_option
def init(no_hooks: bool, pull: bool | None, as_json: bool) -> None:
    """Prepare this repository: lexicon, notes-rewrite config, ledger and hooks.

    In a clone, it offers to pull the remote's provenance ('prov pull').
    """
    import sys

    from ..api import Repository
    from ..api import init as do_init

    result = do_init(os.getcwd(), hooks=not no_hooks)
    repo = Repository(result.work_tree)
    remote = _offer_remote(repo)
    if remote and pull is None and not as_json and sys.stdin.isatty() and sys.stdout.isatty():
        pull = click.confirm(f"fetch and merge the provenance of remote '{remote}' now (prov pull)?", default=True)
    pulled = repo.pull(remote) if remote and pull else None
    if as_json:
        from .. import codec

        data = codec.to_plain(result)
        data["pulled"] = pulled.to_json() if pulled else None
        render.emit_json(data)
        return
    click.echo(f"initialised git-prov in {result.work_tree}")
    click.echo(f"  lexicon  {result.lexicon} ({len(result.lexicon_files_written)} files written)")
    for item in result.config_set:
        click.echo(f"  config   {item}")
    click.echo(f"  ledger   refs/prov/ledger at {result.ledger[:12]}")
    for hook in result.hooks:
        click.echo(f"  hook     {hook}")
    if result.lexicon_files_written:
        click.echo("commit .provenance-schema/ so every clone can validate records against it")
    if pulled is not None:
        click.echo(f"  pulled   {len(pulled.runs_added)} run(s), {pulled.notes_changed} note(s) from {remote}")
    elif remote:
        click.echo(f"remote '{remote}' may hold provenance: fetch it with 'prov pull'; 'git push' carries yours")


def _offer_remote(repo: Any) -> str | None:
    """The remote to offer pulling from: the default one, when this clone has no notes yet."""
    from ..errors import UsageError
    from ..exchange.remote import default_remote

    if repo.notes.tip() is not None:
        return None
    try:
        return default_remote(repo.git)
    except UsageError:
        return None


def _missing_alone(params: dict[str, Any]) -> None:
    if params["missing"] is not None and (params["force"] or params["rev"] != "HEAD"):
        raise click.UsageError("--missing takes a RANGE of its own; it cannot be combined with REV or --force")


@cli.command()
@click.argument("rev", default="HEAD")
@click.option("--force", is_flag=True, help="Add a new capture even if the commit has one.")
@click.option(
    "--missing",
    "missing",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[RANGE]",
    help="Backfill every commit in RANGE (default: HEAD's history) that has no capture.",
)
@json_option
@with_repository(before=_missing_alone)
def capture(rev: str, force: bool, missing: str | None, as_json: bool, repo: Repository) -> None:
    """Record the provenance of the commit REV (default HEAD) in its note."""
    if missing is not None:
        backfill = repo.capture_missing(missing or None)
        if as_json:
            render.emit_json(backfill)
        else:
            click.echo(
                f"captured {len(backfill.captured)} commit(s) in {backfill.range}; "
                f"{backfill.already} already had a capture"
            )
        return
    result = repo.capture(rev, force=force)
    if as_json:
        render.emit_json(result)
    else:
        click.echo(render.capture_message(result.commit, result.created))


@cli.command()
@click.argument("rev", default="HEAD")
@json_option
@with_repository()
def show(rev: str, as_json: bool, repo: Repository) -> None:
    """Show what produced the commit REV and which runs used it."""
    render.print_show(repo, rev, as_json)


@cli.command()
@click.argument("range_", metavar="[RANGE]", required=False)
@click.option("-n", "--max-count", type=click.IntRange(min=1), help="Show at most N commits.")
@json_option
@with_repository()
def log(range_: str | None, max_count: int | None, as_json: bool, repo: Repository) -> None:
    """List commits (default: the history of HEAD) with their provenance.

    RANGE is a revision or A..B, as for git log.
    """
    entries = repo.log(range_, max_count)
    if as_json:
        render.emit_json(entries)
    else:
        click.echo(render.render_log(entries))
    render.warn_problems(entries)


def _print_report(report: Any, as_json: bool) -> None:
    if as_json:
        render.emit_json(report)
    else:
        click.echo(
            f"checked {report.notes} notes, {report.records} records, {report.runs} runs "
            f"against {len(report.lexicons)} lexicon(s)"
        )
        if report.signatures:
            click.echo("signatures: " + ", ".join(f"{n} {name}" for name, n in sorted(report.signatures.items())))
        for warning in report.warnings:
            click.echo(f"warning: {warning}")
        for problem in report.problems:
            click.echo(f"problem: {problem}")
        click.echo("ok" if report.ok else f"{len(report.problems)} problem(s) found")
    if not report.ok:
        raise VerificationError(f"{len(report.problems)} problem(s) found")


@cli.command()
@click.option("--signatures", is_flag=True,
              help="Also check that every prov commit is signed by an allowed signer (git's own verification).")
@json_option
@with_repository()
def verify(signatures: bool, as_json: bool, repo: Repository) -> None:
    """Check every stored record: decoding, format versions, pinned schemas, ledger."""
    _print_report(repo.verify(signatures=signatures), as_json)


@cli.group()
def schema() -> None:
    """The lexicon: JSON Schemas every record is written against."""


@schema.command("show")
@json_option
@with_repository(optional=True)
def schema_show(as_json: bool, repo: Repository | None) -> None:
    """Show the lexicon this git-prov writes and the one vendored in the repository."""
    from ..schema import LEXICON_DIR, Lexicon, package_lexicon

    lex = package_lexicon()
    vendored = None
    repo_dir = repo.work_tree if repo is not None else None
    if repo_dir and os.path.isdir(os.path.join(repo_dir, LEXICON_DIR)):
        vendored = Lexicon.from_dir(os.path.join(repo_dir, LEXICON_DIR))
    info = {
        "lexicon": lex.hash,
        "schema_version": lex.manifest["schema_version"],
        "format_version": lex.manifest["format_version"],
        "files": lex.manifest["files"],
        "vendored": vendored.hash if vendored else None,
    }
    if as_json:
        render.emit_json(info)
        return
    click.echo(f"lexicon         {info['lexicon']}")
    click.echo(f"schema version  {info['schema_version']}  (record format {info['format_version']})")
    for name, digest in info["files"].items():
        click.echo(f"  {name:28} sha256:{digest[:16]}…")
    if vendored is None:
        click.echo(f"vendored        none (run 'prov init' to add {LEXICON_DIR}/)")
    elif vendored.hash == lex.hash:
        click.echo(f"vendored        {LEXICON_DIR}/ matches")
    else:
        click.echo(f"vendored        {LEXICON_DIR}/ is {vendored.hash} (run 'prov init' to update)")


@schema.command("verify")
@json_option
@with_repository()
def schema_verify(as_json: bool, repo: Repository) -> None:
    """Validate every stored record against the schema version it pins."""
    _print_report(repo.verify(), as_json)


@cli.command()
@click.option("--keep", is_flag=True, help="Keep the demo repository and print its path.")
def demo(keep: bool) -> None:
    """Build a throwaway repository, commit, capture and show its provenance."""
    from .demo import run_demo

    run_demo(keep=keep, echo=click.echo)


from .runs_cmd import run_command, runs_group  # noqa: E402

cli.add_command(run_command)
cli.add_command(runs_group)

from .hooks_cmd import hooks as hooks_group  # noqa: E402

cli.add_command(hooks_group)

from .sync_cmd import sync_group  # noqa: E402

cli.add_command(sync_group)

from .lineage_cmd import lineage_command  # noqa: E402

cli.add_command(lineage_command)

from .remote_cmd import fetch_command, keep_command, pull_command, push_command, relink_command  # noqa: E402

for _command in (fetch_command, pull_command, push_command, relink_command, keep_command):
    cli.add_command(_command)

from .export_cmd import export_command  # noqa: E402

cli.add_command(export_command)

from .status_cmd import status_command  # noqa: E402

cli.add_command(status_command)

from .ui_cmd import report_command, ui_command  # noqa: E402

cli.add_command(ui_command)
cli.add_command(report_command)

from .rerun_cmd import rerun_command  # noqa: E402

cli.add_command(rerun_command)
