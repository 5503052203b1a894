"""The web interface and the report, measured in a real headless Chromium (issue 18).

    python benchmarks/bench_ui.py [--runs 100000] [--points 10000000] [--lineage-runs 330] [--repeat 5]

Four measures, each the median of ``--repeat`` page loads in a fresh page (times from
the browser's navigation start, ``performance.now()``, to the moment the page marks
itself drawn):

* runs table first paint at 100,000 runs (a synthetic ledger, its query index warm);
* a run whose metric has 10,000,000 points: the chart drawn the first time ever (a
  server just started, nothing kept: cut from the summary the run stored when it ended),
  viewed again (from the server's cache), and, for a run stored without a summary (as
  releases before summaries wrote it), first ever (the series decoded) and first after a
  restart (the cut-down series kept in ``.git/prov/ui-cache``);
* the lineage graph of about 1,000 nodes: fetched, laid out (dagre), drawn and ready
  for clicks, then the time a click on a node takes to show its details;
* ``prov report`` of 20 runs x 10,000 points: the file's size, and the time it takes to
  open from disk with the network blocked.

Results go to docs/performance.md (``--write``). Needs the ui and test extras
(Playwright) and Chromium (``/usr/bin/chromium`` or ``PROV_CHROMIUM``).
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _harness import default_root, find_prov, isolate, machine, write_section  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
TARGETS = {"runs": 1000.0, "points_warm": 1000.0, "lineage": 2000.0, "report_bytes": 3 * 1024 * 1024}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Ui:
    def __init__(self, repo: str) -> None:
        self.proc = subprocess.Popen([*find_prov(), "ui", "--port", "0"], cwd=repo, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if select.select([self.proc.stderr], [], [], 0.5)[0]:
                found = re.search(r"(http://\S+)", self.proc.stderr.readline())
                if found:
                    self.url = found.group(1)
                    return
        raise RuntimeError("prov ui did not start")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def chromium() -> str:
    for candidate in (os.environ.get("PROV_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise SystemExit("Chromium is needed: apt-get install chromium (or set PROV_CHROMIUM)")


def ready_ms(browser: Any, url: str, selector: str, *, offline: bool = False, app_js: bytes | None = None) -> float:
    """Milliseconds from navigation start until ``selector`` exists, in a fresh page
    (``app_js``: served in place of the interface's ``app.js``)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    if app_js is not None:
        context.route("**/static/app.js", lambda route: route.fulfill(
            body=app_js, headers={"content-type": "text/javascript; charset=utf-8"}))
    if offline:
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                      else route.abort())
        context.set_offline(True)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    page.wait_for_selector(selector, state="attached")
    took = page.evaluate("performance.now()")
    context.close()
    return float(took)


def median_ms(fn: Any, repeat: int) -> tuple[float, list[float]]:
    times = [fn() for _ in range(repeat)]
    return statistics.median(times), times


def build_runs_repo(root: str, n: int) -> str:
    from synthetic_ledger import build_ledger, init_repository

    path = os.path.join(root, f"runs-{n}")
    if not os.path.isdir(path):
        log(f"building a ledger of {n:,} runs")
        init_repository(path)
        build_ledger(path, n, series_fraction=0.0)
    return path


