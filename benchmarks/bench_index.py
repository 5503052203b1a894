"""Queries and lineage at scale: the run index of a 100,000-run ledger, beside MLflow's
``search_runs`` on its sqlite backend, in the same run (issue 5, point 8).

    python benchmarks/bench_index.py [--runs 100000] [--peer-runs 10000] [--repeat 7]
                                     [--out docs/performance.md] [--skip-mlflow]

Measured, medians of ``--repeat`` repetitions (fewer for the cold build, see below):

(a) cold index build: the index file deleted, then ``Repository.index().connection()``
    reads every run of the ledger into SQLite;
(b) warm ``find_runs`` with two predicates, an order and a limit
    (``params.optimizer = 'adam' and metrics.acc >= 0.9``, ``metrics.acc desc``, 10),
    Run objects included; also the issue's ``params.lr > 0.01`` form and the same query
    through ``prov runs --where`` (a whole process); and the query shapes of ``SHAPES``
    (top 10 by a metric, newest 20 with an unordered filter, 1,000 results) at
    ``--peer-runs`` runs beside MLflow, each as the call alone and as the call plus
    reading every result's summary (name, status, start time, params, metrics, tags:
    what MLflow's answer holds; git-prov answers them from the index rows);
(c) incremental update after one new run: a run made with ``start_run`` (params,
    metrics, tags; untimed), then the index refresh that brings it in (timed);
(d) lineage over a 10,000-node graph: the upstream of the newest run, to the depth that
    reaches 10,000 nodes, in-process (``Repository.lineage`` and its text) and with
    ``prov lineage --format json``; the whole graph of the peer-size ledger too.

Peers, same run: MLflow ``MlflowClient.search_runs`` with the same filter string, order
and limit over ``--peer-runs`` runs (the same synthetic runs: params as strings, the
four summary metrics, the tags) in ``sqlite:///``, and git-prov on a ledger of the same
``--peer-runs`` runs, for a like-for-like ratio.

Every in-process figure is taken in a fresh child process (``--probe``), imports and
the first warm-up call untimed, so caches of one case never help another. Setup is
cached under ``--root`` (ledgers written by ``synthetic_ledger.py``, the MLflow
database: ~8 minutes for 10,000 runs, once). Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h  # noqa: E402
from synthetic_ledger import EPOCH, SPACING, build_ledger, init_repository, synthetic_run  # noqa: E402

FILTER = "params.optimizer = 'adam' and metrics.acc >= 0.9"
MLFLOW_FILTER = "params.optimizer = 'adam' AND metrics.acc >= 0.9"
NUMERIC_FILTER = "params.lr > 0.01 and metrics.acc >= 0.9"
ORDER = "metrics.acc desc"
LIMIT = 10
LINEAGE_NODES = 10_000

TARGETS = {"cold": 60.0, "find": 0.100, "incremental": 0.050, "lineage": 1.0}  # seconds, at most
#: query shapes measured beside MLflow: (git-prov filter, order, limit), MLflow's (filter, order_by);
#: the filters are in MLflow's dialect, so both get the same string
SHAPES = {
    "top 10 by a metric": (MLFLOW_FILTER, ORDER, LIMIT, ["metrics.acc DESC"]),
    "newest 20, unordered filter": (MLFLOW_FILTER, None, 20, None),
    "1,000 results": ("params.optimizer = 'adam'", None, 1000, None),
}
#: at least this many times faster than MLflow on every shape (issue 17)
SHAPE_TARGET = 30


# -- setup -------------------------------------------------------------------------------


def ledger_repo(root: str, runs: int, env: dict[str, str], prov: list[str], log) -> str:
    """A repository whose ledger holds ``runs`` synthetic runs, with its index built."""
    path = os.path.join(root, f"ledger-{runs}")
    stamp = os.path.join(root, f"ledger-{runs}.done")
    if os.path.exists(stamp):
        return path
    shutil.rmtree(path, ignore_errors=True)
    init_repository(path)
    log(f"building a ledger of {runs:,} runs ...")
    log(f"  {build_ledger(path, runs).seconds:.1f} s")
    subprocess.run([*prov, "init", "--no-hooks"], cwd=path, env=env, check=True, capture_output=True)
    with open(stamp, "w") as f:
        f.write("ok\n")
    return path


def quiet_mlflow():
    warnings.simplefilter("ignore")
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from mlflow.tracking import MlflowClient

    return MlflowClient


def mlflow_db(root: str, runs: int, log) -> str:
    """An MLflow sqlite database holding the first ``runs`` synthetic runs."""
    db = os.path.join(root, f"mlflow-{runs}.db")
    stamp = db + ".done"
    if os.path.exists(stamp):
        return db
    with contextlib.suppress(FileNotFoundError):
        os.remove(db)
    client_class = quiet_mlflow()
    from mlflow.entities import Metric, Param, RunTag

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        client = client_class(tracking_uri=f"sqlite:///{db}")
        exp = client.create_experiment("bench", artifact_location=os.path.join(root, "mlflow-artifacts"))
    log(f"loading {runs:,} runs into MLflow (sqlite) ...")
    t0 = time.perf_counter()
    for i in range(runs):
        _, record, state = synthetic_run(i)
        run = client.create_run(exp, start_time=(EPOCH + i * SPACING) * 1000, run_name=record.name)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, m.value, m.timestamp, m.step) for k, m in state.metrics.items()],
            params=[Param(k, str(v)) for k, v in {**record.params, **state.params}.items()],
            tags=[RunTag(k, v) for k, v in state.tags.items()],
        )
        client.set_terminated(run.info.run_id, "FINISHED")
        if (i + 1) % 1000 == 0:
            log(f"  {i + 1:,} runs, {time.perf_counter() - t0:.0f} s")
    with open(stamp, "w") as f:
        f.write(f"{time.perf_counter() - t0:.1f}\n")
    return db


# -- probes: one fresh process per case ---------------------------------------------------


def _timed(fn, repeat: int, cpu: list[float] | None = None) -> list[float]:
    """Wall times of ``repeat`` calls; with ``cpu``, this process's CPU time of each is
    appended to it (on a loaded machine a short call's wall time counts the waits for
    a core; its CPU time does not)."""
    out = []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.append(time.process_time() - c0)
    return out


def newest_run(index) -> str:
    """The id of the newest run (index format 5 stores ids as bytes, format 4 as text)."""
    run_id = index.connection().execute("SELECT id FROM runs ORDER BY created DESC LIMIT 1").fetchone()[0]
    return run_id.hex() if isinstance(run_id, bytes) else run_id


def probe(kind: str, path: str, repeat: int, extra: str) -> dict:
    """Run one in-process measurement in this (fresh) process; returns what to report."""
    if kind == "mlflow-shape":
        client_class = quiet_mlflow()
        client = client_class(tracking_uri=f"sqlite:///{path}")
        exp = client.get_experiment_by_name("bench").experiment_id
        text, _, limit, mlflow_order = SHAPES[extra]

        def search():
            return client.search_runs([exp], text, order_by=mlflow_order, max_results=limit)

        def search_and_use():  # every result's summary, as git-prov's probe reads it
            return [(r.info.run_name, r.info.status, r.info.start_time, r.data.params, r.data.metrics,
                     r.data.tags)[4]["acc"] for r in search()]

        found = search_and_use()  # warm-up
        cpu: list[float] = []
        return {"times": _timed(search, repeat), "used": _timed(search_and_use, repeat, cpu), "used_cpu": cpu,
                "found": len(found), "acc": found}
    if kind == "mlflow":
        client_class = quiet_mlflow()
        client = client_class(tracking_uri=f"sqlite:///{path}")
        exp = client.get_experiment_by_name("bench").experiment_id

        def search():
            return client.search_runs([exp], MLFLOW_FILTER, order_by=["metrics.acc DESC"], max_results=LIMIT)

        found = search()  # warm-up
        return {"times": _timed(search, repeat), "found": len(found),
                "best": [r.data.metrics["acc"] for r in found]}

    import gitprov

    repo = gitprov.Repository(path)
    index = repo.index()
    if kind == "cold":
        index.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(index.path + suffix)
        t0 = time.perf_counter()
        index.connection()
        return {"times": [time.perf_counter() - t0], "runs_read": index.last_refresh["runs_read"]}
    index.connection()  # up to date before anything is timed
    if kind == "find":
        query = extra or FILTER

        def find():
            return repo.find_runs(query, order_by=ORDER, limit=LIMIT)

        found = find()
        return {"times": _timed(find, repeat), "found": len(found),
                "best": [r.state.metrics["acc"].value for r in found]}
    if kind == "shape":
        text, order, limit, _ = SHAPES[extra]

        def call():
            return repo.find_runs(text, order_by=order, limit=limit)

        def call_and_use():  # every result's summary: what MLflow's answer holds
            return [(r.name, r.status, r.get_date_created(), r.get_hyperparameters(), r.get_metrics(),
                     r.get_tags())[4]["acc"] for r in call()]

        found = call_and_use()
        cpu = []
        return {"times": _timed(call, repeat), "used": _timed(call_and_use, repeat, cpu), "used_cpu": cpu,
                "found": len(found), "acc": found}
    if kind == "incremental":
        times = []
        for i in range(repeat):
            with repo.start_run(name=f"bench-new-{i}", params={"lr": 0.001, "optimizer": "adam"},
                                code=False, environment=False) as run:
                run.log_metrics({"acc": 0.95, "loss": 0.1})
                run.log_tags({"team": "bench"})
            t0 = time.perf_counter()
            index.connection()
            times.append(time.perf_counter() - t0)
            assert index.last_refresh["runs_read"] == 1, index.last_refresh
        return {"times": times}
    if kind == "lineage":
        depth = int(extra) if extra else None
        newest = newest_run(index)
        graph = repo.lineage(newest, "upstream", depth)
        text = _timed(lambda: repo.lineage(newest, "upstream", depth).render("text"), repeat)
        bare = _timed(lambda: repo.lineage(newest, "upstream", depth), repeat)
        from gitprov.index.graph import build_graph, load_edges

        def whole():  # what lineage did before: every edge of the ledger, then the walk
            nodes, edges = load_edges(index.connection())
            return build_graph(nodes, edges, [f"run:{newest}"], "upstream", depth)

        before = _timed(whole, max(1, repeat // 3))
        assert whole().to_json() == graph.to_json()
        return {"times": bare, "text": text, "before": before, "nodes": len(graph.nodes),
                "edges": len(graph.edges), "run": newest}
    if kind == "depth":  # the depth whose upstream of the newest run reaches LINEAGE_NODES nodes
        newest = newest_run(index)
        lo, hi = 1, 4096
        while lo < hi:
            mid = (lo + hi) // 2
            if len(repo.lineage(newest, "upstream", mid).nodes) >= LINEAGE_NODES:
                hi = mid
            else:
                lo = mid + 1
        return {"depth": lo, "run": newest}
    raise SystemExit(f"unknown probe {kind}")


def run_probe(kind: str, path: str, repeat: int, env: dict[str, str], extra: str = "") -> dict:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--probe", kind, path, str(repeat), extra],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"probe {kind} on {path} failed: {proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cli_times(argv: list[str], cwd: str, env: dict[str, str], repeat: int) -> list[float]:
    case = h.Case(" ".join(argv), argv, cwd)
    h.run_once(case, env)  # warm-up (bytecode, page cache)
    return [h.run_once(case, env) for _ in range(repeat)]


# -- report ------------------------------------------------------------------------------


def fmt(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds >= 10 else f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def verdict(value: float, target: str) -> str:
    limit = TARGETS[target]
    return f"≤ {fmt(limit)}: {'met' if value <= limit else '**missed**'}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100_000)
    p.add_argument("--peer-runs", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--cold-repeat", type=int, default=3, help="cold builds of the big ledger (each takes seconds)")
    p.add_argument("--root", default=os.path.join(h.default_root(), "index"))
    p.add_argument("--skip-mlflow", action="store_true")
    p.add_argument("--out", help="write the results into this Markdown file")
    p.add_argument("--only-shapes", action="store_true",
                   help="measure the query shapes beside MLflow only, and print their table")
    p.add_argument("--probe", nargs=4, metavar=("KIND", "PATH", "REPEAT", "EXTRA"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe:
        kind, path, repeat, extra = args.probe
        print(json.dumps(probe(kind, path, int(repeat), extra)))
        return 0

    os.makedirs(args.root, exist_ok=True)
    home = os.path.join(args.root, "home")
    os.makedirs(home, exist_ok=True)
    env = h.bench_env(home, pycache=os.path.join(args.root, "pycache"))
    os.environ.update({k: v for k, v in env.items() if k.startswith("GIT_") or k == "HOME"})
    prov = h.find_prov()
    big = "" if args.only_shapes else ledger_repo(args.root, args.runs, env, prov, print)
    small = ledger_repo(args.root, args.peer_runs, env, prov, print)
    db = None if args.skip_mlflow else mlflow_db(args.root, args.peer_runs, print)
    load_before = os.getloadavg()
    r = args.repeat
    res: dict[str, dict] = {}
    if args.only_shapes:
        shapes = {shape: {"prov": run_probe("shape", small, 5 * r, env, shape),
                          **({"mlflow": run_probe("mlflow-shape", db, r, env, shape)} if db else {})}
                  for shape in SHAPES}
        print("\n".join(shape_table(shapes, f"{args.peer_runs:,}")))
        print(f"load average (1 min) at the start {load_before[0]:.1f}, at the end {os.getloadavg()[0]:.1f}")
        return 0

    print("(a) cold index builds ...")
    res["cold big"] = {"times": [run_probe("cold", big, 1, env)["times"][0] for _ in range(args.cold_repeat)]}
    res["cold small"] = {"times": [run_probe("cold", small, 1, env)["times"][0] for _ in range(r)]}
    print("(b) warm find_runs ...")
    res["find big"] = run_probe("find", big, 5 * r, env)
    res["find big numeric"] = run_probe("find", big, 5 * r, env, NUMERIC_FILTER)
    res["find small"] = run_probe("find", small, 5 * r, env)
    where = [*prov, "runs", "--where", FILTER, "--order-by", ORDER, "--limit", str(LIMIT)]
    res["find big cli"] = {"times": cli_times(where, big, env, r)}
    if db:
        res["mlflow"] = run_probe("mlflow", db, 5 * r, env)
    shapes = {}
    for shape in SHAPES:
        shapes[shape] = {"prov": run_probe("shape", small, 5 * r, env, shape)}
        if db:
            shapes[shape]["mlflow"] = run_probe("mlflow-shape", db, r, env, shape)
    print("(c) incremental update ...")
    ledger_ref = "refs/prov/ledger"
    saved = {ref: h.git(big, "rev-parse", ref, env=env).strip() for ref in (ledger_ref, "refs/notes/prov")
             if subprocess.run(["git", "rev-parse", "-q", "--verify", ref], cwd=big, env=env,
                               capture_output=True).returncode == 0}
    try:
        res["incremental"] = run_probe("incremental", big, 3 * r, env)
    finally:  # the cached ledger stays as built; the index drops the new runs on its next refresh
        for ref, oid in saved.items():
            h.git(big, "update-ref", ref, oid, env=env)
        if "refs/notes/prov" not in saved:
            subprocess.run(["git", "update-ref", "-d", "refs/notes/prov"], cwd=big, env=env, capture_output=True)
        run_probe("find", big, 1, env)
    print("(d) lineage ...")
    depth = run_probe("depth", big, 1, env)["depth"]
    res["lineage big"] = run_probe("lineage", big, r, env, str(depth))
    res["lineage small"] = run_probe("lineage", small, r, env)
    lineage_cli = [*prov, "lineage", res["lineage big"]["run"], "--upstream", "--depth", str(depth), "--format", "json"]
    res["lineage big cli"] = {"times": cli_times(lineage_cli, big, env, r)}
    res["lineage big cli text"] = {"times": cli_times(lineage_cli[:-2], big, env, r)}
    load_after = os.getloadavg()

    med = {k: statistics.median(v["times"]) for k, v in res.items()}
    for k, v in res.items():
        print(f"  {k}: median {fmt(med[k])} over {len(v['times'])}")
    n, m = f"{args.runs:,}", f"{args.peer_runs:,}"
    lb, ls = res["lineage big"], res["lineage small"]
    rows = [
        f"| measure | git-prov, {n} runs | git-prov, {m} runs | MLflow (sqlite), {m} runs | target ({n} runs) |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| (a) cold index build | {fmt(med['cold big'])} | {fmt(med['cold small'])} | | "
        f"{verdict(med['cold big'], 'cold')} |",
        f"| (b) warm query, in-process: `find_runs` / `search_runs` (Run objects) | {fmt(med['find big'])} | "
        f"{fmt(med['find small'])} | {fmt(med['mlflow']) if db else 'skipped'} | {verdict(med['find big'], 'find')} |",
        f"| (b) same with `params.lr > 0.01` (numeric param; MLflow compares params as strings only) | "
        f"{fmt(med['find big numeric'])} | | | |",
        f"| (b) `prov runs --where …` (whole process) | {fmt(med['find big cli'])} | | | |",
        f"| (c) index update after one new run | {fmt(med['incremental'])} | | | {verdict(med['incremental'], 'incremental')} |",
        f"| (d) lineage, in-process (`Repository.lineage`) | {fmt(med['lineage big'])} ({lb['nodes']:,} nodes) | "
        f"{fmt(med['lineage small'])} ({ls['nodes']:,} nodes, whole graph) | | {verdict(med['lineage big'], 'lineage')} |",
        f"| (d) same, with the text rendering | {fmt(statistics.median(lb['text']))} | "
        f"{fmt(statistics.median(ls['text']))} | | |",
        f"| (d) `prov lineage --format json` (whole process) | {fmt(med['lineage big cli'])} | | | "
        f"{verdict(med['lineage big cli'], 'lineage')} |",
        f"| (d) `prov lineage` (text, the default; whole process) | {fmt(med['lineage big cli text'])} | | | "
        f"{verdict(med['lineage big cli text'], 'lineage')} |",
        f"| (d) lineage the way it was before (whole graph loaded, then walked) | "
        f"{fmt(statistics.median(lb['before']))} | {fmt(statistics.median(ls['before']))} | | |",
    ]
    shape_rows = shape_table(shapes, m)
    text = report(args, res, med, rows, shape_rows, db, depth, load_before, load_after, n, m, r, lb)
    print(text)
    if args.out:
        h.write_section(args.out, "bench_index", text)
    return 0


def shape_table(shapes: dict, m: str) -> list[str]:
    """The rows of the query-shape table."""
    shape_rows = [f"| query shape, {m} runs | git-prov `find_runs` | MLflow `search_runs` | MLflow / git-prov | "
                  f"same, reading each result's summary: git-prov | MLflow | MLflow / git-prov | same, CPU time: "
                  "git-prov | MLflow | MLflow / git-prov | target |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for shape, got in shapes.items():
        p_call, p_used = statistics.median(got["prov"]["times"]), statistics.median(got["prov"]["used"])
        if "mlflow" in got:
            m_call, m_used = statistics.median(got["mlflow"]["times"]), statistics.median(got["mlflow"]["used"])
            same = "" if got["mlflow"]["acc"] == got["prov"]["acc"] else " (**different results**)"
            p_cpu, m_cpu = statistics.median(got["prov"]["used_cpu"]), statistics.median(got["mlflow"]["used_cpu"])
            worst = min(m_call / p_call, m_used / p_used)
            shape_rows.append(
                f"| {shape} ({got['prov']['found']:,} runs){same} | {fmt(p_call)} | {fmt(m_call)} | {m_call / p_call:.0f}× "
                f"| {fmt(p_used)} | {fmt(m_used)} | {m_used / p_used:.0f}× | {fmt(p_cpu)} | {fmt(m_cpu)} | "
                f"{m_cpu / p_cpu:.0f}× | ≥ {SHAPE_TARGET}×: {'met' if worst >= SHAPE_TARGET else '**missed**'} |")
        else:
            shape_rows.append(f"| {shape} ({got['prov']['found']:,} runs) | {fmt(p_call)} | skipped | | "
                              f"{fmt(p_used)} | skipped | | | | | |")
    return shape_rows


def report(args, res, med, rows, shape_rows, db, depth, load_before, load_after, n, m, r, lb) -> str:
    """The Markdown section of the results."""
    ratio = f"{med['mlflow'] / med['find small']:.0f}×" if db else "n/a"
    return "\n".join([
        "## Lineage and queries",
        "",
        f"The run index and lineage against a synthetic ledger of {n} runs (`benchmarks/synthetic_ledger.py`: "
        "exactly what git-prov stores, with params, four summary metrics, tags, a dataset and lineage to a base "
        f"model and two recent runs' artifacts), beside MLflow's `search_runs` on its sqlite backend with {m} of "
        "the same runs, in the same run of the benchmark.",
        "",
        "Reproduce, with the `mlflow` extra installed:",
        "",
        "```bash",
        f"python benchmarks/bench_index.py --runs {args.runs} --peer-runs {args.peer_runs} --repeat {args.repeat} "
        "--out docs/performance.md",
        "```",
        "",
        f"Machine: {h.machine()}. Packages: git-prov {_version('git-prov')}, mlflow {_version('mlflow')}.",
        "",
        *rows,
        "",
        *shape_rows,
        "",
        f"- Medians: (a) {len(res['cold big']['times'])} cold builds of the {n}-run index and "
        f"{len(res['cold small']['times'])} of the {m}-run one; (b) {len(res['find big']['times'])} queries each "
        f"after one untimed; (c) {len(res['incremental']['times'])} new runs; (d) {len(lb['times'])} walks "
        f"({len(lb['before'])} for the old way); whole processes {r} runs after one warm-up. Every in-process "
        "figure comes from a fresh child process (imports untimed).",
        f"- Query: `{FILTER}`, ordered by `{ORDER}`, limit {LIMIT}; MLflow gets the same filter string "
        f"(`AND` in capitals), `order_by=['metrics.acc DESC']`, `max_results={LIMIT}`. Both return "
        f"{res['find small']['found']} runs at {m} runs"
        + (f" (MLflow: {res['mlflow']['found']}, the same accuracies: "
           f"{'yes' if res['mlflow']['best'] == res['find small']['best'] else 'no'})" if db else "")
        + f". Like for like at {m} runs, MLflow takes {ratio} git-prov's time.",
        f"- Query shapes ({5 * r} calls each for git-prov, {r} for MLflow, after one untimed; the same filter "
        "string for both, in MLflow's dialect): "
        + "; ".join(f"{shape}: `{text}`" + (f", ordered by `{order}`" if order else ", newest first")
                    + f", limit {limit:,}" for shape, (text, order, limit, _) in SHAPES.items())
        + ". `find_runs` answers from the index; the second half of the table reads every result's summary "
        "(name, status, start time, params, metrics, tags: what MLflow's answer holds), which git-prov answers "
        "from the index rows of the runs found (`index/summary.py`; a run's stored record is read from git, all "
        "of them through one `git cat-file`, only when a field the index lacks is used). \"different results\" "
        "would flag answers that differ (compared by `acc`, in order). The CPU-time columns are the same "
        "calls' CPU time in their process (`time.process_time`; neither side starts another process for them): "
        "on a loaded machine a short call's wall time also counts its waits for a core.",
        "- (c): a run made with `Repository.start_run` (params, two metrics, a tag; untimed), then the index "
        "refresh that finds the new ledger tip, re-reads the one changed shard tree and inserts the one run (timed).",
        f"- (d): upstream of the newest run, `--depth {depth}`: the smallest depth that reaches "
        f"{LINEAGE_NODES:,} nodes ({lb['nodes']:,} nodes, {lb['edges']:,} edges: runs, their artifacts, base "
        f"models, datasets). At {m} runs, the upstream of the newest run without a depth: every node it reaches. "
        "The walk reads the index frontier by frontier, so it costs what it reaches, not the ledger's size; the "
        "old way read every lineage row of the ledger first (last row).",
        f"- Load average (1 min) at the start {load_before[0]:.1f}, at the end {load_after[0]:.1f}: a shared "
        "2-core machine, so single repetitions vary (they are printed while the benchmark runs).",
    ])


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    raise SystemExit(main())
