"""Repository growth: what runs cost on disk as they accumulate, with and without git's
maintenance, beside MLflow's sqlite store and W&B offline on the same workload (issue 14).

    python benchmarks/bench_growth.py [--sizes 1000,10000] [--big] [--runs 2000]
                                      [--src [LABEL=]DIR ...] [--artifact json|random]
                                      [--peer-budget 600] [--skip-mlflow] [--skip-wandb]
                                      [--only growth|commit] [--breakdown] [--samples N] [--root DIR] [--keep] [--out FILE]

Every run of the workload: three params, ``--points`` points of one metric (``loss``,
steps 0..N-1, a noisy decaying series, timestamps as logged), one 1 KiB artifact
(``--artifact json``, the default: a 1,024-byte JSON evaluation summary with the run's
own figures, text as a small artifact usually is; ``random``: 1,024 random bytes, which
no compressor shrinks), through the public API: ``gitprov.Repository(path).start_run(
name, experiment, params, code=False, environment=False)``, ``log_metric`` per point,
``log_artifact(key, bytes)``, the run's end. Each repository is ``git init``, one
commit, ``gitprov.init(hooks=False)``.

(1) growth: for each source tree (``--src``, default this checkout's ``src``; several are
    measured in the same invocation, segment by segment), runs written one after another
    by one process per segment into one repository, measured at each size of ``--sizes``
    (``--big`` adds 100,000, with a time estimate printed first): ``du -sb .git`` growth a
    run as prov leaves it (no manual gc; prov's own background maintenance, where it has
    any, waited for: ``.git/prov/repack.lock``), packs and loose objects; then, on a copy,
    ``git gc --auto`` (``gc.autoDetach=false``, so it is waited for), ``git gc`` and
    ``git repack -adf``, each after the one before (sizes must never grow; whether
    ``gc --auto`` did anything). ``--samples N`` also measures ``.git`` as prov leaves it
    at N moments of each step (the repack waited for each time): the size as left swings
    with the state of the geometric progression. ``--breakdown`` sorts the packed objects
    by kind (series chunks, each level of trees, record, state, artifact, ledger commit,
    ``.idx``) as left and after ``git repack -adf``. The same workload into MLflow's sqlite store
    (``MlflowClient``: ``create_run``, one ``log_batch`` with the points and the params,
    ``log_artifact`` of the file, ``set_terminated``) and W&B offline (``wandb.init(config)``,
    ``run.log`` per point, an ``Artifact`` with the file, ``finish``): bytes a run of the
    database + artifact directory (MLflow) and of every W&B directory, at each size whose
    projected time fits ``--peer-budget`` seconds.
(2) one commit, one process each: ``--runs`` runs (``--commit-points`` points each)
    against the same commit, each in a process of its own: a driver per source tree
    imports gitprov, then forks one child per run (the child opens the repository, makes
    the run, runs the interpreter's exit handlers as a normal exit would, then
    ``os._exit``); the drivers take turns run by run (ABBA). Time per run is fork to
    reaped child. Reported: the repository at the end, the median time a run of the first
    and of the last tenth, and the same ``gc --auto`` / ``gc`` / ``repack -adf`` chain.

Bytecode is compiled once into a private ``PYTHONPYCACHEPREFIX`` (``PYTHONDONTWRITEBYTECODE``
dropped). Not a test: nothing asserts a figure. ``--out`` rewrites only the ``bench_growth``
block of the given Markdown file.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h  # noqa: E402
from bench_runs import fmt_rate, isolate, quiet, version  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
KIB, MIB = 1024, 1024 * 1024
BIG = 100_000
TARGETS = {"kib_per_run": 2.0, "vs_mlflow": 10.0, "commit_mib": 20.0, "tenth_ratio": 1.2, "vs_repack": 1.1}


# -- the workload (runs in the workers) --------------------------------------------------


def params_of(k: int) -> dict:
    rng = random.Random(k)
    return {"lr": round(10 ** rng.uniform(-5, -1), 8), "batch_size": rng.choice((32, 64, 128)),
            "optimizer": rng.choice(("adam", "sgd", "adamw"))}


def series_of(k: int, points: int) -> list[float]:
    """A noisy decaying loss, different for every run."""
    rng = random.Random(1_000_003 + k)
    scale = max(points, 5) / 5
    return [2.5 * math.exp(-i / scale) + 0.1 + abs(rng.gauss(0.0, 0.05)) for i in range(points)]


def artifact_of(k: int, kind: str) -> tuple[str, bytes]:
    """``(key, content)`` of run ``k``'s 1 KiB artifact."""
    rng = random.Random(2_000_003 + k)
    if kind == "random":
        return "weights.bin", rng.randbytes(1024)
    doc: dict = {"run": k, "split": "validation", "classes": {}}
    for c in range(64):
        entry = {"precision": round(rng.random(), 4), "recall": round(rng.random(), 4), "support": rng.randint(50, 500)}
        trial = json.dumps({**doc, "classes": {**doc["classes"], f"class_{c:02d}": entry}, "note": ""}, indent=1)
        if len(trial) > 1024:
            break
        doc["classes"][f"class_{c:02d}"] = entry
    text = json.dumps({**doc, "note": ""}, indent=1)
    text = json.dumps({**doc, "note": "-" * (1024 - len(text))}, indent=1)
    assert len(text) == 1024, len(text)
    return "summary.json", text.encode()


def artifact_file(directory: str, k: int, kind: str) -> str:
    """Run ``k``'s artifact written to a file in ``directory`` (the peers log files); its path."""
    key, content = artifact_of(k, kind)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, key)
    with open(path, "wb") as f:
        f.write(content)
    return path


