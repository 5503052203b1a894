"""``prov ui`` (the read-only web interface) and ``prov report`` (one HTML file)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .options import with_repository

if TYPE_CHECKING:
    from ..api import Repository

__all__ = ["report_command", "ui_command"]


def _needs_ui_extra() -> None:
    import importlib.util

    from ..errors import MissingExtraError

    missing = [m for m in ("starlette", "uvicorn", "numpy") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(f"this command needs the ui extra ({', '.join(missing)} missing): "
                         "pip install 'git-prov[ui]'")


def _check_where(params: dict[str, Any]) -> None:
    if params.get("where"):
        from ..index.filter import parse_filter

        parse_filter(params["where"])  # a filter that does not parse is reported before anything opens


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any but the loopback requires a token, printed in the address.")
@click.option("--port", type=click.IntRange(0, 65535), default=8470, show_default=True,
              help="Port to listen on (0: a free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the interface in a browser.")
@with_repository()
def ui_command(host: str, port: int, open_browser: bool, repo: Repository) -> None:
    """Serve a read-only web interface over this repository's provenance.

    Runs (filter, sort, group, compare), a run's metrics, artifacts, code and
    environment, the lineage graph, and commits with their provenance. Listens on the
    loopback by default; stop it with Ctrl-C. Needs the ui extra: pip install 'git-prov[ui]'.
    """
    _needs_ui_extra()
    import contextlib

    from ..ui.server import serve

    with contextlib.suppress(KeyboardInterrupt):
        serve(repo.store, host, port, open_browser=open_browser, announce=lambda line: click.echo(line, err=True))


@click.command("report")
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@click.option("--where", metavar="FILTER", help="Runs matching this filter (as prov runs --where).")
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True,
              help="At most this many runs when no RUN is named.")
@click.option("-o", "--output", "output", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="The HTML file to write.")
@click.option("--title", help="The report's title.")
@with_repository(before=_check_where)
def report_command(runs: tuple[str, ...], where: str | None, limit: int, output: str, title: str | None,
                   repo: Repository) -> None:
    """Write one self-contained HTML file with the run, compare and lineage views.

    The runs named (ids or prefixes), else those matching --where, else the newest.
    Every script, style and answer is inside the file: it opens offline, to attach to
    a pull request or a CI job.
    """
    _needs_ui_extra()
    import os

    from ..ui.report import choose_runs, write_report

    ids = choose_runs(repo.store, runs, where, limit)
    path = write_report(repo.store, ids, output, title)
    click.echo(f"wrote {path} ({len(ids)} run{'s' if len(ids) != 1 else ''}, {os.path.getsize(path):,} bytes)")
