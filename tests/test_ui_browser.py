"""The web interface in a real headless Chromium (Debian's ``chromium``, driven by
Playwright through ``executable_path``): every page loads and shows the repository's
content, runs → compare → run → lineage → commits by clicking, HTML in a run's name
stays text, a token is asked for off the loopback, live charts follow a running run,
and a report opens from disk with the network blocked.

Skipped only outside CI when Chromium or Playwright is missing; with ``CI`` set they
fail instead. ``PROV_UI_SCREENSHOTS=docs/img`` saves the screenshots docs/ui.md uses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import test_ui
from .conftest import run_prov
from .test_ui import XSS_NAME, Server, start_ui

sample = test_ui.sample  # the module's fixtures: one sample repository and prov ui for these tests too
server = test_ui.server

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
SHOTS = os.environ.get("PROV_UI_SCREENSHOTS")


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is required in CI (apt-get install chromium; pip install 'git-prov[test]')")
    pytest.skip(f"{what} is not installed")


def chromium_path() -> str:
    for candidate in (os.environ.get("PROV_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                      "/usr/bin/chromium"):
        if candidate and os.path.exists(candidate):
            return candidate
    _missing("Chromium")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python")
    path = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.errors = []  # type: ignore[attr-defined]
    pg.dialogs = []  # type: ignore[attr-defined]
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.on("console", lambda msg: pg.errors.append(msg.text) if msg.type == "error" else None)

    def on_dialog(dialog: Any) -> None:
        pg.dialogs.append(dialog.message)
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    pg.set_default_timeout(20_000)
    yield pg
    assert pg.errors == [], pg.errors
    assert pg.dialogs == [], pg.dialogs
    context.close()


def ready(pg: Any, name: str) -> None:
    pg.wait_for_selector(f"body[data-ready='{name}']")


def until(pg: Any, expression: str, timeout: float = 20.0) -> None:
    """Wait until ``expression`` is true in the page (``wait_for_function`` evaluates
    a string, which the interface's content security policy forbids)."""
    deadline = time.monotonic() + timeout
    while not pg.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def shot(pg: Any, name: str, full: bool = False) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(Path(SHOTS) / f"ui-{name}.png"), full_page=full)


def test_runs_table_filter_sort_group_and_html_as_text(page: Any, server: Server, sample: Any) -> None:
    page.goto(f"http://{server.netloc}/#/runs")
    ready(page, "runs")
    assert page.locator("#runs tbody tr").count() == 10
    assert page.locator("#count").inner_text() == "1–10 of 10 runs"
    # the run named <script>alert(1)</script> is text in its cell; nothing ran
    cell = page.locator("#runs a", has_text=XSS_NAME)
    assert cell.count() == 1 and cell.inner_text() == XSS_NAME
    assert page.get_by_text('<img src=x onerror="document.title=\'pwned\'">').count() == 1
    assert page.title() == "git-prov" and page.locator("script").count() == 2
    shot(page, "runs")
    page.fill("#where", "params.lr > 0.02")
    page.press("#where", "Enter")
    until(page, "!!document.querySelector('#count') && document.querySelector('#count').textContent.includes('of 5 runs')")
    page.locator("#runs th", has_text="lr").first.click()
    page.wait_for_url("**order=params.lr+desc**")
    ready(page, "runs")
    assert page.locator("#runs tbody tr").first.locator("td").nth(1).inner_text() == "diverged"
    page.select_option("#group", "experiment")
    page.wait_for_url("**group=experiment**")
    page.wait_for_selector("#runs tr.group")
    assert page.locator("#runs tr.group").count() == 2


