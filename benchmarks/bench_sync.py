"""Sync: git-prov runs mirrored to MLflow, against naive per-call MLflow logging of the
same data (issue 6, point 8).

    python benchmarks/bench_sync.py [--runs 1000] [--points 100] [--repeat 3]
                                    [--naive-runs 20] [--workers 4] [--skip-http]
                                    [--out docs/performance.md] [--keep]

Setup (untimed): a repository with ``--runs`` ended runs, each with 5 params, 2 tags and
one metric of ``--points`` points (explicit steps and timestamps), made with git-prov's
own API; an empty MLflow sqlite store migrated once and copied fresh for every
repetition; mlflow imported and a client made before any timing.

Measures, in this one process:

(a) ``sync_mlflow`` of every run to a fresh sqlite store (``--workers``), median of
    ``--repeat``;
(b) naive logging of the same data: the exact params, tags, metric points, start and
    end that the sync writes (taken from the bridge's own ``desired()``), one MLflow
    call per value (``create_run``, ``log_param``, ``log_metric``, ``set_tag``,
    ``set_terminated``). At ~130 calls/s that would take most of an hour for 100,000
    points, so it runs on the first ``--naive-runs`` runs and is **scaled linearly** to
    all runs (runs are independent; the per-run time is printed so the linearity can be
    checked); the ratio is (b scaled) / (a);
(c) a re-sync with nothing new: the in-process ``sync_mlflow`` and a whole ``prov sync
    mlflow`` process, and the writes it made: ``PRAGMA data_version`` of a connection
    opened before (it changes when any other connection commits), the database file's
    size and mtime (with its ``-wal``/``-journal``), and the sync state file's mtime;
(d) (a) to (c) through a local ``mlflow server`` over HTTP (started by this script on
    127.0.0.1 with one worker and its own sqlite backend; startup untimed).

Everything runs in a temporary directory with an isolated environment (``HOME``, no
system git config, fixed identity, ``MLFLOW_ENABLE_ASYNC_LOGGING=false``, telemetry off).
Not a test: nothing asserts a time. ``--out`` rewrites only the ``bench_sync`` block.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h  # noqa: E402

REPRODUCE = "python benchmarks/bench_sync.py --out docs/performance.md"


def make_repository(root: str, runs: int, points: int, log) -> str:
    import gitprov

    path = os.path.join(root, "repo")
    h.git(root, "init", "-q", path, env=dict(os.environ))
    h.git(path, "commit", "-q", "--allow-empty", "-m", "start", env=dict(os.environ))
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    t0 = time.perf_counter()
    for i in range(runs):
        run = repo.start_run(f"run-{i}", "bench", {"lr": 0.001 * (i + 1), "batch": 32, "layers": [64, 32],
                                                   "optimizer": "adam", "seed": i},
                             {"team": "vision", "sweep": str(i // 100)}, code=False, environment=False)
        base = 1_700_000_000 + i * points
        for s in range(points):
            run.log_metric("loss", 1.0 / (s + 1) + (i % 7) * 1e-3, step=s, timestamp=base + s)
        run.end()
    log(f"repository: {runs} runs × {points} points made in {time.perf_counter() - t0:.1f} s")
    return path


def migrated_store(root: str) -> str:
    from mlflow import MlflowClient

    folder = os.path.join(root, "template")
    os.makedirs(folder)
    db = os.path.join(folder, "mlflow.db")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    finally:
        os.chdir(cwd)
    return db


def fresh_db(template: str, root: str, name: str) -> str:
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    db = os.path.join(folder, "mlflow.db")
    shutil.copy(template, db)
    return db


def clear_state(repo_path: str) -> None:
    shutil.rmtree(os.path.join(repo_path, ".git", "prov", "sync"), ignore_errors=True)


# -- what is measured --------------------------------------------------------------


def timed_sync(repo_path: str, uri: str, workers: int, artifacts: str) -> tuple[float, dict]:
    import gitprov
    from gitprov.sync import sync_mlflow

    repo = gitprov.Repository(repo_path)
    t0 = time.perf_counter()
    report = sync_mlflow(repo, uri, workers=workers, artifact_location=artifacts)
    return time.perf_counter() - t0, report.counts()


def naive(repo_path: str, uri: str, count: int, artifacts: str) -> tuple[float, int]:
    """One MLflow call per value, the same values the sync writes; returns (s, calls)."""
    from mlflow import MlflowClient

    import gitprov
    from gitprov.sync.bridge import RunSource
    from gitprov.sync.mlflow_bridge import MlflowBridge

    repo = gitprov.Repository(repo_path)
    bridge = MlflowBridge(uri)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("naive")
    exp_id = exp.experiment_id if exp else client.create_experiment("naive", artifact_location=artifacts)
    runs = sorted(repo.runs(), key=lambda r: r.record.created)[:count]
    plans = []
    for run in runs:  # untimed: read the data from the repository first
        want = bridge.desired(RunSource(run, ""))
        points = {mkey: run.get_metric_history(key) for key, mkey in want["metrics"].items()}
        plans.append((run, want, points))
    with contextlib.redirect_stdout(io.StringIO()):  # set_terminated prints "View run" lines
        return _naive_calls(client, exp_id, plans)


def _naive_calls(client, exp_id: str, plans: list) -> tuple[float, int]:
    from gitprov.sync.bridge import millis

    calls = 0
    t0 = time.perf_counter()
    for run, want, points in plans:
        created = client.create_run(exp_id, start_time=millis(run.record.created))
        rid = created.info.run_id
        for key, value in want["params"].items():
            client.log_param(rid, key, value)
        for mkey, history in points.items():
            for p in history:
                client.log_metric(rid, mkey, p.value, timestamp=p.timestamp, step=p.step, synchronous=True)
        for key, value in want["tags"].items():
            client.set_tag(rid, key, value, synchronous=True)
        client.set_terminated(rid, want["status"], end_time=want["end_time"])
        calls += 2 + len(want["params"]) + len(want["tags"]) + sum(len(v) for v in points.values())
    return time.perf_counter() - t0, calls


def db_fingerprint(db: str) -> dict:
    out = {}
    for suffix in ("", "-wal", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(db + suffix)
            out[suffix or "db"] = (st.st_size, st.st_mtime_ns)
    return out


def state_mtime(repo_path: str) -> dict:
    folder = os.path.join(repo_path, ".git", "prov", "sync")
    return {n: os.stat(os.path.join(folder, n)).st_mtime_ns for n in sorted(os.listdir(folder)) if n.endswith(".json")}


def resync(repo_path: str, uri: str, db: str, workers: int, artifacts: str, prov: list[str]) -> dict:
    """A sync with nothing new: in-process and as a whole process; writes counted."""
    watcher = sqlite3.connect(db)
    try:
        version = watcher.execute("PRAGMA data_version").fetchone()[0]
        files, state = db_fingerprint(db), state_mtime(repo_path)
        seconds, counts = timed_sync(repo_path, uri, workers, artifacts)
        t0 = time.perf_counter()
        proc = subprocess.run([*prov, "sync", "mlflow", "--tracking-uri", uri, "--json"], cwd=repo_path,
                              capture_output=True, text=True)
        process = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"prov sync failed: {proc.stderr}")
        process_counts = json.loads(proc.stdout)["counts"]
        return {
            "seconds": seconds, "process": process, "counts": counts, "process_counts": process_counts,
            "db_commits": watcher.execute("PRAGMA data_version").fetchone()[0] - version,
            "db_files_changed": db_fingerprint(db) != files, "state_changed": state_mtime(repo_path) != state,
        }
    finally:
        watcher.close()


# -- the HTTP server ----------------------------------------------------------------


# -- the report ----------------------------------------------------------------------


def measure_target(name: str, repo_path: str, uri_for, db_for, args, root: str, prov: list[str], log) -> dict:
    """(a), (b), (c) against one kind of target; ``uri_for(i)`` gives a fresh target."""
    syncs, naives, per_run = [], [], []
    last_uri = last_db = ""
    for i in range(args.repeat):
        uri, db = uri_for(i), db_for(i)
        clear_state(repo_path)
        seconds, counts = timed_sync(repo_path, uri, args.workers, os.path.join(root, f"art-{name}-{i}"))
        if counts != {"synced": args.runs}:
            raise RuntimeError(f"sync did not sync every run: {counts}")
        syncs.append(seconds)
        log(f"  {name} (a) sync {i + 1}/{args.repeat}: {seconds:.1f} s ({seconds / args.runs * 1000:.0f} ms a run)")
        n_seconds, calls = naive(repo_path, uri, args.naive_runs, os.path.join(root, f"art-naive-{name}-{i}"))
        naives.append(n_seconds)
        per_run.append(n_seconds / args.naive_runs)
        log(f"  {name} (b) naive {i + 1}/{args.repeat}: {args.naive_runs} runs, {calls} calls in {n_seconds:.1f} s "
            f"({n_seconds / args.naive_runs:.2f} s a run, {calls / n_seconds:.0f} calls/s)")
        last_uri, last_db = uri, db
        if i + 1 < args.repeat and name == "http":
            break  # one server, one round: see --repeat in the notes
    re = resync(repo_path, last_uri, last_db, args.workers, os.path.join(root, f"art-{name}-re"), prov)
    log(f"  {name} (c) re-sync: {re['seconds']:.2f} s in-process, {re['process']:.2f} s as a process, "
        f"{re['db_commits']} commits to the database, files changed: {re['db_files_changed']}, "
        f"state changed: {re['state_changed']}")
    sync_med = statistics.median(syncs)
    naive_scaled = statistics.median(per_run) * args.runs
    return {"sync": sync_med, "syncs": syncs, "naive_run": statistics.median(per_run), "naive_scaled": naive_scaled,
            "ratio": naive_scaled / sync_med, "resync": re, "rounds": len(syncs)}


def section(args, machine: str, packages: str, load: tuple, results: dict, setup: dict) -> str:
    s, w = results.get("sqlite"), results.get("http")

    def both(fmt) -> str:
        return " | ".join(fmt(r) if r else "—" for r in (s, w))

    def target(ok: bool) -> str:
        return "met" if ok else "**missed**"

    def writes(r: dict) -> str:
        re = r["resync"]
        return f"{re['db_commits']} / {re['db_files_changed']} / {re['state_changed']}"

    ratio_ok = all(r["ratio"] >= 10 for r in (s, w) if r)
    re_ok = all(r["resync"]["seconds"] <= 2 and r["resync"]["db_commits"] == 0 and not r["resync"]["db_files_changed"]
                and not r["resync"]["state_changed"] for r in (s, w) if r)
    rows = [
        "| measure | MLflow sqlite | MLflow server over HTTP | target |",
        "| --- | ---: | ---: | --- |",
        f"| (a) `prov sync mlflow` of {args.runs:,} runs × {args.points} points, s (median) | "
        + both(lambda r: f"{r['sync']:.1f}") + " | |",
        "| (a) per run, ms | " + both(lambda r: f"{r['sync'] / args.runs * 1000:.0f}") + " | |",
        f"| (b) naive per-call logging, s per run (measured on {args.naive_runs} runs) | "
        + both(lambda r: f"{r['naive_run']:.2f}") + " | |",
        f"| (b) naive, scaled to {args.runs:,} runs, s | " + both(lambda r: f"{r['naive_scaled']:,.0f}") + " | |",
        "| ratio naive / sync | " + both(lambda r: f"{r['ratio']:.0f}×") + f" | ≥ 10×: {target(ratio_ok)} |",
        "| (c) re-sync with nothing new, in-process, s | " + both(lambda r: f"{r['resync']['seconds']:.2f}")
        + f" | ≤ 2 s and zero writes: {target(re_ok)} |",
        "| (c) the same as a whole `prov sync mlflow` process, s | " + both(lambda r: f"{r['resync']['process']:.2f}") + " | |",
        "| (c) writes: database commits / db files changed / sync state changed | " + both(writes) + " | |",
    ]
    reps = ", ".join(f"{k}: {r['rounds']}" for k, r in results.items())
    syncs = "; ".join(f"{k}: " + ", ".join(f"{x:.1f}" for x in r["syncs"]) for k, r in results.items())
    return "\n".join([
        "## Sync",
        "",
        f"Machine: {machine}. Packages: {packages}.",
        "",
        f"`prov sync mlflow` of {args.runs:,} ended runs (5 params, 2 tags, one metric of {args.points} points each; "
        f"`--workers {args.workers}`) into an empty MLflow store, against naive per-call MLflow logging of the same "
        f"data, in one process. Reproduce, with the `mlflow` extra installed:",
        "",
        "```bash",
        REPRODUCE,
        "```",
        "",
        *rows,
        "",
        "How it was measured:",
        "",
        f"- (a) `gitprov.sync.sync_mlflow` into a fresh copy of a migrated, empty sqlite store each repetition "
        f"(repetitions — {reps}; every sync, s — {syncs}); the MLflow client was made and mlflow imported before timing. "
        "It reads every run from the ledger and writes per run one `create_run` carrying the tags, one `log_batch` "
        "with params and all points, and the end (status and time).",
        f"- (b) the exact params, tags, points and start/end times the sync writes (from the bridge's `desired()`), "
        f"one call each: `create_run`, `log_param`, `log_metric(..., synchronous=True)`, `set_tag`, `set_terminated`. "
        f"**Measured on the first {args.naive_runs} runs and scaled linearly to {args.runs:,}** (the full naive run would "
        "take most of an hour per target); runs are independent, so the time per run is what scales.",
        "- (c) after (a): `sync_mlflow` again in-process, then a whole `prov sync mlflow --json` process "
        f"(Python start, git-prov, reading {args.runs:,} run states; mlflow is not imported when nothing is to be written). "
        "Writes: `PRAGMA data_version` of a sqlite connection opened before the re-syncs (it changes when any other "
        "connection commits), size and mtime of the database and its `-wal`/`-journal`, mtime of the sync state file.",
        "- HTTP: a local `mlflow server` (`--workers 1`, its own sqlite backend, started and stopped by the script; "
        "startup not timed); one repetition per target server there.",
        f"- Setup (untimed): the {args.runs:,} runs were made with git-prov's API in {setup['repo']:.0f} s; "
        f"migrating the empty MLflow store took {setup['migrate']:.1f} s.",
        f"- Load average (1, 5, 15 min) at the start: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}; the machine is "
        "shared with other jobs, so single rounds vary (they are printed while the benchmark runs).",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of (a) and (b) on sqlite; medians are reported")
    ap.add_argument("--naive-runs", type=int, default=20, help="runs logged the naive way (scaled to --runs)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--out", help="markdown file whose bench_sync block is rewritten")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    if min(args.repeat, args.runs, args.points, args.naive_runs) < 1 or args.naive_runs > args.runs:
        ap.error("--repeat, --runs, --points, --naive-runs must be positive and --naive-runs ≤ --runs")

    root = tempfile.mkdtemp(prefix="gitprov-bench-sync-")
    h.isolate(root, MLFLOW_ENABLE_ASYNC_LOGGING="false", MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
              MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    try:
        load = os.getloadavg()
        machine = h.machine()
        prov = h.find_prov()
        t0 = time.perf_counter()
        repo_path = make_repository(root, args.runs, args.points, log)
        setup = {"repo": time.perf_counter() - t0}
        t0 = time.perf_counter()
        template = migrated_store(root)
        setup["migrate"] = time.perf_counter() - t0
        log(f"MLflow imported, empty store migrated ({setup['migrate']:.1f} s)")
        results = {}
        log("sqlite:")
        results["sqlite"] = measure_target(
            "sqlite", repo_path, lambda i: f"sqlite:///{os.path.join(root, f'sqlite-{i}', 'mlflow.db')}",
            lambda i: fresh_db(template, root, f"sqlite-{i}"), args, root, prov, log)
        if not args.skip_http:
            log("mlflow server over HTTP:")
            db = fresh_db(template, root, "server")
            with h.MlflowServer(db, os.path.join(root, "server-artifacts"), os.path.join(root, "server.log")) as server:
                results["http"] = measure_target("http", repo_path, lambda i: server.url, lambda i: db,
                                                 args, root, prov, log)
        packages = ", ".join(f"{p} {metadata.version(p)}" for p in ("git-prov", "mlflow", "sqlalchemy"))
        text = section(args, machine, packages, load, results, setup)
        print(text)
        if args.out:
            h.write_section(args.out, "bench_sync", text)
            log(f"wrote the bench_sync block of {args.out}")
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
