"""Storage at scale: the run index beside the ledger it indexes, its cold build, and a
whole-ledger ``prov runs``, at 1,000, 10,000 and 100,000 runs (issue 14: a lean index,
streaming whole-ledger reads).

    python benchmarks/bench_storage.py [--sizes 1000,10000,100000] [--repeat 5]
                                       [--baseline-src DIR] [--out docs/performance.md]

For each size, on a ledger of synthetic runs (``synthetic_ledger.py``: the runs of
``bench_index.py``, written by ``git fast-import`` in one commit; cached under
``--root``), measured:

(a) the ledger's size: ``git rev-list --objects --disk-usage refs/prov/ledger``, the
    bytes on disk of every object reachable from the ledger ref, as stored (one pack,
    as fast-import wrote it); and the same objects packed afresh, deltas searched again
    (``git pack-objects --revs --stdout --no-reuse-delta``, as ``git repack -adf`` would);
(b) ``.git/prov/index.sqlite`` after a cold build, and its ratio to (a);
(c) the cold build: the index (and a log's fold cache) deleted, then ``Repository.index().connection()`` in a
    fresh process; wall time and the peak RSS of that process (``ru_maxrss``: the
    interpreter and imports included, about 30 MB of it);
(d) ``prov runs`` and ``prov runs --json`` over the whole ledger, index warm, output to
    a pipe read to the end: time from the process start to its first line, total time,
    and the process's peak RSS (``wait4``).

Then, on ledgers written through the API run by run (``--prov-written``, the issue's
workload: three params, 100 points of one metric, a 1 KiB artifact; cached under
``--root`` too, ~17 min to write 100,000 runs): the index's size beside the ledger and
its cold build (median of ``--cold-repeat``, peak RSS of the process and of the largest
process it started).

``--baseline-src DIR`` measures (b)-(d) again with another checkout's ``src`` first on
``PYTHONPATH`` (the code before a change), in the same run, side by side. Medians of
``--repeat`` runs (cold builds: ``--cold-repeat``); peak RSS is the largest seen. Not a
test: nothing asserts a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h  # noqa: E402
from synthetic_ledger import build_ledger, init_repository  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
MIB = 1024 * 1024
TARGETS = {"ratio": 0.5, "cold": 10.0, "cold_rss": 150.0, "first": 0.200, "runs_rss": 100.0}


# -- setup -------------------------------------------------------------------------------


def cached(root: str, name: str, make) -> dict:
    """What ``make(path)`` returned for the repository ``root/name``, made once."""
    path = os.path.join(root, name)
    stamp = path + ".json"
    if os.path.exists(stamp):
        with open(stamp) as f:
            return json.load(f)
    shutil.rmtree(path, ignore_errors=True)
    init_repository(path)
    info = {"path": path, **make(path)}
    with open(stamp, "w") as f:
        json.dump(info, f)
    return info


def ledger_repo(root: str, runs: int, env: dict[str, str], prov: list[str], log) -> dict:
    """A repository whose ledger holds ``runs`` synthetic runs, and the ledger's sizes."""

    def make(path: str) -> dict:
        log(f"building a ledger of {runs:,} runs ...")
        # in a process of its own, and the repacked size counted as it streams: this
        # process stays small, so that the processes it starts to measure do not report
        # its size as theirs (Linux keeps the peak RSS of the image before ``exec``)
        built = subprocess.run([sys.executable, os.path.abspath(__file__), "--probe-build", path, str(runs)],
                               env=env, check=True, capture_output=True, text=True).stdout
        seconds = json.loads(built.strip().splitlines()[-1])["seconds"]
        subprocess.run([*prov, "init", "--no-hooks"], cwd=path, env=env, check=True, capture_output=True)
        return {"runs": runs, "stored": ledger_bytes(path, env), "repacked": repacked_bytes(path, env),
                "build_seconds": seconds}

    return cached(root, f"ledger-{runs}", make)


