"""The hot paths of two source trees of git-prov side by side, interleaved round by round:
``prov show HEAD`` with 20 runs at HEAD, ``prov capture --force``, ``git commit`` with the
post-commit hook, and complete runs per second (10 metric points) in one process.

    python benchmarks/compare_hot_paths.py --src BEFORE=/path/old/src --src AFTER=/path/new/src [--rounds 11]
                                           [--env NAME=VAR=VALUE ...]

``--env`` sets an environment variable for one source's processes (the same tree twice,
``--env LOG=GIT_PROV_LEDGER_LAYOUT=log``: format 3 against format 4's log).

Each source tree gets its own repository (``prov init`` by that version), so each reads
the format it writes. A round waits until no ``git repack`` that prov started in the
background still runs, so each path is timed on its own. Medians; not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PROV = [sys.executable, "-c", "import sys; from gitprov.cli.entry import main; sys.argv[0] = 'prov'; main()"]
RUNS = """
import sys, time, gitprov
repo = gitprov.Repository('.')
n = int(sys.argv[1])
start = time.perf_counter()
for i in range(n):
    with repo.start_run(name=f'r{i}', params={'i': i}, environment=False) as run:
        for step in range(10):
            run.log_metric('loss', 1.0 / (step + 1), step=step)
print(n / (time.perf_counter() - start))
"""
CASES = ("show HEAD (20 runs)", "capture --force", "git commit (hook)", "runs/s (10 points)")


def idle() -> None:
    """Wait while a background ``git repack`` started by prov still runs."""
    while subprocess.run(["pgrep", "-f", "repack --geometric"], capture_output=True).returncode == 0:
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", action="append", required=True, metavar="NAME=PATH", help="a source tree (its src/)")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VAR=VALUE",
                    help="an environment variable for one source's processes")
    args = ap.parse_args()
    sources = dict(item.split("=", 1) for item in args.src)
    extra: dict[str, dict[str, str]] = {name: {} for name in sources}
    for item in args.env:
        name, var, value = item.split("=", 2)
        extra[name][var] = value
    root = tempfile.mkdtemp(prefix="hotpath-")
    home = os.path.join(root, "home")
    os.makedirs(home)
    with open(os.path.join(home, ".gitconfig"), "w") as f:
        f.write("[user]\n\tname = Bench\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n")

    def sh(cmd: list[str], cwd: str, name: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=sources[name], HOME=home, GIT_CONFIG_NOSYSTEM="1", **extra[name])
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode cached, as installed
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=True)

    def timed(cmd: list[str], cwd: str, name: str) -> float:
        start = time.perf_counter()
        sh(cmd, cwd, name)
        return (time.perf_counter() - start) * 1000

    repos = {}
    for i, name in enumerate(sources):
        path = os.path.join(root, f"repo{i}")
        sh(["git", "init", "-q", path], root, name)
        with open(os.path.join(path, "a.txt"), "w") as f:
            f.write("a\n")
        sh(["git", "add", "a.txt"], path, name)
        sh(["git", "commit", "-q", "-m", "a"], path, name)
        sh([*PROV, "init"], path, name)
        sh(["git", "add", "-A"], path, name)
        sh(["git", "commit", "-q", "-m", "init"], path, name)
        sh([sys.executable, "-c", RUNS, "20"], path, name)
        sh([*PROV, "show", "HEAD"], path, name)  # bytecode compiled before timing
        repos[name] = path

    results: dict[str, dict[str, list[float]]] = {name: {case: [] for case in CASES} for name in sources}
    for rnd in range(args.rounds):
        order = list(sources) if rnd % 2 == 0 else list(reversed(sources))
        for name in order:
            path, got = repos[name], results[name]
            idle()
            got[CASES[0]].append(timed([*PROV, "show", "HEAD"], path, name))
            got[CASES[1]].append(timed([*PROV, "capture", "--force"], path, name))
            with open(os.path.join(path, "a.txt"), "a") as f:
                f.write("x\n")
            idle()
            got[CASES[2]].append(timed(["git", "commit", "-q", "-am", f"c{rnd}"], path, name))
            got[CASES[3]].append(float(sh([sys.executable, "-c", RUNS, "50"], path, name).stdout))
    names = list(sources)
    print(f"| measure | {' | '.join(names)} | ratio |")
    print("| --- |" + " --- |" * (len(names) + 1))
    for case in CASES:
        medians = [statistics.median(results[n][case]) for n in names]
        unit = "" if "runs/s" in case else " ms"
        print(f"| {case} | " + " | ".join(f"{m:.1f}{unit}" for m in medians) + f" | {medians[-1] / medians[0]:.2f}× |")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
