"""``prov report``: one self-contained HTML file with the run, compare and lineage
views of the chosen runs — the interface's own page, its scripts and styles inlined,
and the answers it would have asked the server for embedded as JSON. It opens from
disk with no network: its content security policy allows nothing outside the file."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .. import codec
from ..errors import UsageError, WriteError
from . import data
from .series import SeriesCache

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["REPORT_POINTS", "build_report", "choose_runs", "write_report"]

#: points kept of each metric series in a report (LTTB), enough for a sharp chart
REPORT_POINTS = 1000
#: how far the lineage around each run reaches in a report
REPORT_DEPTH = 3
#: runs a report holds at most
MAX_RUNS = 200
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
_STATIC = os.path.join(os.path.dirname(__file__), "static")
#: scripts the server's page loads only for the lineage view; a report inlines them
LAZY_SCRIPTS = ("vendor/dagre.min.js", "vendor/cytoscape.min.js")


def _key(path: str, params: dict[str, Any] | None = None) -> str:
    """The key the page looks an answer up by (``queryKey`` in app.js)."""
    entries = sorted([k, str(v)] for k, v in (params or {}).items() if v not in (None, ""))
    return path + json.dumps(entries, ensure_ascii=False, separators=(",", ":"))


def choose_runs(store: ProvStore, runs: list[str] | tuple[str, ...] = (), where: str | None = None,
                limit: int = 20) -> list[str]:
    """Full ids of the runs named (ids or prefixes), else those matching ``where``, else
    the newest; at most ``limit`` from a filter."""
    from ..runs.reading import resolve_run_id

    if runs:
        ids = list(dict.fromkeys(resolve_run_id(store.ledger, r) for r in runs))
        if where:
            allowed = set(data.run_ids(store, where))
            ids = [i for i in ids if i in allowed]
    else:
        ids = data.run_ids(store, where)[:limit]
    if not ids:
        raise UsageError("no runs to report" + (f" match {where!r}" if where else "; log a run first"))
    if len(ids) > MAX_RUNS:
        raise UsageError(f"a report holds at most {MAX_RUNS} runs, not {len(ids)}; narrow --where or name fewer runs")
    return ids


def build_report(store: ProvStore, run_ids: list[str], title: str | None = None, start: str | None = None) -> str:
    """The report of ``run_ids`` (full ids) as one HTML document, opening on the page
    of run ``start`` when given (else the run's page for one run, the table for more)."""
    runs = data.load(store, run_ids)
    cache = SeriesCache()
    answers: dict[str, Any] = {}
    keys = {"params": sorted({k for r in runs for k in r.get_hyperparameters()}),
            "metrics": sorted({k for r in runs for k in r.state.metrics})}
    columns = {"params": keys["params"][:6], "metrics": keys["metrics"][:6]}
    answers[_key("/api/runs")] = {"total": len(runs), "offset": 0, "limit": len(runs), "groups": [], "group": "",
                                  "rows": [data.run_row(r, columns["params"], columns["metrics"]) for r in runs],
                                  "columns": columns, "keys": keys}
    for run in runs:
        answers[_key(f"/api/run/{run.id}")] = data.run_detail(store, run)
        for key in run.state.metrics:
            answers[_key(f"/api/run/{run.id}/metric", {"key": key, "x": "step"})] = cache.payload(
                store, run.id, key, REPORT_POINTS)
        for key in run.state.observations:
            answers[_key(f"/api/run/{run.id}/observations", {"key": key})] = data.observations(run, key)
        answers[_key("/api/lineage", {"node": f"run:{run.id}"})] = data.lineage_graph(
            store, f"run:{run.id}", "both", REPORT_DEPTH)
    ids = ",".join(r.id for r in runs)
    answers[_key("/api/compare", {"ids": ids})] = data.compare(store, [r.id for r in runs])
    for other in runs[1:]:
        answers[_key("/api/diff", {"a": runs[0].id, "b": other.id})] = data.code_diff(store, runs[0], other)
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    first = runs[0]
    payload = {
        "title": title or (f"git-prov report: {first.name or first.id[:12]}" if len(runs) == 1
                           else f"git-prov report: {len(runs)} runs"),
        "made": made, "answers": answers, "compare": ids,
        "start": f"#/run/{start or first.id}" if len(runs) == 1 or start else "#/runs",
        "pages": ["runs", "compare", "lineage"],
    }
    return _page(json.dumps(codec.to_plain(payload), allow_nan=False, ensure_ascii=False, separators=(",", ":")))


def _read(name: str) -> str:
    with open(os.path.join(_STATIC, *name.split("/")), encoding="utf-8") as f:
        return f.read()


def _page(payload: str) -> str:
    """index.html with every stylesheet and script inlined and ``payload`` embedded."""
    html = _read("index.html")
    safe = payload.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")

    def style(match: re.Match[str]) -> str:
        return "<style>" + _read(match.group(1).removeprefix("static/")) + "</style>"

    def script(name: str) -> str:
        return "<script>" + _read(name.removeprefix("static/")).replace("</script", "<\\/script") + "</script>"

    def scripts(match: re.Match[str]) -> str:
        if not match.group(1).endswith("app.js"):
            return script(match.group(1))
        lazy = "".join(script(name) for name in LAZY_SCRIPTS)
        return f'{lazy}<script type="application/json" id="prov-data">{safe}</script>\n{script(match.group(1))}'

    html = re.sub(r'<link rel="stylesheet" href="([^"]+)">', style, html)
    html = re.sub(r'<script src="([^"]+)"></script>', scripts, html)
    return html.replace('<meta charset="utf-8">',
                        f'<meta charset="utf-8">\n<meta http-equiv="Content-Security-Policy" content="{CSP}">', 1)


def write_report(store: ProvStore, run_ids: list[str], path: str | os.PathLike[str], title: str | None = None,
                 start: str | None = None) -> str:
    """Write the report of ``run_ids`` to ``path``; returns the path written."""
    text = build_report(store, run_ids, title, start)
    target = os.fspath(path)
    tmp = f"{target}.prov-{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise WriteError(f"cannot write the report to {target}: {exc.strerror}; choose another path with -o") from exc
    return target