def build_points_repo(root: str, points: int, summary: bool = True) -> tuple[str, str]:
    """A repository holding one run of ``points`` points, logged by this git-prov: with
    the summary its writer stores when the run ends, or (``summary=False``) without, as
    a release before summaries wrote it."""
    import gitprov
    from gitprov.runs import summary as summaries

    path = os.path.join(root, f"points-{points}-{'summary' if summary else 'chunks-only'}")
    marker = os.path.join(path, ".git", "bench-run-id")
    if os.path.exists(marker):
        with open(marker) as f:
            return path, f.read().strip()
    from synthetic_ledger import init_repository

    log(f"logging a metric of {points:,} points ({'with' if summary else 'without'} its summary)")
    shutil.rmtree(path, ignore_errors=True)
    init_repository(path)
    gitprov.init(path, hooks=False)
    import math

    was = summaries.SUMMARY_FROM
    summaries.SUMMARY_FROM = was if summary else points + 1
    try:
        with gitprov.Repository(path).start_run("long", "bench", spill_points=1_000_000) as run:
            log_metric = run.log_metric
            for step in range(points):
                log_metric("loss", 1.0 / (1 + step * 1e-5) + 0.01 * math.sin(step / 1000), step)
            run_id = run.id
    finally:
        summaries.SUMMARY_FROM = was
    with open(marker, "w") as f:
        f.write(run_id)
    return path, run_id


def build_report_repo(root: str, runs: int, points: int) -> tuple[str, list[str]]:
    import math

    import gitprov

    path = os.path.join(root, f"report-{runs}x{points}")
    if os.path.isdir(path):
        shutil.rmtree(path)
    from synthetic_ledger import init_repository

    init_repository(path)
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    ids = []
    for r in range(runs):
        with repo.start_run(f"run {r}", "bench", params={"lr": 0.001 * (r + 1), "seed": r}) as run:
            for step in range(points):
                run.log_metric("loss", math.exp(-step / (points / (r + 2))) + 0.02 * math.sin(step / 50 + r), step)
            ids.append(run.id)
    return path, ids


def lineage_target(repo: str, want: int) -> tuple[str, int]:
    """A node of the synthetic ledger whose lineage graph has about ``want`` nodes."""
    import gitprov

    g = gitprov.Repository(repo)
    from gitprov.index import index_of

    db = index_of(g.store).connection()
    best = ("", 0)
    for name, item in db.execute("SELECT name, item FROM nodes WHERE kind = 'model' LIMIT 50"):
        node = f"model:{name}@{item}" if item else f"model:{name}"
        size = len(g.lineage(node).nodes)
        if abs(size - want) < abs(best[1] - want):
            best = (node, size)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--lineage-runs", type=int, default=375, help="runs of the ledger the lineage graph is cut from")
    parser.add_argument("--only", default="runs,points,lineage,report", help="which measures (comma-separated)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--root", default=os.path.join(default_root(), "ui"))
    parser.add_argument("--app-js-before", help="an app.js to measure the lineage page with too, alternating")
    parser.add_argument("--write", action="store_true", help="write the results into docs/performance.md")
    args = parser.parse_args()
    os.makedirs(args.root, exist_ok=True)
    isolate(args.root)
    from playwright.sync_api import sync_playwright

    rows: list[str] = []
    where = machine()  # with the load average as the measures start
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=FLAGS, headless=True)

        only = set(args.only.split(","))
        if "runs" in only:
            _runs_table(browser, args, rows)
        if "points" in only:
            _long_series(browser, args, rows)
        if "lineage" in only:
            _lineage(browser, args, rows)
        if "report" in only:
            _report(browser, args, rows)
        browser.close()

    text = "\n".join([
        "Measured by `python benchmarks/bench_ui.py --write` in headless Chromium "
        f"({chromium()}), median of {args.repeat} loads each in a fresh page, from navigation start. "
        f"Machine: {where}; at the end {'{:.2f} / {:.2f} / {:.2f}'.format(*os.getloadavg())}.", "",
        "| measure | median | best | target |", "| --- | ---: | ---: | --- |", *rows])
    print(text)
    if args.write:
        doc = os.path.join(os.path.dirname(__file__), "..", "docs", "performance.md")
        write_section(doc, "bench-ui", text)
    return 0


