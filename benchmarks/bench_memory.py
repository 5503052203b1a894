"""Bounded memory over a big ledger (issue 14, streaming whole-ledger reads): ``prov
verify``, ``prov lineage`` of a whole connected graph, ``prov show`` of a commit with
every run, and ``prov sync mlflow`` (dry run and real) at 10,000 and 100,000 runs,
before and after a change, in one invocation.

    python benchmarks/bench_memory.py [--sizes 10000,100000] [--repeat 3] [--layout log]
                                      [--baseline-src BEFORE/src] [--out docs/performance.md]

The ledger is ``bench_storage.py``'s (``synthetic_ledger.py``: every run made at one
commit, each consuming two earlier runs' artifacts, so the lineage of the newest run
reaches the whole ledger), cached under ``--root``; with ``--layout log``, a copy of it
upgraded to format 4 (the ledger as a log) by one ``prov run -- true``. For each command, a whole ``prov``
process writing to a pipe read to the end: time from its start to its first line and
to its end, the peak RSS of the ``prov`` process itself (``VmHWM``, sampled every 20 ms
from ``/proc``), the peak of any child it starts (its ``git cat-file``, sampled the
same way), and the largest of the tree (``wait4``'s ``ru_maxrss``).

The sync rows: a target (MLflow's sqlite store) whose local state records every run
but the newest ten as synced; ``--dry-run`` plans and reads the ten, the real sync
writes them; the state and the MLflow database are put back before each run. The state
is what each version keeps: format 1 (one JSON file of every run) for "before", the
sqlite file for "after"; "after, migrating" starts from the JSON file. The state's
entries are made up with the bridge's keys (``ENTRY``), each run's own version and a
made-up external id: the synthetic runs' artifacts are ``s3://`` URIs git-prov cannot
fetch, so the ten new runs end ``failed`` in the real sync (exit 10), after MLflow was
asked for them and their failures recorded in the state. MLflow's client is part of the sync process:
"MLflow alone" is a process that imports MLflow, opens the same store and lists its
experiments, so the sync's own share is its peak minus that.

Outputs of "before" and "after" are compared byte for byte (sync: without the timing).
Not a test: nothing asserts a figure.
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
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h  # noqa: E402
from bench_storage import cached, ledger_repo, own_peak  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
MIB = 1024 * 1024
NEW = 10  # runs the sync finds new
TARGET_RSS, TARGET_FIRST = 100.0, 0.200


# -- one process -------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def run_tree(argv: list[str], cwd: str, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> dict:
    """One whole process: seconds to its first line and in all, the peak RSS of it and
    of its children (sampled), of the whole tree (``wait4``), and its output."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunks: list[bytes] = []
    err: list[bytes] = []
    first: list[float] = []

    def read() -> None:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        first.append(time.perf_counter() - t0)
        chunks.append(line)
        while chunk := proc.stdout.read(1 << 16):
            chunks.append(chunk)

    reader = threading.Thread(target=read)
    errors = threading.Thread(target=lambda: err.append(proc.stderr.read()))  # type: ignore[union-attr]
    reader.start()
    errors.start()
    own = kids = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        own = max(own, own_peak(proc.pid))
        for child in _children(proc.pid):
            kids = max(kids, own_peak(child))
        time.sleep(0.02)
    total = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    errors.join()
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {b''.join(err).decode(errors='replace')}")
    return {"first": first[0] if first else total, "total": total, "rss": own, "kids": kids,
            "tree": usage.ru_maxrss * 1024, "stdout": b"".join(chunks), "stderr": b"".join(err)}


# -- the sync target -----------------------------------------------------------------------