def gitprov_run(repo, k: int, points: int, kind: str) -> None:
    """One run of the workload through git-prov's public API."""
    key, content = artifact_of(k, kind)
    with repo.start_run(name=f"run-{k:06d}", experiment="growth", params=params_of(k), code=False,
                        environment=False) as run:
        for step, value in enumerate(series_of(k, points)):
            run.log_metric("loss", value, step=step)
        run.log_artifact(key, content)


def worker(spec: dict) -> dict:
    """Run in a fresh interpreter (``--worker``): one step of a measurement."""
    tool = spec["tool"]
    if tool == "init":
        import gitprov

        gitprov.init(spec["path"], hooks=False)
        return {}
    if tool == "gitprov":
        import gitprov

        repo = gitprov.Repository(spec["path"])
        times, samples = [], []
        every = max(1, (spec["stop"] - spec["start"]) // spec.get("samples", 0)) if spec.get("samples") else 0
        for k in range(spec["start"], spec["stop"]):
            t0 = time.perf_counter()
            gitprov_run(repo, k, spec["points"], spec["artifact"])
            times.append(time.perf_counter() - t0)
            if every and (k + 1 - spec["start"]) % every == 0:  # as prov leaves it at this moment
                settle(spec["path"])
                samples.append((k + 1, du(os.path.join(spec["path"], ".git"), "-b")))
        tenth = max(1, len(times) // 10)
        return {"seconds": sum(times), "first": statistics.median(times[:tenth]),
                "last": statistics.median(times[-tenth:]), "samples": samples}
    if tool == "count":  # the runs the ledger holds, and those listed under HEAD (no cache file left)
        from gitprov.store import ledger_log as log
        from gitprov.store.ledger import Ledger
        from gitprov.store.repo import GitRepository

        git = GitRepository.open(spec["path"])
        ledger = Ledger(git)
        head = git.resolve("HEAD")
        if not ledger.is_log():
            return {"records": sum(1 for _ in ledger.run_ids()), "listed": len(ledger.commit_run_ids(head))}
        names = log.fold_since(git, ledger.tip(), None)
        return {"records": sum(1 for n in names if log.is_run_blob(n)),
                "listed": sum(1 for n in names if (link := log.link_of(n)) and link[1] == head)}
    if tool == "mlflow":
        return mlflow_worker(spec)
    if tool == "wandb":
        return wandb_worker(spec)
    raise ValueError(tool)


def mlflow_worker(spec: dict) -> dict:
    import logging

    with quiet():
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    root = spec["path"]
    client = MlflowClient(tracking_uri=f"sqlite:///{os.path.join(root, 'mlflow.db')}")
    with quiet():
        exp = client.get_experiment_by_name("growth")
        exp_id = exp.experiment_id if exp else client.create_experiment(
            "growth", artifact_location="file://" + os.path.join(root, "artifacts"))
    scratch = os.path.join(os.path.dirname(root), "mlflow-scratch")
    t0 = time.perf_counter()
    with quiet():
        for k in range(spec["start"], spec["stop"]):
            path = artifact_file(scratch, k, spec["artifact"])
            run_id = client.create_run(exp_id, run_name=f"run-{k:06d}").info.run_id
            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric("loss", v, now + i, i) for i, v in
                                              enumerate(series_of(k, spec["points"]))],
                             params=[Param(n, str(v)) for n, v in params_of(k).items()])
            client.log_artifact(run_id, path)
            client.set_terminated(run_id)
    return {"seconds": time.perf_counter() - t0}


def wandb_worker(spec: dict) -> dict:
    with quiet():
        import wandb
    scratch = os.path.join(os.path.dirname(spec["path"]), "wandb-scratch")
    t0 = time.perf_counter()
    with quiet():
        for k in range(spec["start"], spec["stop"]):
            path = artifact_file(scratch, k, spec["artifact"])
            run = wandb.init(project="growth", name=f"run-{k:06d}", config=params_of(k))
            for i, v in enumerate(series_of(k, spec["points"])):
                run.log({"loss": v}, step=i)
            art = wandb.Artifact("summary", type="result")
            art.add_file(path)
            run.log_artifact(art)
            run.finish()
        wandb.teardown()
    return {"seconds": time.perf_counter() - t0}


# -- one process per run: the driver (imports gitprov, forks a child per run) ------------


def driver(points: int, kind: str) -> None:
    """Read ``PATH K`` lines on stdin; for each, fork a child that makes run ``K`` in the
    repository at ``PATH`` and exits; answer with the seconds from fork to reaped child."""
    import gitprov  # what a script does first; the children inherit it

    null = os.open(os.devnull, os.O_WRONLY)
    for line in sys.stdin:
        if not line.strip():
            break
        path, k = line.split()
        sys.stdout.flush()
        r, w = os.pipe()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(r)
                os.dup2(null, 1)  # the answer pipe is the driver's
                t1 = time.perf_counter()
                repo = gitprov.Repository(path)
                t2 = time.perf_counter()
                gitprov_run(repo, int(k), points, kind)
                t3 = time.perf_counter()
                atexit._run_exitfuncs()  # as the interpreter does at a normal exit
                t4 = time.perf_counter()
                os.write(w, json.dumps({"open": t2 - t1, "run": t3 - t2, "exit": t4 - t3}).encode())
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            parts = f.read()
        _, status = os.waitpid(pid, 0)
        seconds = time.perf_counter() - t0
        print(json.dumps({"seconds": seconds, "code": os.waitstatus_to_exitcode(status),
                          **(json.loads(parts) if parts else {})}), flush=True)


