"""An unreachable MLflow server: how long ``prov sync mlflow`` takes to give up (issue 17).

    python benchmarks/bench_sync_unreachable.py [--runs 20] [--repeat 5]
                                                [--src after=SRC] [--src before=SRC]
                                                [--before-cap 900] [--out docs/performance.md]

Setup (untimed): a repository with ``--runs`` ended runs made with git-prov's API. Each
round runs a whole ``prov sync mlflow --tracking-uri http://127.0.0.1:<port>`` process
(``python -m gitprov.cli.entry`` with ``PYTHONPATH=SRC/src``: every ``--src`` checkout in
turn) against a port nothing listens on (and, except for ``before``, a socket that
accepts connections and never answers), off a terminal (stdin from /dev/null, output to
pipes), with default options and again with ``--retries 0``, and records the exit code,
the wall time to exit and the lines printed on stderr. A round that runs past
``--before-cap`` seconds is stopped and reported as "more than" that (the code before
issue 17 waits about four minutes a run). The sync state is removed between rounds.
Not a test: nothing asserts a time. ``--out`` rewrites only the block of this script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h  # noqa: E402

REPRODUCE = ("python benchmarks/bench_sync_unreachable.py --src before=BEFORE --src after=. --repeat 3 "
             "--before-cap 300 --out docs/performance.md   # BEFORE: a checkout from before issue 17")


def make_repository(root: str, runs: int, src: str) -> str:
    path = os.path.join(root, "repo")
    env = dict(os.environ)
    h.git(root, "init", "-q", path, env=env)
    with open(os.path.join(path, "a"), "w") as f:
        f.write("x\n")
    h.git(path, "add", "a", env=env)
    h.git(path, "commit", "-qm", "first", env=env)
    code = ("import sys, gitprov\n"
            "gitprov.init(sys.argv[1], hooks=False)\n"
            "repo = gitprov.Repository(sys.argv[1])\n"
            "for i in range(int(sys.argv[2])):\n"
            "    with repo.start_run(f'r{i}', params={'lr': 0.1}, environment=False) as run:\n"
            "        run.log_metric('loss', 1.0 / (i + 1))\n")
    subprocess.run([sys.executable, "-c", code, path, str(runs)], check=True,
                   env={**os.environ, "PYTHONPATH": os.path.join(src, "src")})
    return path


def one(repo: str, src: str, port: int, extra: list[str], cap: float) -> dict:
    shutil.rmtree(os.path.join(repo, ".git", "prov", "sync"), ignore_errors=True)
    argv = [sys.executable, "-m", "gitprov.cli.entry", "sync", "mlflow", "--tracking-uri",
            f"http://127.0.0.1:{port}", *extra]
    env = {**os.environ, "PYTHONPATH": os.path.join(src, "src")}
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=cap)
        seconds, capped = time.monotonic() - started, False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        seconds, capped = cap, True
    return {"seconds": seconds, "capped": capped, "code": proc.returncode, "stderr": err.strip().splitlines(),
            "stdout_lines": len(out.splitlines())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5, help="rounds per checkout and option set (median reported)")
    ap.add_argument("--src", action="append", default=[], metavar="NAME=PATH",
                    help="a git-prov checkout to measure (default: after=this checkout)")
    ap.add_argument("--before-cap", type=float, default=900.0, help="seconds after which a round is stopped")
    ap.add_argument("--out", help="markdown file whose bench_sync_unreachable block is rewritten")
    args = ap.parse_args(argv)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sources = [tuple(s.split("=", 1)) for s in args.src] or [("after", here)]
    root = tempfile.mkdtemp(prefix="prov-bench-unreachable-")
    h.isolate(root)
    try:
        repo = make_repository(root, args.runs, os.path.abspath(sources[-1][1]))
        port = h.free_port()
        rows = []
        silent = socket.socket()  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        cases = [("default options", port, []), ("--retries 0", port, ["--retries", "0"]),
                 ("a server that never answers, default options", silent.getsockname()[1], [])]
        for name, src in sources:
            for label, target, extra in cases:
                if name == "before" and target != port:
                    continue  # MLflow's 120 s timeout, seven retries: not worth the wait
                rounds = []
                for i in range(args.repeat if name != "before" else 1):
                    r = one(repo, os.path.abspath(src), target, extra, args.before_cap)
                    print(f"{name} {label} round {i}: {r['seconds']:.1f}s exit {r['code']} "
                          f"({len(r['stderr'])} stderr lines)", file=sys.stderr)
                    rounds.append(r)
                med = statistics.median(r["seconds"] for r in rounds)
                last = rounds[-1]
                shown = f"more than {med:.0f}" if last["capped"] else f"{med:.1f}"
                rows.append((name, label, shown, len(rounds), "killed" if last["capped"] else last["code"],
                             len(last["stderr"]), last["stderr"][-1] if last["stderr"] else ""))
        lines = [f"`prov sync mlflow` of {args.runs} ended runs to `http://127.0.0.1:<port>` with nothing listening "
                 "(connection refused), and to a socket that accepts connections and never answers, a whole "
                 "process off a terminal. Reproduce:", "", "```bash", REPRODUCE,
                 "```", "", "| checkout | options | time to exit, s (median) | rounds | exit code | stderr lines |",
                 "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {n} | {lbl} | {t} | {k} | {c} | {e} |" for n, lbl, t, k, c, e, _ in rows]
        lines += ["", "The last line on stderr:", ""]
        lines += [f"- {n}, {lbl}: " + (f"`{msg[:200]}`" if msg else "(nothing yet when it was stopped)")
                  for n, lbl, _, _, _, _, msg in rows]
        lines += ["", f"- Machine: {h.machine()}."]
        text = "\n".join(lines)
        print(text)
        if args.out:
            h.write_section(args.out, "bench_sync_unreachable", text)
        silent.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