def sync_target(root: str, info: dict, env: dict[str, str], prov: list[str], log) -> dict:
    """A MLflow store and local states (both formats) recording every run but the newest
    ``NEW`` as synced; made once, kept under ``root``."""
    path, n = info["path"], info["runs"]
    base = os.path.join(root, f"sync-{n}{info.get('suffix', '')}")
    stamp = base + ".json"
    if os.path.exists(stamp):
        with open(stamp) as f:
            return json.load(f)
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    db, art = os.path.join(base, "mlflow.db"), os.path.join(base, "artifacts")
    uri = f"sqlite:///{db}"
    sync_dir = os.path.join(path, ".git", "prov", "sync")
    shutil.rmtree(sync_dir, ignore_errors=True)
    from gitprov.sync.state import target_key

    target = f"mlflow {uri}"
    key = target_key("mlflow", uri)
    index = os.path.join(path, ".git", "prov", "index.sqlite")
    with sqlite3.connect(index) as con:
        plan = [(r.hex(), t.hex()) for r, t in con.execute(
            "SELECT id, tree FROM runs WHERE deleted = 0 ORDER BY created, id")]
    con.close()
    runs = {run_id: {**ENTRY, "version": tree, "external_id": uuid.uuid4().hex} for run_id, tree in plan[:-NEW]}
    log(f"writing the states ({n:,} runs): {len(runs):,} synced, {NEW} new ...")
    legacy = os.path.join(base, "state.json")
    with open(legacy, "w") as f:
        json.dump({"format_version": 1, "target": target, "runs": runs}, f, sort_keys=True, separators=(",", ":"))
    state = os.path.join(base, "state.sqlite")
    with sqlite3.connect(state) as con:
        con.executescript("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
                          "CREATE TABLE runs(run TEXT PRIMARY KEY, entry TEXT NOT NULL) WITHOUT ROWID;")
        con.execute("INSERT INTO meta VALUES ('format_version', '2'), ('target', ?)", (target,))
        con.executemany("INSERT INTO runs VALUES (?, ?)",
                        ((r, json.dumps(e, sort_keys=True, separators=(",", ":"))) for r, e in runs.items()))
    con.close()
    shutil.rmtree(sync_dir, ignore_errors=True)
    subprocess.run([sys.executable, "-c", MLFLOW_ALONE, uri], env=env, check=True, capture_output=True)  # its tables
    out = {"uri": uri, "db": db, "db_copy": db + ".pristine", "art": art, "key": key, "legacy": legacy,
           "state": state, "sync_dir": sync_dir, "json_bytes": os.path.getsize(legacy)}
    shutil.copyfile(db, out["db_copy"])
    with open(stamp, "w") as f:
        json.dump(out, f)
    return out


def log_copy(root: str, info: dict, env: dict[str, str], prov: list[str], log) -> dict:
    """A copy of the synthetic ledger's repository upgraded to format 4 (the ledger as a
    log) by one ``prov run -- true``, whose first write commits the checkpoint of every
    run; made once, kept under ``root``."""

    def make(path: str) -> dict:
        shutil.rmtree(path)
        shutil.copytree(info["path"], path, symlinks=True)
        shutil.rmtree(os.path.join(path, ".git", "prov"), ignore_errors=True)
        log(f"upgrading a copy of the ledger of {info['runs']:,} runs to a log ...")
        t0 = time.perf_counter()
        subprocess.run([*prov, "run", "--name", "upgrade", "--", "true"], cwd=path, env=env, check=True,
                       capture_output=True)
        return {"runs": info["runs"] + 1, "suffix": "-log", "upgrade_seconds": time.perf_counter() - t0}

    return cached(root, f"ledger-{info['runs']}-log", make)


#: what a synced run's entry holds (the bridge's keys, a synthetic run's sizes: 8 params,
#: 3 tags and prov's own, 4 metric series, a dataset, 2 models, ``mlflow_model.MODEL_LAYOUT``)
ENTRY = {
    "params": {k: "0123456789abcdef" for k in ("lr", "batch_size", "optimizer", "model", "epochs", "seed",
                                                "dropout", "weight_decay")},
    "tags": {k: "fedcba9876543210" for k in ("prov.run_id", "prov.status", "prov.experiment", "prov.commit",
                                              "prov.name", "team", "stage", "owner", "mlflow.runName")},
    "series": {"acc": 1, "f1": 1, "loss": 1, "val_loss": 1}, "artifacts": {}, "observations": {},
    "datasets": {"imagenet-subset": "sha256:" + "ab" * 32},
    "models": ["in\tresnet18\t1", "out\tout\t1"], "layout": 2,
    "status": "FINISHED", "parent": False,
}


