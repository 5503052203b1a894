"""``prov rerun``: execute a recorded run again and say whether its results match."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..errors import DriftError, UsageError
from . import render
from .options import with_repository

if TYPE_CHECKING:
    from ..api import Repository

__all__ = ["rerun_command", "render_explanation", "render_rerun"]


def _tolerances(values: tuple[str, ...], option: str) -> tuple[float, dict[str, float]]:
    """``--rtol 1e-6`` (every metric) and ``--rtol loss=1e-3`` (one metric)."""
    default, per = 0.0, {}
    for text in values:
        key, eq, raw = text.rpartition("=")
        try:
            number = float(raw)
        except ValueError:
            number = -1.0
        if not number >= 0 or number == float("inf"):
            raise UsageError(f"{option} {text!r} must be a number >= 0, or METRIC=NUMBER")
        if eq:
            if not key:
                raise UsageError(f"{option} {text!r}: name the metric before '='")
            per[key] = number
        else:
            default = number
    return default, per


def _check_options(params: dict[str, Any]) -> None:
    from .runs_cmd import _parse_param

    params["params"] = dict(_parse_param(p) for p in params["params"])
    params["rtol"] = _tolerances(params["rtol"], "--rtol")
    params["atol"] = _tolerances(params["atol"], "--atol")


@click.command("rerun")
@click.argument("run_id", metavar="RUN")
@click.option("--in", "workdir", metavar="DIR", type=click.Path(file_okay=False),
              help="Rebuild the code in DIR (new or empty) instead of a temporary directory.")
@click.option("--keep", is_flag=True, help="Keep the scratch worktree afterwards (its path is printed).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Override a recorded hyperparameter (repeatable): the rerun is a variant.")
@click.option("--rtol", multiple=True, metavar="[METRIC=]X", help="Relative tolerance for metrics (repeatable).")
@click.option("--atol", multiple=True, metavar="[METRIC=]X", help="Absolute tolerance for metrics (repeatable).")
@click.option("--allow-drift", is_flag=True, help="Rerun even when an input changed since the run.")
@click.option("--check", is_flag=True, help="Exit 12 unless the results are identical or within tolerance (CI).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@with_repository(before=_check_options)
def rerun_command(run_id: str, workdir: str | None, keep: bool, params: dict[str, Any], rtol: Any, atol: Any,
                  allow_drift: bool, check: bool, as_json: bool, repo: Repository) -> None:
    """Execute run RUN again from its record and compare the results.

    The run's commit is checked out in a scratch worktree with its recorded patch
    applied, its inputs and environment are compared with the record, its command is
    executed as a new run that reproduces RUN, and the verdict is identical, within
    tolerance or drifted, with the cause: code, data, environment, params or
    nondeterminism. See docs/reproduce.md.
    """
    from ..runs.compare import Tolerance

    tolerance = Tolerance(rtol[0], atol[0], rtol[1], atol[1])
    try:
        report = repo.rerun(run_id, workdir=workdir, keep=keep, params=params, tolerance=tolerance,
                            allow_drift=allow_drift, quiet=as_json,
                            progress=None if as_json else lambda text: click.echo(f"prov: {text}", err=True))
    except DriftError as exc:  # stopped before executing: --json still gets its report
        if as_json and getattr(exc, "report", None) is not None:
            render.emit_json(exc.report)  # type: ignore[attr-defined]
        raise
    if as_json:
        render.emit_json(report)
    else:
        click.echo(render_rerun(report))
    if check and report["verdict"] == "drifted":
        first = next((r for r in report["results"] if r["status"] == "drifted"), None)
        what = f" ({first['kind']} {first['key']}: {render.short(first['a'])} → {render.short(first['b'])})" if first else ""
        raise DriftError(f"run {report['run'][:12]} reran as {(report['rerun'] or 'no run')[:12]} and drifted{what}; "
                         f"cause: {', '.join(report['causes'])}")


def _pair(a: Any, b: Any) -> str:
    return f"{render.short(a)} → {render.short(b)}"


def render_explanation(report: dict[str, Any]) -> list[str]:
    """The code, data, environment and params lines of a report, compactly."""
    lines = []
    for section in ("code", "data", "environment", "params"):
        rows = report.get(section) or []
        text = "; ".join(f"{row['what']} {_pair(row['a'], row['b'])}" for row in rows) if rows else "same"
        lines.append(f"{section:12} {text}")
    return lines


def render_rerun(report: dict[str, Any]) -> str:
    rec_patch = " + recorded patch" if report["patch"] else ""
    lines = [f"run          {report['run']}",
             f"rerun        {report['rerun'] or '(the command started no run)'}",
             f"code at      {(report['commit'] or '')[:12]}{rec_patch}"]
    if report.get("worktree"):
        lines.append(f"worktree     {report['worktree']} (kept)")
    if report.get("variant"):
        lines.append("variant      " + ", ".join(f"{k}={render.short(v)}" for k, v in report["variant"].items()))
    checked = [r for r in report["inputs"] if r["status"] != "unchecked"]
    lines.append(f"inputs       {len(checked)} checked" + "".join(
        f"; {r['path']} {r['status']} ({_pair(r['recorded'], r['now'])})"
        for r in checked if r["status"] != "same"))
    lines += render_explanation(report)
    lines.append("results")
    for row in report["results"]:
        lines.append(f"  {row['kind']:8} {row['key']:24} {_pair(row['a'], row['b']):52} {row['status']}")
    verdict = report["verdict"]
    if report["causes"]:
        verdict += " — cause: " + ", ".join(report["causes"])
    lines.append(f"verdict      {verdict}")
    if report.get("suggestion"):
        lines.append(f"suggestion   {report['suggestion']}")
    return "\n".join(lines)
