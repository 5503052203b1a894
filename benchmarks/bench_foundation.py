"""Whole-process latency of ``prov show`` and ``prov capture`` on a 10,000-commit
repository, against the git floor, in the same run (issue 2, point 11).

    python benchmarks/bench_foundation.py [--commits 10000] [--repeat 21]
                                          [--root DIR] [--out docs/performance.md]

The repository is built once (``git fast-import`` for the commits, one
``Notes.add`` call for a capture on every commit, then ``git gc --prune=now``) and
cached under ``--root`` (default: ``$TMPDIR/gitprov-bench``); a loose-objects copy
(``git unpack-objects``) is measured too. Measurements run on disposable copies, so
the cache stays pristine. Every round runs every command once (round-robin), so slow
drift of a shared machine hits all rows alike; the table gives median, p90 and min.

Not a test: nothing here asserts a time. ``--out`` rewrites only the marked block of
the given markdown file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h  # noqa: E402

TARGETS_MS = {"prov show HEAD~5000": 80.0, "prov capture": 60.0}


def cases_for(repo: str, label: str, prov: list[str], env: dict[str, str], rev: str, with_capture: bool) -> list[h.Case]:
    floor = f"git notes --ref=prov show {rev}" + label
    counter = [0]

    def new_commit() -> None:
        counter[0] += 1
        with open(os.path.join(repo, "src", "mod_00.py"), "a") as f:
            f.write(f"# bench edit {counter[0]}\n")
        # -c core.hooksPath=/dev/null: no hook may capture before we time prov capture
        h.git(repo, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-a", "-m", f"bench {counter[0]}", env=env)

    cases = [
        h.Case(floor, ["git", "notes", "--ref=prov", "show", rev], repo, note="the floor"),
        h.Case(f"git rev-parse {rev}" + label, ["git", "rev-parse", rev], repo, note="revision walk only"),
        h.Case(f"prov show {rev}" + label, [*prov, "show", rev], repo, floor=floor),
        h.Case(f"prov show --json {rev}" + label, [*prov, "show", "--json", rev], repo, floor=floor),
        h.Case("prov show HEAD" + label, [*prov, "show", "HEAD"], repo, floor=floor, note="no parent walk"),
    ]
    if not label:
        cases.append(
            h.Case(f"prov show {rev} (no bytecode cache)", [*prov, "show", rev], repo, floor=floor,
                   env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": os.path.join(os.path.dirname(repo), "nopyc")},
                   note="PYTHONDONTWRITEBYTECODE=1 and an empty cache: compiles git-prov each call")
        )
    if with_capture:
        cases.append(
            h.Case("prov capture" + label, [*prov, "capture"], repo, setup=new_commit, floor=floor,
                   note="fresh commit each round (made untimed, without hooks)")
        )
    return cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--root", default=h.default_root(), help="where the built repositories are cached")
    ap.add_argument("--no-loose", action="store_true", help="skip the loose-objects variant")
    ap.add_argument("--out", help="markdown file whose bench_foundation block is rewritten")
    args = ap.parse_args(argv)
    if args.commits < 2:
        ap.error("--commits must be at least 2")

    built = h.build_repository(args.root, args.commits)
    rev = f"HEAD~{args.commits // 2}"
    prov = h.find_prov()
    py = sys.executable
    work = tempfile.mkdtemp(prefix="gitprov-bench-run-")
    try:
        home = os.path.join(work, "home")
        os.makedirs(home)
        env = h.bench_env(home, pycache=os.path.join(work, "pycache"))
        packed = h.working_copy(built["packed"], work, "packed")
        cases = [
            h.Case("python -c pass", [py, "-c", "pass"], work, note="interpreter start"),
            h.Case("python -c 'import msgspec'", [py, "-c", "import msgspec"], work),
            h.Case("python -c 'import gitprov.api'", [py, "-c", "import gitprov.api"], work,
                   note="everything prov show imports"),
            *cases_for(packed, "", prov, env, rev, with_capture=True),
        ]
        if not args.no_loose:
            loose = h.working_copy(built["loose"], work, "loose")
            cases += cases_for(loose, " (loose)", prov, env, rev, with_capture=False)
        print(f"measuring {len(cases)} commands × {args.repeat} rounds (round-robin) ...")
        h.measure(cases, env, args.repeat)
        targets = {name: ms for name, ms in TARGETS_MS.items()}
        result = h.table(cases, targets)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    command = f"python benchmarks/bench_foundation.py --commits {args.commits} --repeat {args.repeat}"
    text = "\n".join([
        f"Machine: {h.machine()}.",
        "",
        f"Repository: {args.commits} commits, one capture note each, packed by `git gc --prune=now`"
        + ("; the `(loose)` rows use the same repository with every object loose." if not args.no_loose else "."),
        f"Rounds: {args.repeat} (round-robin, after 2 warm-up rounds). Reproduce with:",
        "",
        "```bash",
        command,
        "```",
        "",
        result,
    ])
    print()
    print(text)
    if args.out:
        h.write_section(args.out, "bench_foundation", text)
        print(f"\nwrote the bench_foundation block of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