def put_state(target: dict, fmt: str) -> None:
    """The MLflow store as made, and the local state in ``fmt`` ("json" or "sqlite")."""
    shutil.copyfile(target["db_copy"], target["db"])
    shutil.rmtree(target["sync_dir"], ignore_errors=True)
    os.makedirs(target["sync_dir"])
    source = target["legacy"] if fmt == "json" else target["state"]
    shutil.copyfile(source, os.path.join(target["sync_dir"], f"{target['key']}.{fmt}"))


MLFLOW_ALONE = ("import sys, mlflow\nfrom mlflow.tracking import MlflowClient\n"
                "MlflowClient(sys.argv[1]).search_experiments()\n")


# -- measuring -------------------------------------------------------------------------------


def commands(info: dict, newest: str, target: dict | None) -> list[tuple[str, list[str], str | None]]:
    """``(label, prov arguments, state format to put first)`` of each measured command."""
    out: list[tuple[str, list[str], str | None]] = [
        ("`prov verify`", ["verify"], None),
        ("`prov lineage RUN` (text)", ["lineage", newest], None),
        ("`prov lineage RUN --format json`", ["lineage", newest, "--format", "json"], None),
        ("`prov show HEAD`", ["show", "HEAD"], None),
        ("`prov show HEAD --json`", ["show", "HEAD", "--json"], None),
    ]
    if target is not None:
        sync = ["sync", "mlflow", "--tracking-uri", target["uri"], "--artifact-location", target["art"]]
        out += [("`prov sync mlflow --dry-run`", [*sync, "--dry-run"], "state"),
                ("`prov sync mlflow` (writes the new runs)", sync, "state")]
    return out


def _comparable(label: str, data: bytes) -> bytes:
    if "sync" not in label:
        return data
    lines = data.decode().splitlines()
    # the summary's seconds and a written run's external id differ between any two syncs
    return "\n".join(line.rsplit(" (", 1)[0] if i == len(lines) - 1 else line[:24]
                     for i, line in enumerate(lines)).encode()


def measure(info: dict, newest: str, target: dict | None, variants: dict[str, dict[str, str]],
            prov: list[str], repeat: int, log) -> dict:
    res: dict = {}
    path = info["path"]
    for label, args, state in commands(info, newest, target):
        outputs: dict[str, bytes] = {}
        for variant, venv in variants.items():
            kinds = [(variant, "sqlite" if variant == "after" else "json")]
            if state and variant == "after":
                kinds.append(("after, migrating", "json"))
            for name, fmt in kinds:
                rounds = []
                for i in range(repeat + 1):  # a warm-up first (bytecode, page cache), not counted
                    if state:
                        put_state(target, fmt)  # type: ignore[arg-type]
                    r = run_tree([*prov, *args], path, venv, ok=(0, 10) if state else (0,))
                    if i:
                        rounds.append(r)
                outputs[name] = _comparable(label, rounds[-1]["stdout"])
                res[(label, name)] = {
                    "first": statistics.median(r["first"] for r in rounds),
                    "total": statistics.median(r["total"] for r in rounds),
                    "rss": max(r["rss"] for r in rounds), "kids": max(r["kids"] for r in rounds),
                    "tree": max(r["tree"] for r in rounds), "lines": rounds[-1]["stdout"].count(b"\n"),
                    "bytes": len(rounds[-1]["stdout"]),
                }
                m = res[(label, name)]
                log(f"  {label} [{name}]: first line {m['first'] * 1000:,.0f} ms, all {m['total']:.1f} s, "
                    f"prov {m['rss'] / MIB:.0f} MiB, children {m['kids'] / MIB:.0f} MiB, {m['lines']:,} lines")
        if len(set(outputs.values())) > 1:
            res[(label, "differs")] = sorted(k for k in outputs if outputs[k] != outputs.get("after"))
            log(f"  ** outputs differ: {res[(label, 'differs')]}")
    if target is not None:
        alone = [run_tree([sys.executable, "-c", MLFLOW_ALONE, target["uri"]], path, variants["after"])
                 for _ in range(2)]
        res["mlflow_alone"] = max(r["rss"] for r in alone)
        log(f"  MLflow alone: {res['mlflow_alone'] / MIB:.0f} MiB")
    return res