def prov_written_repo(root: str, runs: int, env: dict[str, str], prov: list[str], log) -> dict:
    """A repository whose ledger holds ``runs`` runs written by git-prov itself, the
    issue's workload: three params, 100 points of one metric, a 1 KiB artifact."""

    def make(path: str) -> dict:
        subprocess.run([*prov, "init", "--no-hooks"], cwd=path, env=env, check=True, capture_output=True)
        log(f"writing {runs:,} runs through the API ...")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, os.path.abspath(__file__), "--probe-write", path, str(runs)], env=env,
                       check=True)
        return {"runs": runs, "stored": ledger_bytes(path, env), "write_seconds": time.perf_counter() - t0}

    return cached(root, f"written-{runs}", make)


def repacked_bytes(path: str, env: dict[str, str]) -> int:
    """The size of the ledger's objects packed afresh, deltas searched again."""
    proc = subprocess.Popen(["git", "pack-objects", "--revs", "--stdout", "-q", "--no-reuse-delta"], cwd=path,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"refs/prov/ledger\n")
    proc.stdin.close()
    size = 0
    while piece := proc.stdout.read(1 << 20):
        size += len(piece)
    if proc.wait() != 0:
        raise RuntimeError(f"git pack-objects of {path} failed")
    return size


def ledger_bytes(path: str, env: dict[str, str]) -> int:
    """The bytes on disk of every object reachable from the ledger ref."""
    return int(h.git(path, "rev-list", "--objects", "--disk-usage", "refs/prov/ledger", env=env))


def probe_write(path: str, runs: int) -> None:
    """In this process: ``runs`` runs of the issue's workload, one after another."""
    import random

    import gitprov

    repo = gitprov.Repository(path)
    rng = random.Random(0)
    for i in range(runs):
        params = {"lr": round(10 ** rng.uniform(-5, -1), 8), "batch_size": rng.choice((32, 64, 128)),
                  "optimizer": rng.choice(("adam", "sgd"))}
        with repo.start_run(name=f"run-{i:06d}", params=params, code=False, environment=False) as run:
            for step in range(100):
                run.log_metric("loss", 1.0 / (step + 1) + rng.random() * 0.01, step=step)
            run.log_artifact("weights.bin", rng.randbytes(1024))


# -- probes ------------------------------------------------------------------------------


def probe_cold(path: str) -> dict:
    """In this fresh process: a cold index build of the repository at ``path``."""
    import gitprov

    repo = gitprov.Repository(path)
    index = repo.index()
    index.close()
    # nothing kept from an earlier build: the index, and a log's fold cache beside it (a
    # fresh clone has neither; with the cache kept, every build after the first skips the fold)
    from gitprov.store.ledger_log.fold_cache import FoldCache

    fold_cache = os.path.join(os.path.dirname(index.path), FoldCache.FILE)
    for path_ in (index.path, fold_cache):
        for suffix in ("", "-journal", "-wal", "-shm"):
            if os.path.exists(path_ + suffix):
                os.remove(path_ + suffix)
    before = _peak_rss()
    t0 = time.perf_counter()
    index.connection()
    seconds = time.perf_counter() - t0
    index.close()
    return {"seconds": seconds, "rss": _peak_rss(),
            "git_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
            "rss_before": before, "runs_read": index.last_refresh["runs_read"],
            "index_bytes": os.path.getsize(index.path)}


def _peak_rss() -> int:
    """This process's peak RSS in bytes: ``VmHWM`` on Linux, which starts afresh at
    ``exec``. (``ru_maxrss`` does not: Linux keeps the larger of it and the peak of the
    image before ``exec``, so a probe started by a large benchmark process reported that
    process's size, 215 MiB, as its own.)"""
    return own_peak(os.getpid()) or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cold(path: str, env: dict[str, str]) -> dict:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--probe-cold", path], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"cold build of {path} failed: {proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def own_peak(pid: int) -> int:
    """The peak RSS so far of process ``pid`` alone (Linux ``VmHWM``; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def listing(argv: list[str], cwd: str, env: dict[str, str]) -> dict:
    """One whole process: seconds to its first line, in all, its own peak RSS (sampled
    while it writes) and the largest peak of it and the processes it waited for (its
    ``git cat-file``), from ``wait4``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    first_line = proc.stdout.readline()
    first = time.perf_counter() - t0
    size, own = len(first_line), own_peak(proc.pid)
    while chunk := proc.stdout.read(1 << 16):
        size += len(chunk)
        own = max(own, own_peak(proc.pid))
    _, status, usage = os.wait4(proc.pid, 0)
    total = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}")
    return {"first": first, "total": total, "rss": own, "tree_rss": usage.ru_maxrss * 1024, "bytes": size}