def _runs_table(browser: Any, args: Any, rows: list[str]) -> None:
    repo = build_runs_repo(args.root, args.runs)
    t0 = time.perf_counter()
    subprocess.run([*find_prov(), "runs", "--limit", "1"], cwd=repo, check=True, capture_output=True)
    log(f"query index of {args.runs:,} runs built in {time.perf_counter() - t0:.1f} s")
    ui = Ui(repo)
    try:
        med, times = median_ms(lambda: ready_ms(browser, ui.url + "#/runs", "body[data-ready='runs']"), args.repeat)
        rows.append(f"| runs table, {args.runs:,} runs: first paint (50 rows, 4 param + 4 metric columns) | "
                    f"{med:,.0f} ms | {min(times):,.0f} ms | ≤ 1,000 ms: {'met' if med <= TARGETS['runs'] else '**missed**'} |")
        sorted_med, _ = median_ms(lambda: ready_ms(browser, ui.url + "#/runs?order=metrics.loss+desc",
                                                   "body[data-ready='runs']"), args.repeat)
        rows.append(f"| the same, sorted by a metric | {sorted_med:,.0f} ms | | |")
        filtered, _ = median_ms(lambda: ready_ms(browser, ui.url + "#/runs?where=params.lr+%3E+0.005&group=experiment",
                                                 "body[data-ready='runs']"), args.repeat)
        rows.append(f"| the same, filtered (`params.lr > 0.005`) and grouped by experiment | {filtered:,.0f} ms | | |")
    finally:
        ui.close()


def _first_view(browser: Any, repo: str, run_id: str, *, kept: bool) -> float:
    """The chart's first view by a server just started: with no cut-down series kept in
    ``.git/prov/ui-cache`` (the series decoded) or with the one an earlier server kept."""
    if not kept:
        shutil.rmtree(os.path.join(repo, ".git", "prov", "ui-cache"), ignore_errors=True)
    ui = Ui(repo)
    try:
        return ready_ms(browser, ui.url + f"#/run/{run_id}", "#charts[data-ready='1']")
    finally:
        ui.close()


