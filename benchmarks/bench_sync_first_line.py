"""The first line of ``prov sync mlflow`` over a big ledger (issue 14, streaming reads):
the time from the process start to the line it says on stderr (``--progress``; by
default on a terminal) before MLflow is imported or the tracker contacted.

    python benchmarks/bench_sync_first_line.py --repo LEDGER_REPO [--repeat 7] [--out docs/performance.md]

``LEDGER_REPO`` is a repository with a big ledger (``bench_memory.py``'s synthetic one,
100,000 runs); it is copied under ``--root`` once and never changed. The copy gets a
local sync state recording every run but the newest ten as synced
(``bench_memory.sync_target``'s entries), put back before each round. Each round runs
``prov sync mlflow --dry-run --progress`` to a pipe and stops it once its first stderr
line has come (a dry run writes nothing), paired with ``prov runs --limit 1`` (the first
line of the cheapest whole-ledger command: the start-up floor). Medians of ``--repeat``
rounds after a warm-up. Not a test: nothing asserts a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h  # noqa: E402
from bench_memory import ENTRY, NEW  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
TARGET = 0.200


def prepare(source: str, root: str, env: dict[str, str], prov: list[str]) -> dict[str, str]:
    """The copy of ``source`` under ``root`` with its index built and a sync state made
    (once), and the tracking URI the state is for."""
    path = os.path.join(root, "repo")
    uri = f"sqlite:///{os.path.join(root, 'mlflow.db')}"
    pristine = os.path.join(root, "state.sqlite")
    if not os.path.exists(pristine):
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(source, path, symlinks=True)
        shutil.rmtree(os.path.join(path, ".git", "prov", "sync"), ignore_errors=True)
        subprocess.run([*prov, "runs", "--limit", "1"], cwd=path, env=env, check=True, capture_output=True)
        with sqlite3.connect(os.path.join(path, ".git", "prov", "index.sqlite")) as con:
            plan = [(r.hex(), t.hex()) for r, t in con.execute(
                "SELECT id, tree FROM runs WHERE deleted = 0 ORDER BY created, id")]
        con.close()
        with sqlite3.connect(pristine + ".part") as con:
            con.executescript("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
                              "CREATE TABLE runs(run TEXT PRIMARY KEY, entry TEXT NOT NULL) WITHOUT ROWID;")
            con.execute("INSERT INTO meta VALUES ('format_version', '2'), ('target', ?)", (f"mlflow {uri}",))
            con.executemany("INSERT INTO runs VALUES (?, ?)", (
                (r, json.dumps({**ENTRY, "version": t, "external_id": uuid.uuid4().hex}, sort_keys=True,
                               separators=(",", ":"))) for r, t in plan[:-NEW]))
        con.close()
        os.replace(pristine + ".part", pristine)
    from gitprov.sync.state import target_key

    state = os.path.join(path, ".git", "prov", "sync", target_key("mlflow", uri) + ".sqlite")
    os.makedirs(os.path.dirname(state), exist_ok=True)
    return {"path": path, "uri": uri, "pristine": pristine, "state": state}


def first_line(argv: list[str], cwd: str, env: dict[str, str], stream: str) -> tuple[float, str]:
    """Seconds from the start of ``argv`` to its first line on ``stream``, and that line;
    the process is stopped there."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = getattr(proc, stream).readline()  # type: ignore[union-attr]
    seconds = time.perf_counter() - t0
    proc.terminate()
    proc.communicate()
    return seconds, line.decode(errors="replace").rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", required=True, help="a repository with a big ledger (copied, never changed)")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--root", default=os.path.join(h.default_root(), "sync-first-line"))
    p.add_argument("--out", help="write the results into this Markdown file")
    args = p.parse_args(argv)
    os.makedirs(args.root, exist_ok=True)
    home = os.path.join(args.root, "home")
    os.makedirs(home, exist_ok=True)
    env = {**h.bench_env(home, pycache=os.path.join(args.root, "pycache")), "PYTHONPATH": SRC,
           "MLFLOW_LOGGING_LEVEL": "WARNING"}
    prov = h.find_prov()
    target = prepare(args.repo, args.root, env, prov)
    with sqlite3.connect(os.path.join(target["path"], ".git", "prov", "index.sqlite")) as con:
        runs = f"{con.execute('SELECT count(*) FROM runs WHERE deleted = 0').fetchone()[0]:,}"
    con.close()
    sync = [*prov, "sync", "mlflow", "--tracking-uri", target["uri"], "--dry-run", "--progress"]
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {"sync": [], "runs": []}
    line = ""
    for i in range(args.repeat + 1):  # a warm-up first (bytecode, page cache), not counted
        shutil.copyfile(target["pristine"], target["state"])
        s, line = first_line(sync, target["path"], env, "stderr")
        r, _ = first_line([*prov, "runs", "--limit", "1"], target["path"], env, "stdout")
        if i:
            times["sync"].append(s)
            times["runs"].append(r)
        print(f"  round {i}: sync {s * 1000:,.0f} ms, runs {r * 1000:,.0f} ms")
    load_after = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    gaps = [s - r for s, r in zip(times["sync"], times["runs"], strict=True)]
    text = "\n".join([
        "## The first line of `prov sync mlflow` over a big ledger",
        "",
        "`prov sync mlflow --dry-run --progress` over a ledger of "
        f"{runs} runs whose local sync state records all but the newest {NEW} as synced: the time "
        "from the process start to its first line on stderr, said from the run index before MLflow is imported "
        "or the tracker contacted (on a terminal it comes without `--progress`). Paired with `prov runs --limit 1` "
        "(the start-up floor of a whole-ledger command).",
        "",
        "Reproduce:",
        "",
        "```bash",
        f"python benchmarks/bench_sync_first_line.py --repo LEDGER_REPO --repeat {args.repeat} --out docs/performance.md",
        "```",
        "",
        f"Machine: {h.machine()}.",
        "",
        "| command | first line, median (min–max) | target |",
        "| --- | --- | --- |",
        f"| `prov sync mlflow --dry-run --progress` (stderr) | **{med['sync'] * 1000:,.0f} ms** "
        f"({min(times['sync']) * 1000:,.0f}–{max(times['sync']) * 1000:,.0f}) | ≤ {TARGET * 1000:.0f} ms "
        f"({'met' if med['sync'] <= TARGET else 'missed'}) |",
        f"| `prov runs --limit 1` (stdout) | {med['runs'] * 1000:,.0f} ms "
        f"({min(times['runs']) * 1000:,.0f}–{max(times['runs']) * 1000:,.0f}) | |",
        "",
        f"- The sync's line came a median of {statistics.median(gaps) * 1000:,.0f} ms "
        "after `prov runs --limit 1`'s first line in the same round (the start-up both share dominates at this load).",
        f"- The line: `{line}`.",
        f"- Medians of {args.repeat} rounds after a warm-up; load average (1 min) at the start "
        f"{load_before[0]:.1f}, at the end {load_after[0]:.1f} (a shared 2-core machine).",
    ])
    print(text)
    if args.out:
        h.write_section(args.out, "bench_sync_first_line", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