def measure(info: dict, env: dict[str, str], prov: list[str], repeat: int, cold_repeat: int, log) -> dict:
    path = info["path"]
    builds = [cold(path, env) for _ in range(cold_repeat)]
    out: dict = {"cold": statistics.median(b["seconds"] for b in builds), "cold_rss": max(b["rss"] for b in builds),
                 "cold_git_rss": max(b["git_rss"] for b in builds),
                 "rss_before": min(b["rss_before"] for b in builds), "index": builds[-1]["index_bytes"],
                 "runs_read": builds[-1]["runs_read"]}
    log(f"  cold build {out['cold']:.2f} s, {out['cold_rss'] / MIB:.0f} MiB, index {out['index'] / MIB:.1f} MiB")
    for name, args in (("runs", []), ("json", ["--json"])):
        argv = [*prov, "runs", *args]
        listing(argv, path, env)  # warm-up (bytecode, page cache)
        rounds = [listing(argv, path, env) for _ in range(repeat)]
        out[name] = {"first": statistics.median(r["first"] for r in rounds),
                     "first_min": min(r["first"] for r in rounds),
                     "total": statistics.median(r["total"] for r in rounds),
                     "rss": max(r["rss"] for r in rounds), "tree_rss": max(r["tree_rss"] for r in rounds),
                     "bytes": rounds[-1]["bytes"]}
        log(f"  prov runs {' '.join(args)}: first line {out[name]['first'] * 1000:.0f} ms, "
            f"all {out[name]['total']:.2f} s, {out[name]['rss'] / MIB:.0f} MiB")
    return out


# -- report ------------------------------------------------------------------------------


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 1 else f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def fmt_mib(n: float) -> str:
    return f"{n / MIB:,.1f} MiB" if n < 10 * MIB else f"{n / MIB:,.0f} MiB"