class Driver:
    def __init__(self, env: dict[str, str], points: int, kind: str) -> None:
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--driver", str(points), kind],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, path: str, k: int) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{path} {k}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the driver exited ({self.proc.wait()})")
        out = json.loads(answer)
        if out["code"] != 0:
            raise RuntimeError(f"run {k} in {path} exited {out['code']} (its traceback is above)")
        return out

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


# -- measuring a repository --------------------------------------------------------------


def du(path: str, *flags: str) -> int:
    """``du -s`` of ``path`` in bytes (``-b``: apparent size; ``-B1``: blocks allocated)."""
    if not os.path.exists(path):
        return 0
    out = subprocess.run(["du", "-s", *flags, path], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def git_env() -> dict[str, str]:
    return dict(os.environ)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def settle(path: str, timeout: float = 1800.0) -> float:
    """Wait for the background repack prov started (``.git/prov/repack.lock`` names its
    pid), if any; seconds waited. Code that runs no background maintenance never makes
    the file, and this returns at once."""
    lock = os.path.join(path, ".git", "prov", "repack.lock")
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with open(lock) as f:
                text = f.read().strip()
        except FileNotFoundError:
            break
        if text.isdigit() and not alive(int(text)):
            break
        time.sleep(0.1)
    else:
        raise RuntimeError(f"prov's background repack in {path} still runs after {timeout:.0f} s")
    return time.monotonic() - t0


def stats(path: str) -> dict:
    """The ``.git`` of ``path``: bytes (apparent and allocated), its parts, packs and
    loose objects."""
    gd = os.path.join(path, ".git")
    counts = {k: int(v) for k, v in (line.split(": ") for line in
              h.git(path, "count-objects", "-v", env=git_env()).splitlines() if ": " in line)}
    return {"git": du(gd, "-b"), "alloc": du(gd, "-B1"), "objects": du(os.path.join(gd, "objects"), "-b"),
            "logs": du(os.path.join(gd, "logs"), "-b"), "prov": du(os.path.join(gd, "prov"), "-b"),
            "packs": counts["packs"], "loose": counts["count"], "in_pack": counts["in-pack"]}


def object_files(path: str) -> set[str]:
    """The names of the packs and loose objects (a change means git did something)."""
    root = os.path.join(path, ".git", "objects")
    out = set()
    for dirpath, _dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == "pack" or (len(rel) == 2 and all(c in "0123456789abcdef" for c in rel)):
            out.update(f"{rel}/{f}" for f in files)
    return out


#: the kinds ``where`` sorts objects into, by their first path in the ledger
RUN_KINDS = {"record": "record blob", "state": "state blob", "series": "series/ tree", "series/*": "series/<key>/ tree",
             "series/*/*": "series chunk blob", "artifacts": "artifacts/ tree", "artifacts/*": "artifact blob"}


def object_kind(typ: str, ref: str, path: str | None) -> str:
    """What an object of the ledger is, from its type and the first path ``git rev-list
    --objects`` gave it (a record blob is first met as its link under ``commits/``)."""
    if typ == "commit":
        return "ledger commit" if ref == "refs/prov/ledger" else f"{ref.rsplit('/', 1)[-1]} commit"
    if ref != "refs/prov/ledger":
        return f"{ref.rsplit('/', 1)[-1]} {typ}"
    parts = path.split("/") if path else []
    if not parts:
        return "root tree"
    if parts[0] == "runs" and len(parts) <= 3:
        return ("runs/ tree", "runs/<xx>/ tree", "runs/<xx>/<id>/ tree")[len(parts) - 1]
    if parts[0] == "runs":
        rest = parts[3:]
        pattern = "/".join([rest[0], *("*" * (len(rest) - 1))]) if rest[0] in ("series", "artifacts") else rest[0]
        return RUN_KINDS.get(pattern, f"runs/…/{rest[0]} {typ}")
    if parts[0] == "commits":
        if len(parts) == 5:
            return "record blob"
        return ("commits/ tree", "commits/<cc>/ tree", "commits/<cc>/<C>/ tree", "commits/<cc>/<C>/<xx>/ tree")[
            len(parts) - 1] if len(parts) <= 4 else f"commits/… {typ}"
    return f"{parts[0]} {typ}"


def object_names(path: str) -> dict[str, tuple[str, str | None]]:
    """Every object of the prov refs and HEAD: ``oid -> (ref, first path)``."""
    names: dict[str, tuple[str, str | None]] = {}
    for ref in ("refs/prov/ledger", "refs/notes/prov", "HEAD"):
        out = subprocess.run(["git", "rev-list", "--objects", ref], cwd=path, env=git_env(), capture_output=True,
                             text=True)
        for line in out.stdout.splitlines():
            oid, _, name = line.partition(" ")
            names.setdefault(oid, (ref, name or None))
    return names


def where(path: str, names: dict[str, tuple[str, str | None]], kind_of=None) -> dict:
    """Bytes of the packed objects by kind: ``{kind: [objects, bytes in packs, deltas]}``,
    and the ``.idx`` files' bytes (28+ a object: id, CRC, offset). ``kind_of(oid, type,
    ref, first path)`` names an object's kind (default: ``object_kind``, format 3's)."""
    out = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype) "
                          "%(objectsize:disk) %(deltabase)"], cwd=path, env=git_env(), capture_output=True,
                         text=True, check=True).stdout
    kinds: dict[str, list[int]] = {}
    for line in out.splitlines():
        oid, typ, disk, base = line.split()
        ref, name = names.get(oid, ("unreachable", None))
        kind = kind_of(oid, typ, ref, name) if kind_of else object_kind(typ, ref, name)
        k = kinds.setdefault(kind, [0, 0, 0])
        k[0] += 1
        k[1] += int(disk)
        k[2] += base.strip("0") != ""
    pack = os.path.join(path, ".git", "objects", "pack")
    idx = sum(os.path.getsize(os.path.join(pack, f)) for f in os.listdir(pack) if f.endswith(".idx"))
    return {"kinds": kinds, "idx": idx}


