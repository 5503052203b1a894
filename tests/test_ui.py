"""``prov ui`` and ``prov report``: the JSON API and its security through a real
``prov ui`` process on 127.0.0.1, the downsampling, the report file, ``Run.url``.
The pages themselves are driven in a real Chromium by tests/test_ui_browser.py."""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _ui_extra() -> None:
    """The ui extra (the test extra lists it too): skipped without it, except in CI."""
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn", "numpy") if importlib.util.find_spec(m) is None]
    if missing and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"the ui extra is required in CI ({', '.join(missing)} missing): pip install -e '.[test]'",
                    pytrace=False)
    if missing:
        pytest.skip(f"the ui extra is not installed ({', '.join(missing)})", allow_module_level=True)


_ui_extra()
import numpy as np  # noqa: E402
from ui_sample import XSS_NAME, build_sample  # noqa: E402  (benchmarks/, on sys.path via conftest)

from .conftest import IDENTITY, run_prov  # noqa: E402


class Server:
    """A ``prov ui`` process and how to ask it things."""

    def __init__(self, proc: subprocess.Popen, url: str) -> None:
        self.proc, self.url = proc, url
        found = re.match(r"http://([^/]+)/(?:\?token=(.+))?", url)
        assert found, url
        self.netloc, self.token = found.group(1), found.group(2)

    def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        host, port = self.netloc.rsplit(":", 1)
        conn = http.client.HTTPConnection("127.0.0.1" if host in ("0.0.0.0", "127.0.0.1") else host, int(port), timeout=30)
        try:
            conn.request(method, path, headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
            res = conn.getresponse()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
        finally:
            conn.close()

    def json(self, path: str, status: int = 200) -> Any:
        code, _, body = self.get(path)
        assert code == status, (code, body[:300])
        return json.loads(body)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def prov_argv() -> list[str]:
    exe = Path(sys.executable).with_name("prov")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gitprov.cli.entry"]


def start_ui(repo: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    """``prov ui --port 0`` in ``repo``; its address read from the line it prints."""
    proc = subprocess.Popen([*prov_argv(), "ui", "--port", "0", *args], cwd=repo, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    with selectors.DefaultSelector() as waiting:  # (select.select fails on descriptors over 1023)
        waiting.register(proc.stderr, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if waiting.select(0.5):
                line = proc.stderr.readline()
                found = re.search(r"(http://\S+)", line)
                if found:
                    return Server(proc, found.group(1))
                if not line and proc.poll() is not None:
                    break
    proc.kill()
    raise AssertionError(f"prov ui did not start: {proc.stderr.read() if proc.stderr else ''}")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str], dict[str, str]]]:
    """The sample repository (benchmarks/ui_sample.py) and the environment to use it in."""
    home = tmp_path_factory.mktemp("ui-home")
    (home / ".gitconfig").write_text("[user]\n\tname = Test User\n\temail = test@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n[prov]\n\tautoPackLimit = 0\n")
    env = {"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", **IDENTITY}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        path = tmp_path_factory.mktemp("ui") / "repo"
        ids = build_sample(path)
        import gitprov

        # an artifact kept in the local cache (above the threshold), for the symlink check
        with gitprov.Repository(str(path)).start_run("cached", "mnist", artifact_threshold=16) as run:
            run.log_artifact("model.bin", b"m" * 100)
            ids["cached"] = run.id
    yield path, ids, env


@pytest.fixture(scope="module")
def server(sample: tuple[Path, dict[str, str], dict[str, str]]) -> Iterator[Server]:
    path, _, env = sample
    srv = start_ui(path, env=env)
    yield srv
    srv.stop()


# -- the API --------------------------------------------------------------------------------
def test_runs_page_filters_sorts_groups_and_pages(server: Server, sample: Any) -> None:
    page = server.json("/api/runs?limit=3")
    assert page["total"] == 10 and len(page["rows"]) == 3 and page["columns"]["metrics"] == ["loss", "accuracy"]
    swept = server.json("/api/runs?where=params.lr%20%3E%200.02&order=params.lr%20asc&limit=50")
    assert [r["params"]["lr"] for r in swept["rows"]] == [0.03, 0.03, 0.1, 0.5, 1.0]
    grouped = server.json("/api/runs?group=experiment&limit=50")
    assert {g["value"]: g["count"] for g in grouped["groups"]} == {"mnist": 4, "mnist-sweep": 6}
    seen = [r["group"] for r in grouped["rows"]]
    assert seen == sorted(seen, key=seen.index) and len(set(seen)) == 2  # group by group, contiguous
    second = server.json("/api/runs?offset=3&limit=3")
    assert {r["id"] for r in second["rows"]}.isdisjoint({r["id"] for r in page["rows"]})
    chosen = server.json("/api/runs?params=optimizer&metrics=loss&limit=50")
    assert chosen["columns"] == {"params": ["optimizer"], "metrics": ["loss"]}
    assert any(r["params"] == {"optimizer": "sgd"} for r in chosen["rows"])


def test_a_bad_filter_is_one_message(server: Server) -> None:
    error = server.json("/api/runs?where=params.lr%20%3E", 400)["error"]
    assert "filter" in error and "\n" not in error
    assert "group by one of" in server.json("/api/runs?group=bogus", 400)["error"]
    assert "page holds" in server.json("/api/runs?limit=100000", 400)["error"]


def test_run_page_data(server: Server, sample: Any) -> None:
    _, ids, _ = sample
    run = server.json(f"/api/run/{ids['baseline'][:10]}")
    assert run["name"] == "baseline" and run["params"] == {"epochs": 10, "lr": 0.01, "optimizer": "sgd"}
    assert set(run["artifacts"]) == {"confusion.png", "predictions.csv", "config.json", "weights.bin"}
    assert run["stages"]["featurize"] and run["observations"] == {"sample": 2}
    assert run["datasets"]["train"]["digest"].startswith("sha256:")
    child = server.json(f"/api/run/{ids['child0']}")
    assert child["parent"]["id"] == ids["parent"]
    assert [c["id"] for c in server.json(f"/api/run/{ids['parent']}")["children"]] == [ids[f"child{i}"] for i in range(4)]
    dirty = server.json(f"/api/run/{ids['dirty']}")
    assert dirty["code"]["is_dirty"] and "+# try a warmup" in dirty["patch"]
    obs = server.json(f"/api/run/{ids['baseline']}/observations?key=sample")
    assert [o["value"]["input"] for o in obs] == ["a cat", "a dog"]
    assert "no run" in server.json("/api/run/00000000", 404)["error"]


def test_metric_series_are_downsampled_on_the_server(server: Server, sample: Any) -> None:
    path, ids, _ = sample
    full = server.json(f"/api/run/{ids['baseline']}/metric?key=loss")
    assert full["total"] == full["shown"] == 200 and full["step"] == list(range(200))
    assert list((path / ".git" / "prov" / "ui-cache").glob("*.json"))  # kept for the next server
    few = server.json(f"/api/run/{ids['baseline']}/metric?key=loss&points=20")
    assert few["total"] == 200 and few["shown"] <= 20 and few["step"][0] == 0 and few["step"][-1] == 199
    window = server.json(f"/api/run/{ids['baseline']}/metric?key=loss&lo=50&hi=60")
    assert window["step"] == list(range(50, 61))
    nan = server.json(f"/api/run/{ids['failed']}/metric?key=loss")
    assert nan["total"] == 2 and nan["nan"] == 1 and nan["value"] == [1.0]
    assert "no metric" in server.json(f"/api/run/{ids['baseline']}/metric?key=nope", 404)["error"]
    assert "step or time" in server.json(f"/api/run/{ids['baseline']}/metric?key=loss&x=bogus", 400)["error"]


def test_artifacts_preview_and_download(server: Server, sample: Any) -> None:
    _, ids, _ = sample
    base = f"/api/run/{ids['baseline']}/artifact?key="
    csv = server.json(base + "predictions.csv&preview=1")
    assert csv["kind"] == "csv" and csv["rows"][3] == ["3", "<b>bird</b>", "0.55"]
    assert json.loads(server.json(base + "config.json&preview=1")["text"]) == {"layers": [64, 32], "dropout": 0.1}
    assert server.json(base + "weights.bin&preview=1")["kind"] == "none"
    status, headers, body = server.get(base + "confusion.png")
    assert status == 200 and headers["content-type"] == "image/png" and body.startswith(b"\x89PNG")
    status, headers, body = server.get(base + "weights.bin&download=1")
    assert status == 200 and headers["content-type"] == "application/octet-stream" and len(body) == 2048
    assert headers["content-disposition"] == 'attachment; filename="weights.bin"'
    # a text artifact full of HTML is served for download, never as a page
    status, headers, _ = server.get(f"/api/run/{ids['xss']}/artifact?key=page.txt")
    assert headers["content-type"] == "application/octet-stream" and headers["content-disposition"].startswith("attachment")


def test_no_path_reaches_outside(server: Server, sample: Any) -> None:
    _, ids, _ = sample
    for path in ("/static/../server.py", "/static/..%2fserver.py", "/static/%2e%2e/%2e%2e/pyproject.toml",
                 "/static/vendor/../../data.py", "/static//etc/passwd", "/static/index.html"):
        status, _, body = server.get(path)
        assert status == 404, (path, status, body[:100])
    for key in ("../../../etc/passwd", "/etc/passwd", "artifacts/../record"):
        assert server.get(f"/api/run/{ids['baseline']}/artifact?key={key}")[0] == 404
    status, headers, _ = server.get("/static/app.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")


def test_a_cache_entry_symlinked_out_of_the_repository_is_refused(server: Server, sample: Any, tmp_path: Path) -> None:
    path, ids, _ = sample
    import hashlib

    digest = hashlib.sha256(b"m" * 100).hexdigest()
    entry = path / ".git" / "prov" / "cas" / digest[:2] / digest
    assert entry.is_file()
    url = f"/api/run/{ids['cached']}/artifact?key=model.bin&download=1"
    assert server.get(url)[2] == b"m" * 100
    outside = tmp_path / "secret"
    outside.write_bytes(b"m" * 100)  # same bytes, so only the location check can refuse it
    saved = entry.read_bytes()
    entry.unlink()
    entry.symlink_to(outside)
    try:
        status, _, body = server.get(url)
        assert status == 500 and b"outside the repository" in body
    finally:
        entry.unlink()
        entry.write_bytes(saved)


def test_read_only_and_loopback_only(server: Server) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert server.get("/api/runs", method=method)[0] == 405
    status, _, body = server.get("/api/runs", headers={"Host": "attacker.example:80"})
    assert status == 421 and b"localhost" in body
    assert server.get("/api/info", headers={"Host": "localhost"})[0] == 200
    _, headers, _ = server.get("/")
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"


def test_compare_diff_lineage_commits(server: Server, sample: Any) -> None:
    _, ids, _ = sample
    cmp = server.json(f"/api/compare?ids={ids['child0']},{ids['child1'][:8]}")
    assert [r["id"] for r in cmp["runs"]] == [ids["child0"], ids["child1"]]
    assert cmp["differ"]["params"] == ["batch", "lr"] and "epochs" in cmp["params"]
    diff = server.json(f"/api/diff?a={ids['baseline']}&b={ids['dirty']}")
    assert "-lr = 0.01" in diff["commits"] and "+lr = 0.03" in diff["commits"]
    assert "+# try a warmup" in diff["patches"]
    graph = server.json(f"/api/lineage?node=run:{ids['baseline']}")
    assert {n["kind"] for n in graph["nodes"]} == {"run", "model", "dataset"}
    assert any(e["from"] == "model:classifier@1" and e["to"] == f"run:{ids['child0']}" for e in graph["edges"])
    commits = server.json("/api/commits")["commits"]
    assert [c["summary"] for c in commits] == ["Sweep the learning rate", "First model: a linear baseline"]
    assert commits[0]["captured"] and commits[0]["runs"] == 9 and commits[1]["runs"] == 1
    shown = server.json(f"/api/commit?rev={commits[1]['commit'][:10]}")
    assert [r["run"] for r in shown["runs"]] == [ids["baseline"]] and shown["captures"]


def test_a_token_is_required_off_the_loopback(sample: Any) -> None:
    path, _, env = sample
    srv = start_ui(path, "--host", "0.0.0.0", env=env)
    try:
        assert srv.token and len(srv.token) >= 30
        status, _, body = srv.get("/api/info")
        assert status == 401 and b"token" in body
        assert srv.get("/api/info?token=wrong")[0] == 401
        status, headers, _ = srv.get(f"/?token={srv.token}")
        assert status == 303 and headers["location"] == "/"  # the token leaves the address bar
        cookie = headers["set-cookie"].split(";")[0]
        assert srv.get(f"/api/info?token={srv.token}")[0] == 200
        assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
        assert srv.get("/api/info", headers={"Cookie": cookie})[0] == 200
        assert srv.get("/api/info", headers={"X-Prov-Token": srv.token})[0] == 200
    finally:
        srv.stop()


def test_run_url_points_at_the_running_interface(server: Server, sample: Any) -> None:
    path, ids, env = sample
    import gitprov
    from gitprov.integrations.tracker import GitMetadataTracker

    base = f"http://{server.netloc}/"
    run = gitprov.Repository(str(path)).get_run(ids["baseline"])
    assert run.url == f"{base}#/run/{ids['baseline']}"
    assert GitMetadataTracker(str(path)).url == base
    assert server.get(f"/api/run/{ids['baseline']}")[0] == 200  # the page the url names exists


def test_run_url_without_an_interface_is_the_default_address(prov_repo: Any) -> None:
    import gitprov

    with gitprov.Repository(str(prov_repo.path)).start_run("r") as run:
        assert run.url == f"http://127.0.0.1:8470/#/run/{run.id}"


def test_a_busy_port_is_one_line(sample: Any) -> None:
    import socket

    path, _, env = sample
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        proc = run_prov(path, "ui", "--port", str(port), env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert re.fullmatch(rf"prov: error: cannot listen on 127\.0\.0\.1:{port}: .+; pass --port N .+\n", proc.stderr)


# -- downsampling ----------------------------------------------------------------------------
def test_lttb_keeps_the_ends_and_the_peaks() -> None:
    from gitprov.ui.series import lttb

    x = np.arange(100_000, dtype=np.float64)
    y = np.sin(x / 5000)
    y[12_345] = 50.0  # one spike
    y[77_777] = -50.0
    idx = lttb(x, y, 500)
    assert len(idx) <= 500 and idx[0] == 0 and idx[-1] == 99_999
    assert np.all(np.diff(idx) > 0)
    assert 12_345 in idx and 77_777 in idx
    assert list(lttb(x[:10], y[:10], 50)) == list(range(10))


def test_series_payload_orders_steps_and_skips_non_finite() -> None:
    from gitprov.ui.series import series_payload

    cols = (np.array([3, 1, 2, 0]), np.array([30, 10, 20, 0]), np.array([3.0, math.nan, math.inf, 0.0]))
    out = series_payload(cols, 100)
    assert out["step"] == [0, 3] and out["value"] == [0.0, 3.0] and out["nan"] == 1 and out["inf"] == 1
    assert series_payload(cols, 100, "time")["time"] == [0, 30]


def test_long_series_are_decoded_and_kept_on_disk(prov_repo: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A series of many chunks (read through ``git cat-file``) is decoded into the same
    columns the pure-Python reader gives; the cut-down payload is kept in ``keep_dir`` and a new
    cache (a restarted server) answers from it without decoding; a new chunk is a new
    entry; a file that does not hold what its name says is ignored; old files go."""
    import gitprov
    from gitprov.ui import series

    repo = gitprov.Repository(str(prov_repo.path))
    run = repo.start_run("long", spill_points=100)
    for step in range(1050):
        run.log_metric("loss", 1.0 / (step + 1) + (5.0 if step == 777 else 0.0), step * 2)
    run.flush()
    store = repo.store
    from gitprov.runs.reading import metric_chunk_ids

    assert len(metric_chunk_ids(store.ledger, run.id, "loss")) >= series.CATFILE_CHUNKS
    keep = str(tmp_path / "ui-cache")
    first = series.SeriesCache(keep_dir=keep)
    steps, _, values = first.columns(store, run.id, "loss")
    want = repo.get_run(run.id).get_metric_history("loss")
    assert steps.tolist() == [p.step for p in want] and values.tolist() == [p.value for p in want]
    payload = first.payload(store, run.id, "loss", 50)
    assert payload["total"] == 1050 and payload["shown"] <= 50 and 1554 in payload["step"]  # the spike
    assert len(os.listdir(keep)) == 1

    restarted = series.SeriesCache(keep_dir=keep)
    assert restarted.payload(store, run.id, "loss", 50) == payload
    assert not restarted._entries  # answered from disk: nothing decoded

    run.log_metric("loss", 0.5, 5000)
    run.flush()
    grown = restarted.payload(store, run.id, "loss", 50)
    assert grown["total"] == 1051 and grown["step"][-1] == 5000 and len(os.listdir(keep)) == 2

    forged = os.path.join(keep, restarted._kept_path((run.id, "loss", ("0" * 40,), 50, "step")).rsplit("/", 1)[1])
    name = next(n for n in os.listdir(keep))
    os.replace(os.path.join(keep, name), forged)  # its content names other chunks than its file name
    assert series.SeriesCache(keep_dir=keep)._kept((run.id, "loss", ("0" * 40,), 50, "step")) is None

    monkeypatch.setattr(series, "KEEP_FILES", 2)
    for points in (10, 20, 30):
        series.SeriesCache(keep_dir=keep).payload(store, run.id, "loss", points)
    assert len(os.listdir(keep)) == 2
    run.end()


# -- the report ---------------------------------------------------------------------------------
def test_report_is_one_self_contained_file(sample: Any, tmp_path: Path) -> None:
    path, ids, env = sample
    out = tmp_path / "report.html"
    proc = run_prov(path, "report", "--where", "experiment = 'mnist-sweep'", "-o", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"wrote .*report\.html \(6 runs, [\d,]+ bytes\)\n", proc.stdout)
    html = out.read_text(encoding="utf-8")
    assert "<script src" not in html and '<link rel="stylesheet"' not in html
    assert "default-src 'none'" in html
    data = json.loads(re.search(r'<script type="application/json" id="prov-data">(.*?)</script>', html, re.S).group(1))
    assert len(data["answers"]['/api/runs[]']["rows"]) == 6
    assert f"/api/run/{ids['child0']}/metric" + json.dumps([["key", "loss"], ["x", "step"]], separators=(",", ":")) \
        in data["answers"]


def test_report_escapes_what_runs_hold(sample: Any, tmp_path: Path) -> None:
    path, ids, env = sample
    out = tmp_path / "xss.html"
    assert run_prov(path, "report", ids["xss"], "-o", str(out), env=env).returncode == 0
    html = out.read_text(encoding="utf-8")
    assert XSS_NAME not in html and "<img src=x" not in html  # only as \u003c-escaped JSON


def test_run_report_writes_the_file(sample: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, ids, env = sample
    import gitprov

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    run = gitprov.Repository(str(path)).get_run(ids["baseline"])
    written = run.report(tmp_path / "one.html")
    assert Path(written).stat().st_size > 100_000 and "#/run/" + ids["baseline"] in Path(written).read_text()


def test_stage_report_holds_the_stage_run_and_its_input_runs(prov_repo: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The curifactory-style stage report: ``Stage.report()`` (and ``CachedStage.report()``
    of a stage found in the cache) writes the report of the stage's run and the runs it
    read, opening on the stage's run."""
    import gitprov

    repo = gitprov.Repository(str(prov_repo.path))
    with repo.start_run("prep", "pipeline") as prep:
        prep.log_metric("rows", 10.0, 0)
    with repo.start_run("train", "pipeline") as run, run.stage("fit", params={"lr": 0.1}, inputs=[prep]) as stage:
        run.log_metric("loss", 0.5, 0)
        run.log_metric("loss", 0.25, 1)
        stage.outputs["model"] = b"weights"
    other = repo.start_run("unrelated", "pipeline")
    other.end()

    def embedded(path: str) -> dict[str, Any]:
        html = Path(path).read_text(encoding="utf-8")
        assert "<script src" not in html and "default-src 'none'" in html
        return json.loads(re.search(r'<script type="application/json" id="prov-data">(.*?)</script>', html, re.S).group(1))

    written = stage.report(tmp_path / "stage.html")
    data = embedded(written)
    assert data["start"] == f"#/run/{run.id}" and data["title"] == "git-prov report: stage fit of train"
    rows = data["answers"]["/api/runs[]"]["rows"]
    assert {r["id"] for r in rows} == {run.id, prep.id}  # not the unrelated run
    detail = data["answers"][f"/api/run/{run.id}[]"]
    assert detail["stages"]["fit"]["input_runs"] == [prep.id] and detail["stages"]["fit"]["status"] == "finished"
    assert f"/api/run/{run.id}/metric" + json.dumps([["key", "loss"], ["x", "step"]], separators=(",", ":")) \
        in data["answers"]

    cached = repo.find_cached(stage)
    assert cached is not None and cached.run_id == run.id
    monkeypatch.chdir(tmp_path)
    again = embedded(cached.report())
    assert Path(tmp_path / f"report-fit-{run.id[:12]}.html").exists()
    assert again["start"] == data["start"] and {r["id"] for r in again["answers"]["/api/runs[]"]["rows"]} == {
        run.id, prep.id}


@pytest.mark.parametrize("command", [["ui"], ["report", "-o", "r.html"]])
def test_a_missing_ui_extra_is_one_line_naming_the_install(sample: Any, command: list[str]) -> None:
    path, _, env = sample
    code = ("import sys; sys.modules['starlette'] = None\n"
            "from gitprov.cli.entry import main\n"
            f"sys.argv = ['prov', *{command!r}]\n"
            "main()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=path, capture_output=True, text=True,
                          env={**os.environ, **env}, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 10 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "pip install 'git-prov[ui]'" in proc.stderr and "starlette" in proc.stderr
    assert not (path / "r.html").exists()

