"""What storing a long series' summary with its run costs the writer (issue 18).

    python benchmarks/bench_series_summary.py --src before=DIR --src after=src [--points 10000000] [--repeat 3]

Each ``--src NAME=DIR`` is a git-prov source tree (``DIR`` holds the ``gitprov``
package): ``before`` a checkout without summaries (``git archive <commit> src``),
``after`` this one. Every measure runs in a fresh process per source, the sources
alternating round by round (a shared machine's drift hits both alike); imports are not
timed. Per round and source:

* 200 short runs (start, 100 ``log_metric`` calls, end) in one new repository: runs/s;
* one run of 1,000,000 points (default buffering: a chunk every 100,000 points) and one
  of ``--points`` points (a chunk every 1,000,000, as ``bench_ui.py`` logs them): the
  time of the logging loop and of ``end()``, the time spent inside the summary's own
  code (``SeriesSummary.add`` and ``encode``, timed by wrappers: the share of those
  totals the summary is, free of the machine's noise), and the bytes the run's
  summaries add to the ledger (their blobs, zlib-compressed as git stores them loose).

Medians of ``--repeat`` rounds. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import isolate, machine, write_section  # noqa: E402

CHILD = textwrap.dedent('''
    import json, math, os, subprocess, sys, time, zlib
    import gitprov
    from gitprov.store.ledger import run_dir

    kind, path, points = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spent = [0.0]  # seconds inside the summary's own code (a source that has it)
    try:
        from gitprov.runs import summary
    except ImportError:
        summary = None
    if summary is not None:
        def timed(fn):
            def wrapper(*args, **kwargs):
                t = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    spent[0] += time.perf_counter() - t
            return wrapper
        summary.SeriesSummary.add = timed(summary.SeriesSummary.add)
        summary.SeriesSummary.encode = timed(summary.SeriesSummary.encode)
    subprocess.run(["git", "init", "-q", path], check=True)
    subprocess.run(["git", "-C", path, "commit", "-q", "--allow-empty", "-m", "init"], check=True)
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    out = {}
    if kind == "short":
        t0 = time.perf_counter()
        for r in range(200):
            run = repo.start_run(f"r{r}", code=False, environment=False)
            for step in range(100):
                run.log_metric("loss", 1.0 / (step + 1), step)
            run.end()
        out["runs_per_s"] = 200 / (time.perf_counter() - t0)
    else:
        spill = 100_000 if points <= 1_000_000 else 1_000_000
        run = repo.start_run("long", code=False, environment=False, spill_points=spill)
        log = run.log_metric
        t0 = time.perf_counter()
        for step in range(points):
            log("loss", 1.0 / (1 + step * 1e-5) + 0.01 * math.sin(step / 1000), step)
        t1 = time.perf_counter()
        run.end()
        t2 = time.perf_counter()
        out["log_s"], out["end_s"] = t1 - t0, t2 - t1
        git = repo.store.git
        listing = repo.store.ledger.list_dir(f"{run_dir(run.id)}/summaries/loss")
        blobs = [git.odb.read_typed(e.oid, "blob") for e in listing.values()]
        out["summary_bytes"] = sum(len(b) for b in blobs)
        out["summary_zlib"] = sum(len(zlib.compress(b)) for b in blobs)
        out["summary_s"] = spent[0]
    print(json.dumps(out))
''')


def child(src: str, kind: str, path: str, points: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    proc = subprocess.run([sys.executable, "-c", CHILD, kind, path, str(points)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", action="append", required=True, help="NAME=DIR of a git-prov source tree")
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "gitprov-bench-summary"))
    parser.add_argument("--out", help="markdown file whose bench-series-summary block is rewritten")
    args = parser.parse_args()
    sources = dict(s.split("=", 1) for s in args.src)
    shutil.rmtree(args.root, ignore_errors=True)
    os.makedirs(args.root)
    isolate(args.root)
    where = machine()  # with the load average at the start
    results: dict[str, dict[str, list[dict]]] = {name: {} for name in sources}
    n = 0
    for rnd in range(args.repeat):
        for name, src in sources.items():
            for kind, points in (("short", 100), ("long", 1_000_000), ("long", args.points)):
                n += 1
                got = child(src, kind, os.path.join(args.root, f"r{n}"), points)
                results[name].setdefault(f"{kind}-{points}", []).append(got)
                print(f"round {rnd + 1} {name} {kind} {points:,}: {got}", file=sys.stderr, flush=True)

    def med(name: str, key: str, field: str) -> float:
        return statistics.median(r[field] for r in results[name][key])

    names = list(sources)
    rows = ["| measure | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    rows.append("| 200 runs of 100 points (start, log, end), runs/s | "
                + " | ".join(f"{med(s, 'short-100', 'runs_per_s'):,.0f}" for s in names) + " |")
    for points in (1_000_000, args.points):
        key = f"long-{points}"
        rows.append(f"| one run of {points:,} points: the logging loop | "
                    + " | ".join(f"{med(s, key, 'log_s'):.2f} s" for s in names) + " |")
        rows.append("| the same: `end()` | " + " | ".join(f"{med(s, key, 'end_s') * 1000:,.0f} ms" for s in names) + " |")
        rows.append("| the same: log + end, points/s | "
                    + " | ".join(f"{points / (med(s, key, 'log_s') + med(s, key, 'end_s')):,.0f}" for s in names) + " |")
        rows.append("| the same: time inside the summary's code (bucketing each spilled chunk, encoding at the end) | "
                    + " | ".join(f"{med(s, key, 'summary_s') * 1000:,.0f} ms" for s in names) + " |")
        rows.append("| the same: the summary blob (zlib) | "
                    + " | ".join(f"{med(s, key, 'summary_bytes') / 1024:,.1f} KiB ({med(s, key, 'summary_zlib') / 1024:,.1f} KiB)"
                                 for s in names) + " |")
    text = "\n".join([
        f"Measured by `python benchmarks/bench_series_summary.py {' '.join('--src ' + s for s in args.src)} "
        f"--points {args.points} --repeat {args.repeat}`: medians of {args.repeat} rounds, a fresh process per "
        f"measure, the sources alternating. Machine: {where}; load average at the end "
        "{:.2f} / {:.2f} / {:.2f}.".format(*os.getloadavg()), "", *rows])
    print(text)
    if args.out:
        write_section(args.out, "bench-series-summary", text)
    shutil.rmtree(args.root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