def _long_series(browser: Any, args: Any, rows: list[str]) -> None:
    repo, run_id = build_points_repo(args.root, args.points)
    old_repo, old_id = build_points_repo(args.root, args.points, summary=False)
    first, first_times = median_ms(lambda: _first_view(browser, repo, run_id, kept=False), args.repeat)
    never, _ = median_ms(lambda: _first_view(browser, old_repo, old_id, kept=False), max(1, args.repeat // 2))
    kept, _ = median_ms(lambda: _first_view(browser, old_repo, old_id, kept=True), max(1, args.repeat // 2))
    rows.append(f"| a run whose metric has {args.points:,} points: chart drawn the first time ever (a server just "
                f"started, nothing kept in `.git/prov/ui-cache`), from the summary stored with the run | "
                f"{first:,.0f} ms | {min(first_times):,.0f} ms | ≤ 1,000 ms: "
                f"{'met' if first <= TARGETS['points_warm'] else '**missed**'} |")
    ui = Ui(repo)
    try:
        url = ui.url + f"#/run/{run_id}"
        ready_ms(browser, url, "#charts[data-ready='1']")
        med, times = median_ms(lambda: ready_ms(browser, url, "#charts[data-ready='1']"), args.repeat)
        rows.append(f"| the same, viewed again (this server's cache; 2,000 points by LTTB) | "
                    f"{med:,.0f} ms | {min(times):,.0f} ms | ≤ 1,000 ms: {'met' if med <= TARGETS['points_warm'] else '**missed**'} |")
        rows.append(f"| the same run without a summary (as releases before summaries wrote it): first view ever "
                    f"(series decoded) | {never:,.0f} ms | | |")
        rows.append(f"| the same run without a summary: first view after the server started, viewed before (cut-down "
                    f"series kept in `.git/prov/ui-cache`) | {kept:,.0f} ms | | |")
    finally:
        ui.close()


def _lineage(browser: Any, args: Any, rows: list[str]) -> None:
    from synthetic_ledger import build_ledger, init_repository

    lpath = os.path.join(args.root, f"lineage-{args.lineage_runs}")
    if not os.path.isdir(lpath):
        init_repository(lpath)
        build_ledger(lpath, args.lineage_runs, series_fraction=0.0)
    node, size = lineage_target(lpath, 1000)
    ui = Ui(lpath)
    try:
        from urllib.parse import quote

        url = ui.url + "#/lineage?node=" + quote(node, safe="")
        if args.app_js_before:
            _lineage_paired(browser, args, url, size, rows)
        med, times = median_ms(lambda: ready_ms(browser, url, "#graph[data-ready='1']"), args.repeat)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#graph[data-ready='1']", state="attached")
        box = page.locator("#graph").bounding_box()
        pos = page.evaluate("(() => { const n = window.provGraph.nodes()[0]; window.provGraph.center(n);"
                            " const p = n.renderedPosition(); return [p.x, p.y]; })()")
        t0 = time.perf_counter()
        page.mouse.click(box["x"] + pos[0], box["y"] + pos[1])
        page.wait_for_selector("#node-info h3")
        click = (time.perf_counter() - t0) * 1000
        context.close()
        rows.append(f"| lineage graph of {size:,} nodes: fetched, laid out (layered, over 150 nodes without dagre), drawn (cytoscape.js) | "
                    f"{med:,.0f} ms | {min(times):,.0f} ms | ≤ 2,000 ms: {'met' if med <= TARGETS['lineage'] else '**missed**'} |")
        rows.append(f"| then a click on a node until its details show | {click:,.0f} ms | | |")
    finally:
        ui.close()


def _lineage_paired(browser: Any, args: Any, url: str, size: int, rows: list[str]) -> None:
    """The lineage page with ``--app-js-before`` and with this ``app.js``, loads
    alternated against one server (a shared machine's drift hits both alike)."""
    with open(args.app_js_before, "rb") as f:
        before = f.read()
    pairs = []
    for _ in range(args.repeat):
        pairs.append((ready_ms(browser, url, "#graph[data-ready='1']", app_js=before),
                      ready_ms(browser, url, "#graph[data-ready='1']")))
    old, new = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
    rows.append(f"| lineage graph of {size:,} nodes, `app.js` of `--app-js-before` and this one alternated "
                f"({args.repeat} pairs) | {old:,.0f} ms → {new:,.0f} ms | "
                f"{min(p[0] for p in pairs):,.0f} ms → {min(p[1] for p in pairs):,.0f} ms | |")


def _report(browser: Any, args: Any, rows: list[str]) -> None:
    repo, ids = build_report_repo(args.root, 20, 10_000)
    out = os.path.join(args.root, "report.html")
    t0 = time.perf_counter()
    subprocess.run([*find_prov(), "report", *ids, "-o", out], cwd=repo, check=True, capture_output=True)
    made = (time.perf_counter() - t0) * 1000
    size = os.path.getsize(out)
    med, times = median_ms(lambda: ready_ms(browser, "file://" + out, "body[data-ready='runs']", offline=True),
                           args.repeat)
    compare, _ = median_ms(lambda: ready_ms(browser, "file://" + out + "#/compare", "#compare-charts[data-ready='1']",
                                            offline=True), args.repeat)
    rows.append(f"| `prov report` of 20 runs × 10,000 points: size | {size / 1024 / 1024:.2f} MB | | "
                f"≤ 3 MB: {'met' if size <= TARGETS['report_bytes'] else '**missed**'} |")
    rows.append(f"| the same: written by `prov report` (whole command) | {made:,.0f} ms | | |")
    rows.append(f"| the same: opened from disk, network blocked, runs table drawn | {med:,.0f} ms | {min(times):,.0f} ms | |")
    rows.append(f"| the same: compare view of the 20 runs, curves overlaid | {compare:,.0f} ms | | |")


if __name__ == "__main__":
    sys.exit(main())
