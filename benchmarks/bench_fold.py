"""What folding a format-4 log costs (``store/ledger_log.py``, branch ``format4-log``):
the fold in Python and through git, and the fold cache built, reopened and asked for
one run, on a repository of ``study_format4.py``'s candidate J.

    python benchmarks/study_format4.py --runs 100000 --candidates J --keep --root DIR
    python benchmarks/bench_fold.py DIR/gitprov-study-format4-*/cand-J [--python]

The study's J commits carry format 3's ``format`` marker (they are written through
``Ledger.apply``), so the log's marker is taken to be that one here. Wall seconds and
peak resident memory of this process and of the git processes it started (each a
fresh run: the cache file is removed first and after). ``--python`` also times the
fold through prov's own object layer (~10 s at 100,000 runs).

A real log (format 4, as prov writes it) with ``--log``; ``--repeat N`` folds it N times
(the median is reported); ``--src DIR`` measures another checkout's ``src/`` (before and
after a change, in turns):

    python benchmarks/bench_fold.py --log --fold-only --repeat 5 [--src OLD/src] REPO
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

_SRC = sys.argv[sys.argv.index("--src") + 1] if "--src" in sys.argv[:-1] else \
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
sys.path.insert(0, _SRC)

from gitprov.store import ledger_log as log  # noqa: E402
from gitprov.store.ledger import LEDGER_FORMAT  # noqa: E402
from gitprov.store.repo import GitRepository  # noqa: E402


def peaks() -> dict[str, int]:
    return {"python_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "git_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("repo")
    p.add_argument("--python", action="store_true", help="also fold through prov's object layer")
    p.add_argument("--log", action="store_true", help="a real log (format 4), not the study's candidate J")
    p.add_argument("--repeat", type=int, default=1, help="folds through git (their median is reported)")
    p.add_argument("--fold-only", action="store_true", help="only the fold through git, not the cache")
    p.add_argument("--src", help="the src/ directory of the checkout to measure (default: this one's)")
    args = p.parse_args(argv)
    if not args.log:
        log.LOG_MARKER = LEDGER_FORMAT
    repo = GitRepository.open(args.repo)
    tip = repo.refs.read("refs/prov/ledger")
    out: dict[str, object] = {"src": os.path.abspath(_SRC)}
    seconds = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        entries = log.fold_with_git(repo, tip)
        seconds.append(time.perf_counter() - t0)
    out["fold_with_git_s"] = round(statistics.median(seconds), 2)
    out["fold_with_git_each_s"] = [round(x, 2) for x in seconds]
    out["entries"] = len(entries or {})
    out.update(peaks())
    if args.fold_only:
        print(json.dumps(out, indent=1))
        return 0
    cache_path = os.path.join(repo.common_dir or repo.git_dir, "prov", log.FoldCache.FILE)
    if os.path.exists(cache_path):
        os.remove(cache_path)
    try:
        t0 = time.perf_counter()
        cache = log.FoldCache(repo)
        cache.update(tip)
        cache.close()
        out["cache_build_s"] = round(time.perf_counter() - t0, 2)
        out["cache_mb"] = round(os.path.getsize(cache_path) / 1e6, 1)
        t0 = time.perf_counter()
        cache = log.FoldCache(repo)
        cache.update(tip)
        run = cache.names_with_prefix("ab")[0][:repo.fmt.hex_len]
        files = log.LogView(repo, tip, cache)._files(run)
        out["reopen_and_one_run_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        out["one_run_entries"] = len(files)
        cache.close()
    finally:
        if os.path.exists(cache_path):
            os.remove(cache_path)
    if args.python:
        t0 = time.perf_counter()
        out["fold_python_entries"] = len(log.fold(repo, tip))
        out["fold_python_s"] = round(time.perf_counter() - t0, 2)
    out.update({f"end_{k}": v for k, v in peaks().items()})
    out["load"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