def verdict(value: float, target: str) -> str:
    return "met" if value <= TARGETS[target] else "**missed**"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--cold-repeat", type=int, default=3)
    p.add_argument("--baseline-src", help="a checkout's src/ to measure as 'before'")
    p.add_argument("--baseline-label", help="what --baseline-src is, for the report (e.g. a commit)")
    p.add_argument("--root", default=os.path.join(h.default_root(), "storage"))
    p.add_argument("--out", help="write the results into this Markdown file")
    p.add_argument("--prov-written", default="1000,10000,100000",
                   help="sizes of ledgers written through the API (the issue's workload; '' for none)")
    p.add_argument("--probe-cold", metavar="PATH", help=argparse.SUPPRESS)
    p.add_argument("--probe-write", nargs=2, metavar=("PATH", "RUNS"), help=argparse.SUPPRESS)
    p.add_argument("--probe-build", nargs=2, metavar=("PATH", "RUNS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe_cold:
        print(json.dumps(probe_cold(args.probe_cold)))
        return 0
    if args.probe_build:
        print(json.dumps({"seconds": build_ledger(args.probe_build[0], int(args.probe_build[1])).seconds}))
        return 0
    if args.probe_write:
        probe_write(args.probe_write[0], int(args.probe_write[1]))
        return 0

    sizes = [int(s) for s in args.sizes.split(",")]
    os.makedirs(args.root, exist_ok=True)
    home = os.path.join(args.root, "home")
    os.makedirs(home, exist_ok=True)
    env = h.bench_env(home, pycache=os.path.join(args.root, "pycache"))
    os.environ.update({k: v for k, v in env.items() if k.startswith("GIT_") or k == "HOME"})
    prov = h.find_prov()
    variants = {"after": {**env, "PYTHONPATH": SRC}}
    if args.baseline_src:
        variants["before"] = {**env, "PYTHONPATH": os.path.abspath(args.baseline_src),
                              "PYTHONPYCACHEPREFIX": os.path.join(args.root, "pycache-before")}
    load_before = os.getloadavg()
    infos = {n: ledger_repo(args.root, n, env, prov, print) for n in sizes}
    res: dict[str, dict[int, dict]] = {v: {} for v in variants}
    for n in sizes:
        for variant, venv in variants.items():
            print(f"{n:,} runs, {variant} ...")
            res[variant][n] = measure(infos[n], venv, prov, args.repeat, args.cold_repeat, print)
    written = [prov_written_repo(args.root, int(n), env, prov, print) for n in args.prov_written.split(",") if n]
    for info in written:
        for variant, venv in variants.items():
            print(f"{info['runs']:,} runs written through the API, {variant} ...")
            builds = [cold(info["path"], venv) for _ in range(args.cold_repeat)]
            info[variant] = {"index": builds[-1]["index_bytes"], "cold": statistics.median(b["seconds"] for b in builds),
                             "cold_all": [b["seconds"] for b in builds], "cold_rss": max(b["rss"] for b in builds),
                             "cold_git_rss": max(b["git_rss"] for b in builds)}
            print(f"  cold build {info[variant]['cold']:.2f} s, {info[variant]['cold_rss'] / MIB:.0f} MiB")
    load_after = os.getloadavg()

    head = "| measure | " + " | ".join(f"{n:,} runs" for n in sizes) + " | target (100,000 runs) |"
    rows = [head, "| --- | " + " | ".join("---:" for _ in sizes) + " | --- |"]

    def row(label: str, cell, target: str = "", key: str = "") -> None:
        for variant in variants:
            name = label + (f" ({variant})" if len(variants) > 1 else "")
            last = res[variant][sizes[-1]]
            verdict_cell = ""
            if target and sizes[-1] == 100_000 and variant == "after":
                verdict_cell = f"{target}: {verdict(cell(last, infos[sizes[-1]], raw=True), key)}"
            elif target:
                verdict_cell = target
            rows.append(f"| {name} | " + " | ".join(cell(res[variant][n], infos[n]) for n in sizes)
                        + f" | {verdict_cell} |")

    rows.append("| ledger on disk, as stored (`rev-list --disk-usage`) | "
                + " | ".join(f"{fmt_mib(infos[n]['stored'])} ({infos[n]['stored'] / n:,.0f} B/run)" for n in sizes)
                + " | |")
    rows.append("| the same objects packed afresh (`pack-objects --no-reuse-delta`, as `git repack -adf`) | "
                + " | ".join(f"{fmt_mib(infos[n]['repacked'])}" for n in sizes) + " | |")
    row("`index.sqlite`", lambda r, i, raw=False: f"{fmt_mib(r['index'])} ({r['index'] / i['runs']:,.0f} B/run)")
    row("index / ledger as stored", lambda r, i, raw=False: r["index"] / i["stored"] if raw
        else f"{r['index'] / i['stored']:.2f}×", "≤ 0.5×", "ratio")
    row("index / ledger packed afresh", lambda r, i, raw=False: f"{r['index'] / i['repacked']:.2f}×")
    row("cold build", lambda r, i, raw=False: r["cold"] if raw else fmt_s(r["cold"]), "≤ 10 s", "cold")
    row("cold build, peak RSS of the process", lambda r, i, raw=False: r["cold_rss"] / MIB if raw
        else fmt_mib(r["cold_rss"]), "≤ 150 MiB", "cold_rss")
    row("cold build, peak RSS of the largest process it started (the decoding child, its reader, `git cat-file`)",
        lambda r, i, raw=False: r["cold_git_rss"] / MIB if raw else fmt_mib(r["cold_git_rss"]), "≤ 150 MiB", "cold_rss")
    for name, label in (("runs", "`prov runs`"), ("json", "`prov runs --json`")):
        row(f"{label}: first line", lambda r, i, raw=False, k=name: r[k]["first"] if raw
            else fmt_s(r[k]["first"]), "≤ 200 ms", "first")
        row(f"{label}: all of it", lambda r, i, raw=False, k=name: fmt_s(r[k]["total"]))
        row(f"{label}: peak RSS of the process", lambda r, i, raw=False, k=name: r[k]["rss"] / MIB if raw
            else fmt_mib(r[k]["rss"]), "≤ 100 MiB", "runs_rss")
        row(f"{label}: peak RSS, largest of it and its `git cat-file`", lambda r, i, raw=False, k=name:
            r[k]["tree_rss"] / MIB if raw else fmt_mib(r[k]["tree_rss"]), "≤ 100 MiB", "runs_rss")
    written_rows = []
    if written:
        written_rows = [
            "",
            "The ratio and the cold build on ledgers written by git-prov itself, run after run through "
            "`Repository.start_run` (the issue's workload: three params, 100 points of one metric, a 1 KiB "
            "artifact; `code=False`, so no commit notes; a ledger commit a run, prov's own repacks as they "
            "came). Cold build: median of the builds listed, each a fresh process; peak RSS the largest:",
            "",
            "| runs | ledger as stored | `index.sqlite` | index / ledger | cold build (each build) | peak RSS, "
            "the process / the largest it started |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
            *(f"| {w['runs']:,} ({variant}) | {fmt_mib(w['stored'])} ({w['stored'] / w['runs']:,.0f} B/run) | "
              f"{fmt_mib(w[variant]['index'])} ({w[variant]['index'] / w['runs']:,.0f} B/run) | "
              f"{w[variant]['index'] / w['stored']:.2f}× | {fmt_s(w[variant]['cold'])} "
              f"({', '.join(fmt_s(c) for c in w[variant]['cold_all'])}) | {fmt_mib(w[variant]['cold_rss'])} / "
              f"{fmt_mib(w[variant]['cold_git_rss'])} |"
              for w in written for variant in variants),
        ]
    baseline = " --baseline-src BEFORE/src" if args.baseline_src else ""
    text = "\n".join([
        "## Storage: index size, cold build, whole-ledger listings",
        "",
        "The run index beside the ledger it indexes, its cold build, and `prov runs` over the whole ledger, on "
        "ledgers of synthetic runs (`benchmarks/synthetic_ledger.py`, the runs of the query benchmark: eight "
        "params, four summary metrics, three tags, a dataset and lineage to a base model, two earlier runs' "
        "artifacts and an output model; one run in a hundred with metric series), written in one commit by "
        "`git fast-import`."
        + (f" \"before\" is {args.baseline_label or 'the code of `--baseline-src`'} (`BEFORE`, a checkout of it), "
           "measured in the same run." if args.baseline_src else ""),
        "",
        "Reproduce:",
        "",
        "```bash",
        f"python benchmarks/bench_storage.py --sizes {args.sizes} --repeat {args.repeat} "
        f"--cold-repeat {args.cold_repeat} --prov-written '{args.prov_written}'{baseline} --out docs/performance.md",
        "```",
        "",
        f"Machine: {h.machine()}.",
        "",
        *rows,
        *written_rows,
        "",
        "- Ledger size: the bytes on disk of every object reachable from `refs/prov/ledger` "
        "(`git rev-list --objects --disk-usage refs/prov/ledger`), as stored: format 3's one commit as "
        "`git fast-import` wrote it, and, since 0.4.0, the format-4 checkpoint of run blobs that the "
        "benchmark's `prov init` (the ledger's first write) upgraded it to, beside it. The index is built from "
        "the checkpoint.",
        f"- Medians of {args.repeat} whole processes after one warm-up (cold builds: {args.cold_repeat}, each "
        "in a fresh process); peak RSS is the largest seen, for the whole process (interpreter and imports, "
        f"about {fmt_mib(res['after'][sizes[0]]['rss_before'])} before the build starts, included), and "
        "separately the largest peak of the processes it started (`RUSAGE_CHILDREN`: for a cold build the decoding "
        "child, the reader forked from it, `git cat-file`; for `prov runs` its `git cat-file`, "
        "`wait4` gives the larger of the two; the process alone is sampled from `/proc/PID/status` `VmHWM`). "
        "`prov runs` writes to a pipe read to the end; \"first line\" is from the process start.",
        f"- Load average (1 min) at the start {load_before[0]:.1f}, at the end {load_after[0]:.1f}: a shared "
        "2-core machine.",
    ])
    print(text)
    if args.out:
        h.write_section(args.out, "bench_storage", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