def test_click_through_runs_compare_run_lineage_commits(page: Any, server: Server, sample: Any) -> None:
    _, ids, _ = sample
    page.goto(f"http://{server.netloc}/#/runs")
    ready(page, "runs")
    page.click("text=Clear selection")
    ready(page, "runs")
    for key in ("baseline", "dirty", "child0"):
        page.check(f"input[data-id='{ids[key]}']")
    assert page.locator("#compare-btn").inner_text() == "Compare selected (3)"
    page.click("#compare-btn")
    ready(page, "compare")
    page.wait_for_selector("#compare-charts[data-ready='1']")
    assert page.locator("#compare-charts .chart").count() == 2 and page.locator("#compare-charts canvas").count() == 2
    assert page.locator("#diff-table tr.differs", has_text="lr").count() == 1
    assert page.locator("#parallel path").count() == 3
    page.wait_for_selector("#code-diff pre.diff")
    assert page.locator("#code-diff .add", has_text="+lr = 0.03").count() >= 1
    assert page.locator("#code-diff .add", has_text="+# try a warmup").count() == 1
    page.check("#only-diff")
    assert page.locator("#diff-table td", has_text="optimizer").count() == 1  # differs: only baseline has it
    shot(page, "compare", full=True)

    page.locator("#diff-table a", has_text="baseline").click()
    ready(page, "run")
    page.wait_for_selector("#charts[data-ready='1']")
    assert page.locator("#run-name").inner_text() == "baseline"
    assert page.locator("#charts canvas").count() == 2
    page.locator("#artifacts tr", has_text="predictions.csv").locator("button").click()
    page.wait_for_selector("#preview table")
    assert page.locator("#preview td", has_text="<b>bird</b>").count() == 1
    page.locator("#artifacts tr", has_text="confusion.png").locator("button").click()
    page.wait_for_selector("#preview img")
    until(page, "document.querySelector('#preview img').naturalWidth === 48")
    page.check("#log-scale")
    page.wait_for_selector("#charts[data-ready='1'] canvas")
    page.select_option("#x-axis", "time")
    page.wait_for_selector("#charts[data-ready='1'] canvas")
    page.uncheck("#log-scale")
    page.select_option("#x-axis", "step")
    page.wait_for_selector("#charts[data-ready='1'] canvas")
    # the x axis counts steps again: its last tick label is a step number, not a time
    assert page.locator("#charts .chart").first.get_attribute("data-x") == "step"
    shot(page, "run")

    page.click("main a[href^='#/lineage?node=']")
    ready(page, "lineage")
    page.wait_for_selector("#graph[data-ready='1']")
    assert page.evaluate("window.provGraph.nodes().length") == 12
    box = page.locator("#graph").bounding_box()
    pos = page.evaluate("(() => { const p = window.provGraph.$id('model:classifier@1').renderedPosition(); return [p.x, p.y]; })()")
    page.mouse.click(box["x"] + pos[0], box["y"] + pos[1])
    page.wait_for_selector("#node-info h3")
    assert page.locator("#node-info h3").inner_text() == "model classifier@1"
    assert "null" not in page.locator("#node-info").inner_text()
    shot(page, "lineage")

    page.click("header nav >> text=Commits")
    ready(page, "commits")
    assert page.locator("#commits tr").count() == 3
    first = page.locator("#commits tr").nth(1)
    assert "captured" in first.inner_text() and "9 runs" in first.inner_text()
    first.locator("a").click()
    ready(page, "commit")
    assert page.locator("#commit-runs tr").count() == 10
    shot(page, "commit")


def test_the_dirty_run_shows_its_patch(page: Any, server: Server, sample: Any) -> None:
    _, ids, _ = sample
    page.goto(f"http://{server.netloc}/#/run/{ids['dirty']}")
    ready(page, "run")
    assert page.locator("pre.diff .add", has_text="+# try a warmup").count() == 1
    assert page.locator(".badge", has_text="dirty").count() == 1


