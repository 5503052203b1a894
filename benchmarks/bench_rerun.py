"""What ``prov rerun`` adds to executing a run's command directly (issue 19): a script
that works for one second, run as ``python train.py`` and as ``prov rerun RUN``.

    python benchmarks/bench_rerun.py [--repeat 11] [--files 200] [--seconds 1.0]
                                     [--root DIR] [--out docs/performance.md]

A repository with ``--files`` tracked files and an untracked 1 MiB data file; the
script reads the data, sleeps ``--seconds`` and writes an output; it is recorded once
with ``prov run --input data.bin --output out.txt -- python train.py`` from a work tree
with an uncommitted change (so the rerun applies a patch). Each round then times both,
in alternating order: the direct command, and ``prov rerun RUN --check`` (scratch
worktree, checkout, patch, input check and copy, environment fingerprint, the command,
recording the new run, comparison, worktree removal). The overhead is the paired
difference per round. ``prov runs show RUN``, timed in the same rounds, is the floor
any ``prov`` command pays (starting Python, importing the CLI, opening the repository)
on the machine as loaded at that moment.

Not a test: nothing here asserts a time. ``--out`` rewrites only the marked block of
the given markdown file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h  # noqa: E402

TARGET_ADDED_S = 0.5
SCRIPT = """\
import time
data = open("data.bin", "rb").read()
time.sleep({seconds})
open("out.txt", "w").write(str(len(data)))
"""


def _timed(argv: list[str], cwd: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return elapsed


def build(root: str, files: int, seconds: float, env: dict[str, str]) -> tuple[str, str]:
    """The repository and the id of the recorded run."""
    repo = os.path.join(root, "repo")
    h.git(root, "init", "-q", repo, env=env)
    for i in range(files):
        path = os.path.join(repo, "src", f"mod_{i:03d}.py")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f"# module {i}\nVALUE = {i}\n" + "x = 1\n" * 40)
    with open(os.path.join(repo, "train.py"), "w") as f:
        f.write(SCRIPT.format(seconds=seconds))
    with open(os.path.join(repo, ".gitignore"), "w") as f:
        f.write("data.bin\nout.txt\n")
    with open(os.path.join(repo, "data.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
    h.git(repo, "add", "-A", env=env)
    h.git(repo, "commit", "-q", "-m", "bench", env=env)
    prov = h.find_prov()
    subprocess.run([*prov, "init", "--no-hooks"], cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(repo, "src", "mod_000.py"), "a") as f:
        f.write("TUNED = True\n")  # uncommitted: the run records a patch
    subprocess.run([*prov, "run", "--input", "data.bin", "--output", "out.txt", "--", sys.executable, "train.py"],
                   cwd=repo, env=env, check=True, stderr=subprocess.DEVNULL)
    out = subprocess.run([*prov, "runs", "--json", "--limit", "1"], cwd=repo, env=env, check=True,
                         capture_output=True, text=True).stdout
    import json

    return repo, json.loads(out)[0]["id"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--root", help="where to build (default: a temporary directory)")
    ap.add_argument("--out", help="markdown file whose bench_rerun block is rewritten")
    args = ap.parse_args(argv)
    root = args.root or tempfile.mkdtemp(prefix="bench-rerun-")
    home = os.path.join(root, "home")
    os.makedirs(home, exist_ok=True)
    env = h.bench_env(home, pycache=os.path.join(root, "pycache"))
    started = time.time()
    machine = h.machine()
    repo, run_id = build(root, args.files, args.seconds, env)
    direct_argv = [sys.executable, "train.py"]
    rerun_argv = [*h.find_prov(), "rerun", run_id, "--check"]
    floor_argv = [*h.find_prov(), "runs", "show", run_id]
    times: dict[str, list[float]] = {"direct": [], "rerun": [], "floor": []}
    for i in range(args.repeat + 1):  # round 0 warms the caches and is not counted
        order = [("direct", direct_argv), ("rerun", rerun_argv), ("floor", floor_argv)]
        for name, cmd in order if i % 2 else reversed(order):
            elapsed = _timed(cmd, repo, env)
            if i:
                times[name].append(elapsed)
        if i:
            print(f"round {i}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), file=sys.stderr)
    direct, rerun, floor = times["direct"], times["rerun"], times["floor"]
    added = [r - d for r, d in zip(rerun, direct, strict=True)]
    beyond = [a - f for a, f in zip(added, floor, strict=True)]
    med = statistics.median(added)
    verdict = "met" if med <= TARGET_ADDED_S else "**missed**"
    text = f"""Machine: {machine}.

A repository with {args.files} tracked files and an untracked 1 MiB input; a script that reads it, sleeps
{args.seconds:g} s and writes an output, recorded with `prov run --input data.bin --output out.txt -- python
train.py` from a work tree with an uncommitted change. Rounds: {args.repeat} after 1 warm-up round, order
alternating; {time.time() - started:.0f} s in all. Reproduce with:

```bash
python benchmarks/bench_rerun.py --repeat {args.repeat} --files {args.files} --seconds {args.seconds:g}
```

| variant | median s | min s | max s |
| --- | ---: | ---: | ---: |
| `python train.py` (direct) | {statistics.median(direct):.3f} | {min(direct):.3f} | {max(direct):.3f} |
| `prov rerun RUN --check` | {statistics.median(rerun):.3f} | {min(rerun):.3f} | {max(rerun):.3f} |
| `prov runs show RUN` (the floor of any `prov` command) | {statistics.median(floor):.3f} | {min(floor):.3f} | {max(floor):.3f} |

Overhead of `prov rerun` (median of the per-round differences): **{med:.3f} s** (min {min(added):.3f}, max
{max(added):.3f}); target ≤ {TARGET_ADDED_S} s, worktree creation included: {verdict}. Beyond the floor of a `prov`
command (median of the per-round differences, rerun − direct − floor): {statistics.median(beyond):.3f} s.
"""
    print(text)
    if args.out:
        h.write_section(args.out, "bench_rerun", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
