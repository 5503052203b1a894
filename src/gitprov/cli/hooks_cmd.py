"""``prov hooks``: install, remove and inspect the git hooks; ``run`` is what they call."""

from __future__ import annotations

import os

import click

from ..githooks import HOOKS
from . import render

__all__ = ["hooks"]


def _echo_actions(actions: list, as_json: bool) -> None:
    if as_json:
        render.emit_json(actions)
        return
    for a in actions:
        click.echo(f"{a.hook:16} {a.action}" + (f"  ({a.detail})" if a.detail else "") + f"  {a.path}")


@click.group()
def hooks() -> None:
    """The git hooks that capture provenance on commit, rewrite, merge and push."""


@hooks.command("install")
@click.option(
    "--python",
    "python",
    metavar="PATH",
    help="Interpreter the hooks run (default: the one running prov).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def hooks_install(python: str | None, as_json: bool) -> None:
    """Install the hooks; an existing foreign hook is chained, never overwritten.

    Hooks go where git looks for them (core.hooksPath, else .git/hooks). Running it
    again changes nothing, or updates the shims to the current interpreter.
    """
    from ..githooks.install import install

    _echo_actions(install(os.getcwd(), python=python), as_json)


@hooks.command("uninstall")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def hooks_uninstall(as_json: bool) -> None:
    """Remove the hooks and put chained foreign hooks back exactly as they were."""
    from ..githooks.install import uninstall

    _echo_actions(uninstall(os.getcwd()), as_json)


@hooks.command("status")
@click.option("-n", "--failures", default=5, show_default=True, type=click.IntRange(min=0), help="Show the last N failures.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def hooks_status(failures: int, as_json: bool) -> None:
    """Show installed hooks, their interpreter, chained hooks and recent failures."""
    from ..githooks.install import status

    st = status(os.getcwd(), failures=failures)
    if as_json:
        render.emit_json(st)
        return
    where = f"  (core.hooksPath = {st.hooks_path_config})" if st.hooks_path_config else ""
    click.echo(f"hooks dir  {st.hooks_dir}{where}")
    click.echo(f"strict     {'on' if st.strict else 'off'}")
    if not st.rewrite_ref:
        click.echo("notes      notes.rewriteRef does not include refs/notes/prov (run 'prov init')")
    for h in st.hooks:
        line = f"  {h.hook:16} {h.state}"
        if h.state == "prov":
            if h.interpreter:
                line += f"  {h.interpreter}" + ("" if h.interpreter_exists else "  (MISSING: run 'prov hooks install')")
            else:
                line += "  python3 from PATH"
            if h.up_to_date is False:
                line += "  (outdated: run 'prov hooks install')"
        if h.chained:
            line += f"  chains {os.path.basename(h.chained)}" + ("" if h.chained_executable else " (not executable: skipped)")
        click.echo(line)
    if st.failures_total:
        click.echo(f"failures   {st.failures_total} logged in .git/prov/hook-failures.log; latest:")
        for f in st.failures:
            click.echo(f"  {f.get('time', '?')}  {f.get('hook', '?')}: {f.get('reason', '')}")
    else:
        click.echo("failures   none")


@hooks.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("hook", type=click.Choice(HOOKS))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def hooks_run(ctx: click.Context, hook: str, args: tuple[str, ...]) -> None:
    """Run HOOK as git would (what the installed hooks and pre-commit call).

    Fails open: a problem prints one line and exits 0 unless strict mode is on.
    """
    from ..githooks.runtime import run

    ctx.exit(run(hook, list(args)))