def test_a_running_run_updates_live(page: Any, sample: Any, tmp_path: Path) -> None:
    path, _, env = sample
    script = tmp_path / "live.py"
    script.write_text(textwrap.dedent("""
        import sys, time, gitprov
        repo = gitprov.Repository(sys.argv[1])
        with repo.start_run("live", "live", spill_seconds=0.1, flush_seconds=0.2) as run:
            for step in range(250):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
                if step % 20 == 0:
                    run.flush()
                time.sleep(0.02)
    """))
    srv = start_ui(path, env=env)
    writer = subprocess.Popen([sys.executable, str(script), str(path)], env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 20
        live = None
        while time.monotonic() < deadline and live is None:
            rows = srv.json("/api/runs?where=name%20%3D%20'live'")["rows"]
            live = rows[0]["id"] if rows and rows[0]["metrics"] else None
            time.sleep(0.2)
        assert live, "the live run never appeared"
        page.goto(f"http://{srv.netloc}/#/run/{live}")
        ready(page, "run")
        page.wait_for_selector("#live")
        page.wait_for_selector("#charts[data-ready='1'] .chart")
        first = int(page.locator("#charts .chart").first.get_attribute("data-drawn"))
        until(page, f"+document.querySelector('#charts .chart').dataset.drawn > {first}", 15)
    finally:
        writer.wait(30)
        srv.stop()


def test_zooming_a_long_series_asks_for_the_points_of_that_range(page: Any, server: Server, sample: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path, _, env = sample
    import gitprov

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with gitprov.Repository(str(path)).start_run("long", "zoom") as run:
        for step in range(6000):
            run.log_metric("loss", (step % 97) / 97.0, step=step)
    page.goto(f"http://{server.netloc}/#/run/{run.id}")
    ready(page, "run")
    page.wait_for_selector("#charts[data-ready='1']")
    chart = page.locator("#charts .chart").first
    assert chart.get_attribute("data-drawn") == "2000"
    assert "6,000 points, 2,000 shown (LTTB)" in chart.inner_text()
    over = chart.locator(".u-over").bounding_box()
    page.mouse.move(over["x"] + over["width"] * 0.40, over["y"] + over["height"] / 2)
    page.mouse.down()
    page.mouse.move(over["x"] + over["width"] * 0.45, over["y"] + over["height"] / 2, steps=5)
    page.mouse.up()
    until(page, "+document.querySelector('#charts .chart').dataset.drawn < 2000")
    shown = int(chart.get_attribute("data-drawn"))
    assert 200 < shown < 400  # every point of the ~5 % of 6,000 steps selected
    page.mouse.dblclick(over["x"] + over["width"] / 2, over["y"] + over["height"] / 2)
    until(page, "document.querySelector('#charts .chart').dataset.drawn === '2000'")


def test_a_long_series_is_drawn_from_its_stored_summary(page: Any, server: Server, sample: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A finished run's long series is drawn from the summary its writer stored (the
    chart says so, the spike is in it), and a drag-zoom reads the chunks for that range."""
    path, _, env = sample
    import gitprov
    from gitprov.runs import summary

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(summary, "SUMMARY_FROM", 1_000)  # in this process, which writes the run
    monkeypatch.setattr(summary, "MAX_BUCKETS", 100)
    with gitprov.Repository(str(path)).start_run("summarised", "zoom", spill_points=2_000,
                                                        spill_seconds=3600) as run:  # chunks by count only
        for step in range(20_000):
            run.log_metric("loss", 1.0 / (1 + step / 1000) + (4.0 if step == 12_345 else 0.0), step=step)
    payload = server.json(f"/api/run/{run.id}/metric?key=loss&x=step")
    assert payload["summary"] is True and payload["total"] == 20_000 and 12_345 in payload["step"]
    page.goto(f"http://{server.netloc}/#/run/{run.id}")
    ready(page, "run")
    page.wait_for_selector("#charts[data-ready='1']")
    chart = page.locator("#charts .chart").first
    shown = int(chart.get_attribute("data-drawn"))
    assert shown == payload["shown"] <= 400, (shown, payload["shown"], chart.inner_text())  # 4 a bucket at most
    assert f"20,000 points, {shown:,} shown (LTTB of the run's stored summary)" in chart.inner_text()
    page.wait_for_timeout(800)  # past the zoom hook's 200 ms: drawing the chart asks for no range
    assert chart.get_attribute("data-drawn") == str(shown)
    over = chart.locator(".u-over").bounding_box()
    page.mouse.move(over["x"] + over["width"] * 0.40, over["y"] + over["height"] / 2)
    page.mouse.down()
    page.mouse.move(over["x"] + over["width"] * 0.45, over["y"] + over["height"] / 2, steps=5)
    page.mouse.up()
    until(page, "+document.querySelector('#charts .chart').dataset.drawn > 400")  # ~1,000 steps, from the chunks


def test_a_lineage_graph_of_hundreds_of_nodes(page: Any, sample: Any, tmp_path: Path) -> None:
    """Over 150 nodes: the layered layout of app.js, colours as data, haystack edges
    (the cheap path the 1,000-node benchmark measures) with an arrow at their middle
    pointing downstream, opened at a readable zoom around the node asked about, the
    whole graph a click away, and still clickable."""
    from synthetic_ledger import build_ledger, init_repository

    _, _, env = sample
    repo = tmp_path / "big"
    init_repository(str(repo))
    build_ledger(str(repo), 80, series_fraction=0.0)
    srv = start_ui(repo, env=env)
    try:
        graph = srv.json("/api/lineage?node=model:bert-base@v1")
        assert len(graph["nodes"]) > 150
        page.goto(srv.url + "#/lineage?node=model:bert-base@v1")
        page.wait_for_selector("#graph[data-ready='1']")
        assert page.evaluate("window.provGraph.nodes().length") == len(graph["nodes"])
        assert page.evaluate("window.provGraph.edges().length") == len(graph["edges"])
        assert page.evaluate("window.provGraph.edges()[0].style('curve-style')") == "haystack"
        assert page.evaluate("window.provGraph.edges()[0].style('mid-target-arrow-shape')") == "triangle"
        # each arrow points from input to output, and the layout runs left to right
        assert page.evaluate("window.provGraph.edges().every((e) => e.source().position('x') < "
                             "e.target().position('x'))")
        assert page.evaluate("window.provGraph.zoom()") == pytest.approx(0.8)
        box = page.locator("#graph").bounding_box()
        asked = page.evaluate("(() => { const p = window.provGraph.$('node[root = 1]').renderedPosition();"
                              " return [p.x, p.y]; })()")
        assert abs(asked[0] - box["width"] / 2) < 2 and abs(asked[1] - box["height"] / 2) < 2  # centered
        page.click("#graph-fit")
        until(page, "window.provGraph.zoom() < 0.2")
        extent = page.evaluate("(() => { const b = window.provGraph.elements().renderedBoundingBox();"
                               " return [b.x1, b.y1, b.x2, b.y2]; })()")
        assert extent[0] >= -1 and extent[1] >= -1 and extent[2] <= box["width"] + 1 and extent[3] <= box["height"] + 1
        run_node = next(n["id"] for n in graph["nodes"] if n["kind"] == "run")
        color = page.evaluate(f"window.provGraph.$id({run_node!r}).style('background-color')")
        assert color == "rgb(47,111,222)"  # KIND_COLOR.run
        ranks = page.evaluate("window.provGraph.nodes().map((n) => n.position('x'))")
        assert len(set(ranks)) >= 3  # layered left to right, not one column
        pos = page.evaluate(f"(() => {{ const n = window.provGraph.$id({run_node!r}); window.provGraph.zoom(1);"
                            " window.provGraph.center(n); const p = n.renderedPosition(); return [p.x, p.y]; })()")
        page.mouse.click(box["x"] + pos[0], box["y"] + pos[1])
        page.wait_for_selector("#node-info h3")
        assert run_node in page.locator("#node-info").inner_text()
        assert not page.errors
    finally:
        srv.stop()


def test_the_token_in_a_browser(page: Any, browser: Any, sample: Any) -> None:
    path, _, env = sample
    srv = start_ui(path, "--host", "0.0.0.0", env=env)
    try:
        port = srv.netloc.rsplit(":", 1)[1]
        page.goto(f"http://127.0.0.1:{port}/?token={srv.token}#/runs")
        ready(page, "runs")  # the cookie carries the token to every API call
        assert "token" not in page.url and page.url.endswith("/#/runs")
        assert page.locator("#runs tbody tr").count() >= 10
        other = browser.new_context()
        try:
            stranger = other.new_page()
            stranger.goto(f"http://127.0.0.1:{port}/#/runs")
            assert "needs its token" in stranger.inner_text("body")
        finally:
            other.close()
    finally:
        srv.stop()


def test_the_report_opens_offline(page: Any, sample: Any, tmp_path: Path) -> None:
    path, ids, env = sample
    out = tmp_path / "report.html"
    proc = run_prov(path, "report", ids["baseline"], ids["dirty"], ids["child0"], ids["xss"], "-o", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    asked: list[str] = []

    def block(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            asked.append(route.request.url)
            route.abort()

    page.context.route("**/*", block)
    page.context.set_offline(True)
    page.goto(out.as_uri())
    ready(page, "runs")
    assert page.locator("#runs tbody tr").count() == 4
    assert page.locator("#runs a", has_text=XSS_NAME).inner_text() == XSS_NAME
    shot(page, "report")
    page.locator("#runs a", has_text="baseline").click()
    ready(page, "run")
    page.wait_for_selector("#charts[data-ready='1']")
    assert page.locator("#charts canvas").count() == 2
    page.click("header nav >> text=Compare")
    ready(page, "compare")
    page.wait_for_selector("#compare-charts[data-ready='1']")
    page.wait_for_selector("#code-diff pre.diff")
    page.goto(out.as_uri() + f"#/lineage?node=run:{ids['baseline']}")
    ready(page, "lineage")
    page.wait_for_selector("#graph[data-ready='1']")
    assert page.evaluate("window.provGraph.nodes().length") >= 3
    assert asked == []