def maintenance(path: str, breakdown: bool = False) -> dict:
    """``git gc --auto``, ``git gc``, ``git repack -adf`` in turn on ``path`` (a copy),
    with the repository measured before and after each (and, with ``breakdown``, its
    objects by kind as left and after ``repack -adf``)."""
    env = git_env()
    out = {"prov": stats(path)}
    names = object_names(path) if breakdown else {}
    if breakdown:
        out["where_prov"] = where(path, names)
    before = object_files(path)
    t0 = time.perf_counter()
    h.git(path, "-c", "gc.autoDetach=false", "gc", "--auto", "-q", env=env)
    out["gc_auto_s"] = time.perf_counter() - t0
    out["gc_auto_acted"] = object_files(path) != before
    out["gc_auto"] = stats(path)
    t0 = time.perf_counter()
    h.git(path, "gc", "-q", env=env)
    out["gc_s"] = time.perf_counter() - t0
    out["gc"] = stats(path)
    t0 = time.perf_counter()
    h.git(path, "repack", "-adf", "-q", env=env)
    out["repack_s"] = time.perf_counter() - t0
    out["repack"] = stats(path)
    if breakdown:
        out["where_repack"] = where(path, names)
    return out


def runs_stored(bench: Bench, path: str, label: str) -> dict:
    """Runs in the ledger and runs listed for HEAD (asked of the source tree's own
    ``Ledger``, which reads either format), and the commits of prov's refs."""
    env = git_env()
    counted = bench.work({"tool": "count", "path": path}, bench.env_for(label))
    commits = {ref: int(h.git(path, "rev-list", "--count", ref, env=env))
               for ref in ("refs/prov/ledger", "refs/notes/prov")}
    return {**counted, "ledger_commits": commits["refs/prov/ledger"], "notes_commits": commits["refs/notes/prov"]}


def copy_repo(path: str, dest: str) -> str:
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["cp", "-a", path, dest], check=True)
    return dest


# -- orchestration -----------------------------------------------------------------------


