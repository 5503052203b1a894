"""``prov show`` of two installed versions, interleaved, in the same repository.

    python benchmarks/compare_show.py --repo DIR --prov BEFORE=/path/venv-a/bin/prov \\
        --prov AFTER=/path/venv-b/bin/prov [--rounds 31]

For comparing a change on the hot path against the code before it (each version in its
own virtualenv): every round runs ``prov show HEAD`` and ``prov show HEAD~5000`` with
each version, alternating which goes first, in a disposable copy of ``--repo`` (e.g. the
10,000-commit repository ``bench_foundation.py`` caches). Prints the median and minimum
wall time and CPU time (user + system of the child) per version. Bytecode caching is
left on. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

CASES = {"show HEAD": ["show", "HEAD"], "show HEAD~5000": ["show", "HEAD~5000"]}


def timed(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=True)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True, help="a repository with captures (copied, never changed)")
    ap.add_argument("--prov", action="append", required=True, metavar="NAME=PATH", help="a version's prov script")
    ap.add_argument("--rounds", type=int, default=31)
    args = ap.parse_args()
    versions = dict(item.split("=", 1) for item in args.prov)
    tmp = tempfile.mkdtemp(prefix="compare-show-")
    try:
        repo = os.path.join(tmp, "repo")
        shutil.copytree(args.repo, repo, symlinks=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(HOME=tmp, GIT_CONFIG_NOSYSTEM="1")
        results: dict[tuple[str, str], list[tuple[float, float]]] = {(v, c): [] for v in versions for c in CASES}
        for exe in versions.values():  # bytecode written, caches warm
            for case in CASES.values():
                subprocess.run([exe, *case], cwd=repo, env=env, capture_output=True, check=True)
        for i in range(args.rounds):
            order = list(versions.items())
            for name, exe in order if i % 2 == 0 else reversed(order):
                for case, argv in CASES.items():
                    results[(name, case)].append(timed([exe, *argv], repo, env))
        for case in CASES:
            for k, what in ((0, "wall ms"), (1, "cpu ms")):
                cells = []
                for name in versions:
                    values = [r[k] for r in results[(name, case)]]
                    cells.append(f"{name} median {statistics.median(values):6.1f} min {min(values):6.1f}")
                print(f"{case:15s} {what}: " + " | ".join(cells))
        print(os.getloadavg())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