# -- report ----------------------------------------------------------------------------------


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def fmt_mib(n: float) -> str:
    return f"{n / MIB:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--repeat", type=int, default=3, help="runs of each command at the smallest size")
    p.add_argument("--big-repeat", type=int, default=1, help="runs of each command at 100,000 runs and above")
    p.add_argument("--baseline-src", help="a checkout's src/ to measure as 'before'")
    p.add_argument("--baseline-label", help="what --baseline-src is, for the report (e.g. a commit)")
    p.add_argument("--skip-sync", action="store_true", help="no MLflow rows (MLflow not installed)")
    p.add_argument("--layout", choices=("tree", "log"), default="tree",
                   help="the ledger as written (format 3's tree) or upgraded to format 4's log")
    p.add_argument("--root", default=os.path.join(h.default_root(), "memory"))
    p.add_argument("--out", help="write the results into this Markdown file")
    args = p.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",")]
    os.makedirs(args.root, exist_ok=True)
    home = os.path.join(args.root, "home")
    os.makedirs(home, exist_ok=True)
    env = h.bench_env(home, pycache=os.path.join(args.root, "pycache"))
    env.update(MLFLOW_LOGGING_LEVEL="WARNING")
    os.environ.update({k: v for k, v in env.items() if k.startswith("GIT_") or k == "HOME"})
    prov = h.find_prov()
    variants = {"after": {**env, "PYTHONPATH": SRC}}
    if args.baseline_src:
        variants = {"before": {**env, "PYTHONPATH": os.path.abspath(args.baseline_src),
                               "PYTHONPYCACHEPREFIX": os.path.join(args.root, "pycache-before")}, **variants}
    load_before = os.getloadavg()
    started = time.monotonic()
    res: dict[int, dict] = {}
    infos = {}
    for n in sizes:
        info = infos[n] = ledger_repo(args.root, n, env, prov, print)
        # the newest synthetic run: its lineage reaches the whole ledger
        newest = subprocess.run([*prov, "runs", "--limit", "1"], cwd=info["path"], env=variants["after"],
                                check=True, capture_output=True, text=True).stdout.split()[0]
        if args.layout == "log":
            info = infos[n] = log_copy(args.root, info, env, prov, print)
            subprocess.run([*prov, "runs", "--limit", "1"], cwd=info["path"], env=variants["after"], check=True,
                           capture_output=True)  # its index, which the sync target is made from
        target = None if args.skip_sync else sync_target(args.root, info, env, prov, print)
        print(f"{n:,} runs ...")
        res[n] = measure(info, newest, target, variants, prov, args.repeat if n < 100_000 else args.big_repeat,
                         print)
    load_after = os.getloadavg()
    minutes = (time.monotonic() - started) / 60

    names = [*variants, *(["after, migrating"] if not args.skip_sync else [])]
    labels = [label for label, _, _ in commands(infos[sizes[0]], "RUN", None if args.skip_sync else {
        "uri": "", "art": ""})]
    rows = ["| command | version | " + " | ".join(f"{n:,} runs: first line / all / prov's peak RSS (its children)"
                                                  for n in sizes) + " |",
            "| --- | --- | " + " | ".join("---" for _ in sizes) + " |"]
    for label in labels:
        for name in names:
            if (label, name) not in res[sizes[0]]:
                continue
            cells = []
            for n in sizes:
                m = res[n].get((label, name))
                cells.append("" if m is None else f"{fmt_s(m['first'])} / {fmt_s(m['total'])} / "
                             f"**{fmt_mib(m['rss'])}** ({fmt_mib(m['kids'])})")
            rows.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    differs = [f"{label} at {n:,} runs: {', '.join(res[n][(label, 'differs')])} differ from after"
               for n in sizes for label in labels if (label, "differs") in res[n]]
    big = sizes[-1]
    verdicts = []
    for label in labels:
        m = res[big].get((label, "after"))
        if m is None:
            continue
        own = m["rss"] - (res[big].get("mlflow_alone", 0) if "sync" in label else 0)
        verdicts.append(f"{label}: {fmt_mib(own)}{' beside MLflow' if 'sync' in label else ''} "
                        f"({'met' if own / MIB <= TARGET_RSS else 'missed'})")
    baseline = f" --baseline-src BEFORE/src --baseline-label '{args.baseline_label}'" if args.baseline_src else ""
    text = "\n".join([
        "## Bounded memory: `prov verify`, `lineage`, `show` and `sync` over a big ledger",
        "",
        "Each command as a whole process over the synthetic ledger of the storage benchmark "
        + ("(format 3 as built, then a copy upgraded to format 4's log by one `prov run -- true`, a run more; "
           if args.layout == "log" else "(")
        + "every run made at one commit, each consuming two earlier runs' artifacts: the lineage of the newest "
        "run reaches the whole ledger), output to a pipe read to the end. \"first line\" is from the process "
        "start; \"prov's peak RSS\" is the `prov` process alone (`VmHWM`, sampled every 20 ms), and in "
        "brackets the largest peak of a child it started (its `git cat-file`); the sync rows include MLflow's "
        "client, which runs inside `prov sync`."
        + (f" \"before\" is {args.baseline_label or 'the code of `--baseline-src`'}, measured in the same run; "
           "\"after, migrating\" starts from the format-1 JSON state and converts it." if args.baseline_src else ""),
        "",
        "Reproduce:",
        "",
        "```bash",
        f"python benchmarks/bench_memory.py --sizes {args.sizes} --repeat {args.repeat} "
        f"--big-repeat {args.big_repeat}{baseline}{' --skip-sync' if args.skip_sync else ''}"
        f"{' --layout log' if args.layout == 'log' else ''} --out docs/performance.md",
        "```",
        "",
        f"Machine: {h.machine()}.",
        "",
        *rows,
        "",
        f"- At {big:,} runs, prov's own peak against the ≤ 100 MiB target: " + "; ".join(verdicts) + "."
        + (f" MLflow alone (import, open the store, list experiments): {fmt_mib(res[big]['mlflow_alone'])}."
           if "mlflow_alone" in res[big] else ""),
        "- The sync target: an MLflow sqlite store and a local state recording every run but the newest "
        f"{NEW} as synced (format 1 for before: a JSON file of "
        f"{(sync_target_bytes(args.root, big) or 0) / MIB:,.0f} MiB at {big:,} runs); both put back before each run.",
        f"- Medians of {args.repeat} runs ({args.big_repeat} at 100,000 runs and above) after a warm-up; peaks "
        "are the largest seen.",
        "- Outputs compared byte for byte between the versions (sync: the rows without the external ids, the "
        "summary without its seconds): " + ("; ".join(differs) if differs else "identical") + ".",
        f"- Load average (1 min) at the start {load_before[0]:.1f}, at the end {load_after[0]:.1f}; "
        f"{minutes:.0f} minutes in all: a shared 2-core machine.",
    ])
    print(text)
    if args.out:
        h.write_section(args.out, "bench_memory", text)
    return 0


def sync_target_bytes(root: str, n: int) -> int | None:
    try:
        with open(os.path.join(root, f"sync-{n}.json")) as f:
            return json.load(f)["json_bytes"]
    except (OSError, ValueError, KeyError):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