def src_label(src: str) -> str:
    """``<version> (<commit>)`` of the source tree ``src``."""
    ver = "?"
    with open(os.path.join(src, "gitprov", "_version.py"), encoding="utf-8") as f:
        m = re.search(r"""__version__\s*=\s*['"]([^'"]+)""", f.read())
        if m:
            ver = m.group(1)
    rev = subprocess.run(["git", "-C", src, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", src, "status", "--porcelain", "--", "."], capture_output=True, text=True)
    commit = rev.stdout.strip() + ("+changes" if dirty.stdout.strip() else "") if rev.returncode == 0 else "?"
    return f"{ver} ({commit})"


def parse_srcs(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or [SRC]:
        label, _, path = value.rpartition("=")
        path = os.path.abspath(path)
        if not os.path.isdir(os.path.join(path, "gitprov")):
            raise SystemExit(f"--src {value}: {path} has no gitprov package")
        out[label or src_label(path)] = path
    return out


class Bench:
    def __init__(self, args: argparse.Namespace, root: str) -> None:
        self.args, self.root = args, root
        home = os.path.join(root, "home")
        self.env = h.bench_env(home, pycache=os.path.join(root, "pycache"))
        self.srcs = parse_srcs(args.src)
        self.extra: dict[str, dict[str, str]] = {}
        for item in args.env:
            label, var, value = item.split("=", 2)
            if label not in self.srcs:
                raise SystemExit(f"--env {item}: no source labelled {label!r}")
            self.extra.setdefault(label, {})[var] = value
        self.log = lambda msg: print(msg, flush=True)

    def env_for(self, label: str) -> dict[str, str]:
        return {**self.env, "PYTHONPATH": self.srcs[label], **self.extra.get(label, {})}

    def work(self, spec: dict, env: dict[str, str]) -> dict:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)], env=env,
                              stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"worker {spec} exited {proc.returncode} (its error is above)")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def new_repo(self, path: str, label: str) -> str:
        os.makedirs(path)
        env = git_env()
        h.git(path, "init", "-q", "-b", "main", env=env)
        with open(os.path.join(path, "train.py"), "w") as f:
            f.write("print('train')\n")
        h.git(path, "add", "train.py", env=env)
        h.git(path, "commit", "-q", "-m", "initial", env=env)
        self.work({"tool": "init", "path": path}, self.env_for(label))
        return path

    # (1)
    def growth(self) -> dict:
        args, log = self.args, self.log
        sizes = sorted({int(s) for s in args.sizes.split(",") if s} | ({BIG} if args.big else set()))
        repos = {label: self.new_repo(os.path.join(self.root, f"growth-{i}"), label)
                 for i, label in enumerate(self.srcs)}
        base = {label: stats(path) for label, path in repos.items()}
        res: dict = {"sizes": sizes, "base": base, "at": {label: {} for label in repos}, "peers": {}}
        peers = {}
        if not args.skip_mlflow:
            peers["MLflow (sqlite)"] = ("mlflow", os.path.join(self.root, "mlflow"))
        if not args.skip_wandb:
            peers["W&B (offline)"] = ("wandb", os.path.join(self.root, "wandb"))
        peer_base = {}
        for name, (tool, path) in peers.items():
            os.makedirs(path, exist_ok=True)
            if tool == "mlflow":  # its tables and the experiment, outside the figures
                self.work({"tool": tool, "path": path, "start": 0, "stop": 0, "points": args.points,
                           "artifact": args.artifact}, self.env)
            peer_base[name] = du(path, "-b"), du(path, "-B1")
            res["peers"][name] = {}
        spent = {label: 0.0 for label in repos}
        peer_spent = {name: 0.0 for name in peers}
        active = set(peers)
        prev = 0
        for n in sizes:
            count = n - prev
            if prev:
                est = sum(spent[label] / prev * count for label in repos)
                log(f"(1) {prev:,} -> {n:,} runs: about {est / 60:.0f} min of git-prov runs "
                    f"(at the rates measured so far), plus the gc chain on copies")
            for label, path in repos.items():
                log(f"(1) {label}: runs {prev:,}..{n - 1:,} in one process ...")
                out = self.work({"tool": "gitprov", "path": path, "start": prev, "stop": n, "points": args.points,
                                 "artifact": args.artifact, "samples": args.samples},
                                self.env_for(label))
                spent[label] += out["seconds"]
                waited = settle(path)
                copy = copy_repo(path, os.path.join(self.root, f"gc-copy-{n}"))
                at = maintenance(copy, breakdown=args.breakdown)
                shutil.rmtree(copy, ignore_errors=True)
                at.update({"seconds": out["seconds"], "first": out["first"], "last": out["last"], "count": count, "settle_s": waited, "stored": runs_stored(self, path, label),
                           "samples": [(runs, (size - base[label]["git"]) / runs) for runs, size in out["samples"]]})
                res["at"][label][n] = at
                st = at["prov"]
                log(f"  {out['seconds']:.1f} s ({count / out['seconds']:.0f} runs/s), waited {waited:.1f} s for "
                    f"prov's repack; .git {st['git'] / MIB:.1f} MiB "
                    f"({(st['git'] - base[label]['git']) / n / KIB:.2f} KiB/run), {st['packs']} packs, "
                    f"{st['loose']} loose; gc --auto {'acted' if at['gc_auto_acted'] else 'did nothing'}, "
                    f"gc {at['gc']['git'] / MIB:.1f} MiB, repack -adf {at['repack']['git'] / MIB:.1f} MiB")
            for name in list(active):
                tool, path = peers[name]
                projected = peer_spent[name] / prev * count if prev else 0.0
                if projected > args.peer_budget:
                    log(f"(1) {name}: {prev:,} -> {n:,} runs would take about {projected / 60:.0f} min "
                        f"(> --peer-budget {args.peer_budget:.0f} s): not run")
                    active.discard(name)
                    res["peers"][name]["skipped"] = (n, projected)
                    continue
                if tool == "wandb" and n > args.wandb_max:
                    active.discard(name)
                    res["peers"][name]["skipped"] = (n, None)
                    continue
                log(f"(1) {name}: runs {prev:,}..{n - 1:,} ...")
                out = self.work({"tool": tool, "path": path, "start": prev, "stop": n, "points": args.points,
                                 "artifact": args.artifact}, self.env)
                peer_spent[name] += out["seconds"]
                b0, a0 = peer_base[name]
                res["peers"][name][n] = {"bytes": du(path, "-b") - b0, "alloc": du(path, "-B1") - a0,
                                         "seconds": out["seconds"], "count": count}
                log(f"  {out['seconds']:.1f} s, {res['peers'][name][n]['bytes'] / n / KIB:.1f} KiB/run")
            prev = n
        res["spent"], res["peer_spent"] = spent, peer_spent
        if not args.big:
            last = sizes[-1]
            est = sum(spent[label] / last * (BIG - last) for label in repos)
            res["big_estimate"] = est
            log(f"--big would add about {est / 60:.0f} min of git-prov runs (at the rates measured here)")
        return res

    # (2)
    def one_commit(self) -> dict:
        args, log = self.args, self.log
        n = args.runs
        repos = {label: self.new_repo(os.path.join(self.root, f"commit-{i}"), label)
                 for i, label in enumerate(self.srcs)}
        base = {label: stats(path) for label, path in repos.items()}
        drivers = {label: Driver(self.env_for(label), args.commit_points, args.artifact)
                   for label in self.srcs}
        times: dict[str, list[dict]] = {label: [] for label in repos}
        try:
            for i, (label, d) in enumerate(drivers.items()):  # warm-up: bytecode, page cache
                warm = self.new_repo(os.path.join(self.root, f"commit-warm-{i}"), label)
                for k in range(3):
                    d.run(warm, k)
            log(f"(2) {n:,} runs on one commit, one process each, {' / '.join(repos)} taking turns ...")
            labels = list(repos)
            t0 = time.perf_counter()
            for k in range(n):
                for label in labels if k % 2 == 0 else reversed(labels):
                    times[label].append(drivers[label].run(repos[label], k))
                if (k + 1) % max(1, n // 10) == 0:
                    log(f"  {k + 1:,} runs ({time.perf_counter() - t0:.0f} s): " + ", ".join(
                        f"{label} {statistics.median(x['seconds'] for x in t[-max(1, n // 10):]) * 1000:.1f} ms"
                        for label, t in times.items()))
            wall = time.perf_counter() - t0
        finally:
            for d in drivers.values():
                d.close()
        res: dict = {"runs": n, "wall": wall, "base": base, "times": times, "at": {}}
        for label, path in repos.items():
            waited = settle(path)
            stored = runs_stored(self, path, label)
            at = maintenance(path)  # in place: the measurement is over
            at.update({"settle_s": waited, "stored": stored})
            res["at"][label] = at
            log(f"  {label}: .git {at['prov']['git'] / MIB:.1f} MiB, {stored}, gc {at['gc']['git'] / MIB:.1f} MiB, "
                f"repack -adf {at['repack']['git'] / MIB:.1f} MiB")
        return res


# -- report ------------------------------------------------------------------------------


def kib(x: float) -> str:
    return f"{x / KIB:,.2f}" if x < 10 * KIB else f"{x / KIB:,.1f}" if x < 100 * KIB else f"{x / KIB:,.0f}"


def mib(x: float) -> str:
    return f"{x / MIB:,.2f} MiB" if x < 10 * MIB else f"{x / MIB:,.1f} MiB" if x < 100 * MIB else f"{x / MIB:,.0f} MiB"


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def growth_table(res: dict) -> list[str]:
    sizes, base, at, peers = res["sizes"], res["base"], res["at"], res["peers"]
    cols = [(label, n) for n in sizes for label in at]
    head = "| measure | " + " | ".join(f"{label}, {n:,} runs" for label, n in cols) + " | target |"
    rows = [head, "| --- | " + " | ".join("---:" for _ in cols) + " | --- |"]

    def row(name: str, cell, target: str = "") -> None:
        rows.append(f"| {name} | " + " | ".join(cell(at[label][n], base[label], n) for label, n in cols)
                    + f" | {target} |")

    def per_run(stage: str, key: str = "git"):
        return lambda a, b, n: kib((a[stage][key] - b[key]) / n)

    row("`.git` growth a run as prov leaves it (`du -sb`), KiB", per_run("prov"), f"≤ {TARGETS['kib_per_run']:.0f} KiB")
    if any(a.get("samples") for lab in at for a in at[lab].values()):
        row("the same at moments of the step (`--samples`): median (min–max), KiB",
            lambda a, b, n: (f"{kib(statistics.median(x for _, x in a['samples']))} "
                             f"({kib(min(x for _, x in a['samples']))}–{kib(max(x for _, x in a['samples']))})")
            if a.get("samples") else "")
    row("same, blocks allocated (`du -s -B1`), KiB", per_run("prov", "alloc"))
    row("of which `objects/`, KiB a run", per_run("prov", "objects"))
    row("of which reflogs (`logs/`), KiB a run", per_run("prov", "logs"))
    row("of which `.git/prov/`, KiB a run", per_run("prov", "prov"))
    row("`.git` in all", lambda a, b, n: mib(a["prov"]["git"]))
    row("packs / loose objects", lambda a, b, n: f"{a['prov']['packs']} / {a['prov']['loose']:,}")
    row("waited for prov's background repack", lambda a, b, n: f"{a['settle_s']:.1f} s")
    row("`git gc --auto`: did it act", lambda a, b, n: "yes" if a["gc_auto_acted"] else "no")
    row("after `git gc --auto`, KiB a run (packs / loose)", lambda a, b, n: f"{kib((a['gc_auto']['git'] - b['git']) / n)} "
        f"({a['gc_auto']['packs']} / {a['gc_auto']['loose']:,})")
    row("after `git gc`, KiB a run (packs / loose)", lambda a, b, n: f"{kib((a['gc']['git'] - b['git']) / n)} "
        f"({a['gc']['packs']} / {a['gc']['loose']:,})")
    row("after `git repack -adf`, KiB a run", per_run("repack"))
    row("`git gc --auto`, then `git gc`: `.git` never grew",
        lambda a, b, n: met(a["gc_auto"]["git"] <= a["prov"]["git"] and a["gc"]["git"] <= a["gc_auto"]["git"]),
        "always shrinks or keeps")
    row("`objects/` as prov leaves it / after `repack -adf`",
        lambda a, b, n: f"{a['prov']['objects'] / a['repack']['objects']:.2f}×", f"≤ {TARGETS['vs_repack']}×")
    row("`.git` as prov leaves it / after `repack -adf`", lambda a, b, n: f"{a['prov']['git'] / a['repack']['git']:.2f}×")
    row("runs/s writing (one process a step)", lambda a, b, n: fmt_rate(a["count"] / a["seconds"]))
    row("ms a run, median of the step's first / last tenth",
        lambda a, b, n: f"{a['first'] * 1000:.1f} / {a['last'] * 1000:.1f}")
    row("runs stored / listed under the commit", lambda a, b, n: f"{a['stored']['records']:,} / {a['stored']['listed']:,}")
    row("ledger / notes commits a run", lambda a, b, n: f"{a['stored']['ledger_commits'] / n:.2f} / "
        f"{a['stored']['notes_commits'] / n:.3f}")
    for name, data in peers.items():
        if not any(n in data for n in sizes):
            continue
        what = "database + artifact directory" if name.startswith("MLflow") else "its directories: runs, logs, cache"
        rows.append(f"| {name}: bytes a run ({what}), KiB | " + " | ".join(
            kib(data[n]["bytes"] / n) if n in data else "" for _label, n in cols) + " | |")
        rows.append(f"| {name} / git-prov as prov leaves it | " + " | ".join(
            f"{(data[n]['bytes'] / n) / ((at[label][n]['prov']['git'] - base[label]['git']) / n):.1f}×"
            if n in data else "" for label, n in cols)
            + (f" | ≥ {TARGETS['vs_mlflow']:.0f}× |" if name.startswith("MLflow") else " | |"))
        rows.append(f"| {name} / git-prov after `repack -adf` | " + " | ".join(
            f"{(data[n]['bytes'] / n) / ((at[label][n]['repack']['git'] - base[label]['git']) / n):.1f}×"
            if n in data else "" for label, n in cols) + " | |")
    return rows


def breakdown_table(res: dict) -> list[str]:
    """Bytes a run by object kind, as prov leaves it and after ``repack -adf``, at the
    largest size of each source tree."""
    n = res["sizes"][-1]
    cols = [(label, stage) for label in res["at"] for stage in ("where_prov", "where_repack")
            if stage in res["at"][label].get(n, {})]
    if not cols:
        return []
    kinds: dict[str, int] = {}
    for label, stage in cols:
        for kind, (_c, disk, _d) in res["at"][label][n][stage]["kinds"].items():
            kinds[kind] = max(kinds.get(kind, 0), disk)
    shown = [k for k in sorted(kinds, key=lambda k: -kinds[k]) if kinds[k] / n >= 1]
    stage_name = {"where_prov": "as left", "where_repack": "`repack -adf`"}
    rows = [f"Bytes a run by object kind at {n:,} runs (`git cat-file --batch-all-objects` "
            "`%(objectsize:disk)`, kinds by the first path `git rev-list --objects` gives each object; "
            "objects a run, bytes a run, share stored as deltas):", "",
            "| object kind | " + " | ".join(f"{label}, {stage_name[stage]}" for label, stage in cols) + " |",
            "| --- | " + " | ".join("---:" for _ in cols) + " |"]
    total = {col: [0, 0] for col in cols}
    for kind in shown:
        cells = []
        for col in cols:
            c, disk, deltas = res["at"][col[0]][n][col[1]]["kinds"].get(kind, [0, 0, 0])
            total[col][0] += c
            total[col][1] += disk
            cells.append(f"{c / n:.2f} · {disk / n:,.0f} B · {100 * deltas / c:.0f}%" if c else "")
        rows.append(f"| {kind} | " + " | ".join(cells) + " |")
    rows.append("| pack `.idx` files | " + " | ".join(
        f"{res['at'][label][n][stage]['idx'] / n:,.0f} B" for label, stage in cols) + " |")
    rows.append("| all objects (+ `.idx`) | " + " | ".join(
        f"{total[col][0] / n:.1f} · {(total[col][1] + res['at'][col[0]][n][col[1]]['idx']) / n:,.0f} B"
        for col in cols) + " |")
    return rows


def commit_table(res: dict) -> list[str]:
    n, base, at, times = res["runs"], res["base"], res["at"], res["times"]
    labels = list(at)
    tenth = max(1, n // 10)
    rows = ["| measure | " + " | ".join(labels) + " | target |", "| --- | " + " | ".join("---:" for _ in labels) + " | --- |"]

    def row(name: str, cell, target: str = "") -> None:
        rows.append(f"| {name} | " + " | ".join(cell(label) for label in labels) + f" | {target} |")

    def tenths(part: str) -> tuple[dict[str, float], dict[str, float]]:
        return ({lb: statistics.median(x[part] for x in times[lb][:tenth]) for lb in labels},
                {lb: statistics.median(x[part] for x in times[lb][-tenth:]) for lb in labels})

    row("`.git` at the end (`du -sb`)", lambda lb: mib(at[lb]["prov"]["git"]),
        f"≤ {TARGETS['commit_mib']:.0f} MiB")
    row("growth a run, KiB", lambda lb: kib((at[lb]["prov"]["git"] - base[lb]["git"]) / n))
    row("packs / loose objects", lambda lb: f"{at[lb]['prov']['packs']} / {at[lb]['prov']['loose']:,}")
    for part, what in (("seconds", "the process (fork to reaped child)"),
                       ("open", "opening the repository in it (`Repository(path)`)"),
                       ("run", "the run in it (`start_run` to its end)"),
                       ("exit", "its exit handlers")):
        first, last = tenths(part)
        row(f"{what}: median ms, first {tenth:,} / last {tenth:,} runs",
            lambda lb, f=first, la=last: f"{f[lb] * 1000:.1f} / {la[lb] * 1000:.1f}")
        if part in ("seconds", "run"):
            row(f"{what}: last / first", lambda lb, f=first, la=last: f"{la[lb] / f[lb]:.2f}×",
                f"≤ {TARGETS['tenth_ratio']}×")
    row("all processes, s", lambda lb: f"{sum(x['seconds'] for x in times[lb]):.0f}")
    row("runs stored / listed under the commit", lambda lb: f"{at[lb]['stored']['records']:,} / {at[lb]['stored']['listed']:,}")
    row("ledger / notes commits a run", lambda lb: f"{at[lb]['stored']['ledger_commits'] / n:.2f} / "
        f"{at[lb]['stored']['notes_commits'] / n:.3f}")
    row("`git gc --auto`: did it act", lambda lb: "yes" if at[lb]["gc_auto_acted"] else "no")
    row("after `git gc --auto`", lambda lb: mib(at[lb]["gc_auto"]["git"]))
    row("after `git gc`", lambda lb: f"{mib(at[lb]['gc']['git'])} ({at[lb]['gc_s']:.1f} s)")
    row("after `git repack -adf`", lambda lb: f"{mib(at[lb]['repack']['git'])} ({at[lb]['repack_s']:.1f} s)")
    row("`.git` at the end / after `repack -adf`", lambda lb: f"{at[lb]['prov']['git'] / at[lb]['repack']['git']:.2f}×")
    return rows


def command(args: argparse.Namespace) -> str:
    parts = ["python benchmarks/bench_growth.py", f"--sizes {args.sizes}"]
    if args.big:
        parts.append("--big")
    parts.append(f"--runs {args.runs}")
    for value in args.src or []:
        parts.append(f"--src '{value}'")
    for value in args.env:
        parts.append(f"--env '{value}'")
    if args.artifact != "json":
        parts.append(f"--artifact {args.artifact}")
    if args.peer_budget != 600:
        parts.append(f"--peer-budget {args.peer_budget:.0f}")
    for flag in ("skip_mlflow", "skip_wandb"):
        if getattr(args, flag):
            parts.append("--" + flag.replace("_", "-"))
    if args.only:
        parts.append(f"--only {args.only}")
    if args.breakdown:
        parts.append("--breakdown")
    if args.samples:
        parts.append(f"--samples {args.samples}")
    return " ".join(parts)


def report(args: argparse.Namespace, growth: dict | None, commit: dict | None, machine: str, load: tuple,
           minutes: float) -> str:
    artifact = ("a 1,024-byte JSON evaluation summary (per-class precision/recall/support of the run, "
                "text)" if args.artifact == "json" else "1,024 random bytes")
    lines = ["## Repository growth", "",
             f"Runs of three params, a metric of {args.points} points and one 1 KiB artifact ({artifact}), "
             "through the public API (`start_run(code=False, environment=False)`, `log_metric` per point, "
             "`log_artifact`), in a repository of one commit"
             + ("" if args.skip_mlflow and args.skip_wandb else
                "; " + " and ".join(name for name, skip in (("MLflow's sqlite store", args.skip_mlflow),
                                                            ("W&B offline", args.skip_wandb)) if not skip)
                + " on the same workload in the same invocation") + ".", "",
             "Reproduce:", "", "```bash", command(args), "```", "",
             f"Machine: {machine}. Packages: " + ", ".join(f"{d} {version(d)}" for d in ("mlflow", "wandb")) + ".",
             f"Load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in load)}; "
             f"{minutes:.0f} min in all.", ""]
    if growth is not None:
        lines += ["### Growth a run, and git's maintenance", "",
                  "Runs written one after another, one process per size step (0 → first size → next size), "
                  "into one repository per source tree; each size measured as prov leaves it (its background "
                  "repack, where there is one, waited for), then on a copy `git gc --auto` "
                  "(`gc.autoDetach=false`), `git gc` and `git repack -adf`, each after the one before. "
                  "Per-run figures are growth since `git init` + one commit + `gitprov.init`, divided by the runs.",
                  "", *growth_table(growth), ""]
        if args.breakdown:
            lines += [*breakdown_table(growth), ""]
        for name, data in growth["peers"].items():
            if "skipped" in data:
                size, projected = data["skipped"]
                why = (f"projected {projected / 60:.0f} min > --peer-budget" if projected is not None
                       else "W&B: --wandb-max")
                lines.append(f"- {name} not run at {size:,} runs ({why}).")
        if "big_estimate" in growth:
            lines.append(f"- `--big` (100,000 runs) would add about {growth['big_estimate'] / 60:.0f} min of "
                         "git-prov runs at the rates measured here, plus the gc chain on copies.")
        lines.append("")
    if commit is not None:
        lines += [f"### {commit['runs']:,} runs on one commit, one process each", "",
                  f"Each run ({args.commit_points} points, the same params and artifact) in a process of its own: "
                  "a driver per source tree imports gitprov, then forks a child per run, which opens the "
                  "repository, makes the run, runs the exit handlers and exits; the drivers take turns run by run "
                  "(ABBA), so both see the same moments of the machine. Time a run: fork to reaped child "
                  f"({commit['wall'] / 60:.1f} min in all).", "", *commit_table(commit), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000", help="run counts measured in (1)")
    p.add_argument("--big", action="store_true", help=f"also {BIG:,} runs in (1) (a time estimate is printed first)")
    p.add_argument("--runs", type=int, default=2000, help="runs on one commit in (2)")
    p.add_argument("--src", action="append", metavar="[LABEL=]DIR",
                   help="a source tree the workers import (repeat to compare; default this checkout's src)")
    p.add_argument("--env", action="append", default=[], metavar="LABEL=VAR=VALUE",
                   help="an environment variable for one source's processes (e.g. LOG=GIT_PROV_LEDGER_LAYOUT=log)")
    p.add_argument("--artifact", choices=("json", "random"), default="json")
    p.add_argument("--points", type=int, default=100, help="metric points a run in (1)")
    p.add_argument("--commit-points", type=int, default=10, help="metric points a run in (2)")
    p.add_argument("--peer-budget", type=float, default=600.0,
                   help="seconds a peer's next size step may take (projected), else it stops there")
    p.add_argument("--wandb-max", type=int, default=1000, help="W&B runs at most (each is ~0.2 s here)")
    p.add_argument("--skip-mlflow", action="store_true")
    p.add_argument("--skip-wandb", action="store_true")
    p.add_argument("--only", choices=("growth", "commit"))
    p.add_argument("--root", help="work here (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the repositories")
    p.add_argument("--samples", type=int, default=0,
                   help="in (1), also measure .git as prov leaves it this many times during each step")
    p.add_argument("--breakdown", action="store_true",
                   help="in (1), also the bytes a run by object kind, as left and after repack -adf")
    p.add_argument("--out", help="Markdown file whose bench_growth block is rewritten")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--driver", nargs=2, metavar=("POINTS", "ARTIFACT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.driver:
        driver(int(args.driver[0]), args.driver[1])
        return 0

    root = tempfile.mkdtemp(prefix="gitprov-bench-growth-", dir=args.root)
    isolate(root)
    t0 = time.perf_counter()
    machine = h.machine()
    try:
        bench = Bench(args, root)
        print(f"source trees: {bench.srcs}; working in {root}", flush=True)
        growth = bench.growth() if args.only in (None, "growth") else None
        commit = bench.one_commit() if args.only in (None, "commit") else None
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    text = report(args, growth, commit, machine, os.getloadavg(), (time.perf_counter() - t0) / 60)
    print()
    print(text)
    if args.out:
        h.write_section(args.out, "bench_growth", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
