"""``prov export`` at scale: every run of a synthetic 10,000-run ledger (issue 20) to each
format, time and size.

    python benchmarks/bench_export.py [--runs 10000] [--repeat 3] [--out docs/performance.md]
    python benchmarks/bench_export.py --one-run-of 3000   # the agent: history or record

The ledger is written by ``synthetic_ledger.py`` (runs with parameters, metrics, a
dataset version, lineage to two earlier runs' artifacts, a base model and an output
model; one ledger commit), cached under ``--root`` as ``bench_index.py`` caches it. Each format
is measured in a fresh child process (``--probe``), imports and one warm-up export
untimed: the median of ``--repeat`` calls of ``Repository.export(FORMAT, output=FILE)``
(run selection, the graph, the document, serialisation, written to a file as
``prov export -o FILE`` does), the size of the output, its sha256 (the same on every
call: exports are deterministic) and the process's peak RSS.
``--one-run-of N``: a ledger of N runs made one by one (N + 1 ledger commits, cached
under ``--root``), the export of one run of it (PROV-JSON, median of 7) against the
``git log`` over the whole ledger history that found a run's agent before records
carried ``user`` (``graph.run_recorders``, still the fallback for older records).
Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h  # noqa: E402
from bench_index import ledger_repo  # noqa: E402

FORMATS = ("prov-json", "prov-n", "prov-o", "openlineage", "in-toto")


def probe(path: str, fmt: str, repeat: int) -> dict:
    import gitprov

    repo = gitprov.Repository(path)
    out = os.path.join(os.path.dirname(path), f"export-out.{fmt}")

    def export() -> None:  # to a file, as `prov export -o FILE`: streamed where the format allows
        with open(out, "wb") as f:
            repo.export(fmt, output=f)

    export()  # warm-up: imports, first reads
    times, digests = [], set()
    for _ in range(repeat):
        t0 = time.perf_counter()
        export()
        times.append(time.perf_counter() - t0)
        sha, lines = hashlib.sha256(), 0
        with open(out, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
                lines += block.count(b"\n")
        digests.add(sha.hexdigest())
    size = os.path.getsize(out)
    os.unlink(out)
    return {"times": times, "size": size, "records": lines, "digests": sorted(digests),
            "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def one_run_of(root: str, n: int) -> str:
    """Export one run of a ledger of ``n`` runs made one by one: now, and the agent's old
    ``git log`` over the whole ledger history."""
    import gitprov
    from gitprov.exports.graph import run_recorders

    path = os.path.join(root, f"export-history-{n}")
    if not os.path.exists(os.path.join(path, ".done")):
        if os.path.exists(path):
            import shutil

            shutil.rmtree(path)
        os.makedirs(path)
        env = dict(os.environ)
        h.git(path, "init", "-q", env=env)
        h.git(path, "commit", "-q", "--allow-empty", "-m", "code", env=env)
        gitprov.init(path, hooks=False)
        repo = gitprov.Repository(path)
        for i in range(n):
            with repo.start_run(name=f"r{i}", environment=False) as run:
                run.log_metric("m", i)
        open(os.path.join(path, ".done"), "w").close()
    repo = gitprov.Repository(path)
    ids = sorted(r.id for r in repo.runs())
    run_id = ids[len(ids) // 2]
    commits = int(h.git(path, "rev-list", "--count", "refs/prov/ledger", env=dict(os.environ)).strip())
    repo.export("prov-json", [run_id])

    def median_ms(call) -> float:
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000

    now = median_ms(lambda: repo.export("prov-json", [run_id]))
    history = median_ms(lambda: run_recorders(repo.store, {run_id}))
    return (f"Export of one run of a ledger of {n:,} runs made one by one ({commits:,} ledger commits), "
            f"PROV-JSON, median of 7: {now:.1f} ms; the `git log` over the ledger's history that found "
            f"its agent before `user`: {history:.1f} ms; {h.machine()}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--root", default=h.default_root())
    parser.add_argument("--out", help="write the results into this Markdown file (docs/performance.md)")
    parser.add_argument("--one-run-of", type=int, metavar="N",
                        help="time the export of one run of a ledger of N runs made one by one")
    parser.add_argument("--probe", nargs=2, metavar=("PATH", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.probe[0], args.probe[1], args.repeat)))
        return 0
    os.makedirs(args.root, exist_ok=True)
    h.isolate(args.root)
    if args.one_run_of:
        print(one_run_of(args.root, args.one_run_of))
        return 0
    path = ledger_repo(args.root, args.runs, dict(os.environ), h.find_prov(), print)
    rows = []
    for fmt in FORMATS:
        proc = subprocess.run([sys.executable, __file__, "--probe", path, fmt, "--repeat", str(args.repeat)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{fmt}: {proc.stderr}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        med = statistics.median(result["times"])
        deterministic = "yes" if len(result["digests"]) == 1 else "**no**"
        rows.append(f"| `{fmt}` | {med:.1f} s | {min(result['times']):.1f} s | {result['size'] / 2**20:.1f} MiB | "
                    f"{result['size'] / args.runs / 1024:.2f} KiB | {result['records']:,} | "
                    f"{result['rss'] / 2**20:.0f} MiB | {deterministic} |")
        print(rows[-1], flush=True)
    text = "\n".join([
        f"Export of every run of a synthetic ledger of {args.runs:,} runs to a file "
        "(`Repository.export(FORMAT, output=FILE)`, "
        f"median of {args.repeat} after a warm-up, each format in a fresh process), {h.machine()}.",
        "",
        "| format | median | min | size | per run | lines | peak RSS | same bytes every call |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
    ])
    print(text)
    if args.out:
        h.write_section(args.out, "bench_export", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
