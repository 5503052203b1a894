"""Exchanging provenance through one remote (issue 15): every target, for one or several
source trees side by side (``--src LABEL=DIR``, default this checkout's ``src``).

    python benchmarks/bench_exchange.py [--only contention,pushers,first,incremental,rss,bulk]
        [--src LABEL=DIR ...] [--sizes 1000,10000,100000] [--clones 50] [--pushers 200]
        [--contention-runs 1000] [--artifact-mb 300] [--repeat 3] [--layout log] [--root DIR] [--out FILE]

Parts (``--only``, comma-separated; default every part but ``bulk``):

- ``contention``: ``--clones`` clones of a remote holding ``--contention-runs`` runs each
  make 2 runs (the public API, pinned to HEAD, so both prov refs change), then all run
  ``prov push`` at the same moment (each process is started by a launcher that sleeps
  until a common instant) against one bare remote. Reported: failed pushes, runs that
  reached the remote, wall time from the instant to the last exit, push attempts, and
  how many clones hold the remote's ledger and notes trees after one ``prov pull`` each.
- ``pushers``: ``--pushers`` processes, each in a clone of its own with 1 new run, push
  at the same moment: failures, runs lost (not on the remote when all have exited), time.
- ``first``: the first ``prov pull`` into a fresh clone (``git clone`` + ``prov init
  --no-hooks --no-pull``) at each of ``--sizes``, beside ``git fetch`` of the same ref
  into another fresh clone; medians of ``--repeat``.
- ``incremental``: a clone that pulled a ledger of each of ``--sizes`` runs pulls 10 new
  runs, and pushes 10 runs of its own, beside ``git fetch`` / ``git push`` of the same
  ref from the same state. Bytes that cross are measured, not estimated: the remote's
  ``upload-pack`` / ``receive-pack`` run behind a relay (``remote.origin.uploadpack`` /
  ``receivepack``) that counts every byte in both directions on every connection, and
  ``GIT_TRACE_PACKFILE`` keeps the packs a fetch receives.
- ``rss``: a fresh clone pulls a run holding a ``--artifact-mb`` MB artifact (random
  bytes, stored in the ledger); peak RSS of the ``prov`` process itself
  (``getrusage(RUSAGE_SELF)`` in a launcher that runs the CLI in-process) and of its whole
  process tree (RSS of prov and its git children summed, sampled from ``/proc`` every
  10 ms, without the remote's upload-pack and its children; ``RUSAGE_CHILDREN`` would
  count each forked child at its parent's size), beside
  ``git fetch`` of the same refs.
- ``bulk``: the first version of this benchmark: pull and push of ``--new`` runs with
  ``--runs`` in the ledger (kept for the figures in the summary of docs/performance.md).

Ledgers are synthetic (``synthetic_ledger.py``: exactly what git-prov stores), built once
and cached under ``--root`` (``--layout log``: upgraded to format 4's log before the
remote gets them); clones that pulled them are made once per source tree in a run and
copied (untimed) for every measurement. Every source tree runs as
``python -m gitprov.cli.entry`` with ``PYTHONPATH=DIR`` (bytecode in a private
``PYTHONPYCACHEPREFIX``). ``--out`` rewrites each measured part's own block
(``<!-- bench_exchange_<part>:begin -->``) of the Markdown file, so parts can be run
separately. Not a test: nothing asserts a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import contextlib

import _harness as h  # noqa: E402
from bench_growth import parse_srcs, src_label  # noqa: E402
from synthetic_ledger import append_runs, build_ledger, init_repository  # noqa: E402

LEDGER = "refs/prov/ledger"
NOTES = "refs/notes/prov"
PARTS = ("contention", "pushers", "first", "incremental", "rss", "bulk")
KIB, MIB = 1024, 1024 * 1024
NEW = 10  # runs an incremental pull or push moves

#: sleeps until the instant argv[1] (time.time()), then becomes argv[2:]
LAUNCH = "import os,sys,time\nt=float(sys.argv[1])\ntime.sleep(max(0.0,t-time.time()))\nos.execv(sys.argv[2],sys.argv[2:])\n"

#: the remote's upload-pack/receive-pack behind a relay counting bytes: LOG SUBCOMMAND PATH
RELAY = r'''import os, subprocess, sys, threading
log, sub, path = sys.argv[1], sys.argv[2], sys.argv[3]
child = subprocess.Popen(["git", sub, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
count = {"in": 0, "out": 0}
def pump(src, dst, key, close):
    while True:
        data = os.read(src, 1 << 16)
        if not data:
            break
        count[key] += len(data)
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view):]
    if close:
        os.close(dst)
threading.Thread(target=pump, args=(0, child.stdin.fileno(), "in", True), daemon=True).start()
try:
    pump(child.stdout.fileno(), 1, "out", False)
except BrokenPipeError:
    pass
code = child.wait()
with open(log, "a") as f:
    f.write(f"{sub} {count['in']} {count['out']}\n")
os._exit(code)
'''

#: runs the prov CLI in this process, then writes its own peak RSS (KiB): OUT ARGS...
RSS_PROV = r'''import json, resource, runpy, sys
out = sys.argv[1]
sys.argv = ["prov", *sys.argv[2:]]
code = 0
try:
    runpy.run_module("gitprov.cli.entry", run_name="__main__")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
finally:
    with open(out, "w") as f:
        json.dump({"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}, f)
sys.exit(code)
'''

#: makes runs in clones with the public API: JSON {"paths": [...], "runs": n, "artifact": bytes or 0}
MAKE_RUNS = r'''import json, os, sys
import gitprov
spec = json.loads(sys.argv[1])
made = {}
for path in spec["paths"]:
    repo = gitprov.Repository(path)
    ids = []
    for i in range(spec["runs"]):
        opts = {"artifact_threshold": 1 << 31} if spec["artifact"] else {}
        run = repo.start_run(name=f"{os.path.basename(path)}-{i}", experiment="exchange", environment=False, **opts)
        run.log_metric("loss", 1.0 / (i + 1))
        if spec["artifact"]:
            run.log_artifact("model.bin", os.urandom(spec["artifact"]))
        run.end()
        ids.append(run.id)
    made[path] = ids
print(json.dumps(made))
'''


#: commits the checkpoint that makes a format-3 ledger a log (the first write of 0.4 does it): PATH
UPGRADE = r'''import sys
import gitprov
ledger = gitprov.Repository(sys.argv[1]).ledger
ledger.apply({}, "prov: the ledger as a log")
assert ledger.is_log()
'''


class Bench:
    """Source trees, their environments, and the cached ledgers and clones."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = os.path.abspath(args.root)
        self.work = os.path.join(self.root, "work")
        os.makedirs(self.root, exist_ok=True)
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        home = os.path.join(self.root, "home")
        os.makedirs(home, exist_ok=True)
        self.env = h.bench_env(home, pycache=os.path.join(self.root, "pycache"))
        self.env["GIT_TERMINAL_PROMPT"] = "0"
        self.srcs = parse_srcs(args.src)
        self.scripts = {}
        for name, text in (("launch", LAUNCH), ("relay", RELAY), ("rss_prov", RSS_PROV),
                           ("make_runs", MAKE_RUNS)):
            path = os.path.join(self.root, f"{name}.py")
            with open(path, "w") as f:
                f.write(text)
            self.scripts[name] = path
        self._bases: dict[tuple[str, int], str] = {}
        self._indexed: set[tuple[str, int]] = set()
        self._first: dict[tuple[str, int], list[float]] = {}
        self.log = lambda msg: print(msg, flush=True)

    # -- processes ------------------------------------------------------------------
    def env_for(self, label: str) -> dict[str, str]:
        return {**self.env, "PYTHONPATH": self.srcs[label]}

    def prov(self, label: str, cwd: str, *args: str, check: bool = True, extra: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
        return self.timed([sys.executable, "-m", "gitprov.cli.entry", *args], cwd, {**self.env_for(label), **(extra or {})}, check)

    def git_timed(self, cwd: str, *args: str, extra: dict | None = None) -> float:
        return self.timed(["git", *args], cwd, {**self.env, **(extra or {})}, True)[0]

    def timed(self, argv: list[str], cwd: str, env: dict[str, str], check: bool) -> tuple[float, subprocess.CompletedProcess]:
        t0 = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[-3:])} in {cwd} exited {proc.returncode}: {proc.stderr.strip()}")
        return elapsed, proc

    def git(self, cwd: str, *args: str) -> str:
        return h.git(cwd, *args, env=self.env)

    def make_runs(self, label: str, paths: list[str], runs: int, artifact: int = 0) -> dict[str, list[str]]:
        spec = json.dumps({"paths": paths, "runs": runs, "artifact": artifact})
        proc = subprocess.run([sys.executable, self.scripts["make_runs"], spec], env=self.env_for(label),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"making runs failed: {proc.stderr}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def copy(self, src: str, name: str) -> str:
        dest = os.path.join(self.work, name)
        shutil.rmtree(dest, ignore_errors=True)
        subprocess.run(["cp", "-a", src, dest], check=True)
        return dest

    # -- cached ledgers ---------------------------------------------------------------
    def ledger(self, runs: int) -> dict[str, str]:
        """``upstream`` (``runs`` runs, then NEW more in ``plus``), ``remote.git`` (``runs``),
        ``plus.git`` (``runs`` + NEW); built once under ``--root``. ``--layout log``: the
        synthetic ledger upgraded to format 4's log (one checkpoint commit) before it is
        pushed, and the NEW runs made with the API, a transaction each."""
        if self.args.remote_repo:  # the first pull of a ledger made elsewhere (its size is what it holds)
            return {"remote.git": os.path.abspath(self.args.remote_repo)}
        log_layout = self.args.layout == "log"
        base = os.path.join(self.root, f"ledger-{runs}" + ("-log" if log_layout else ""))
        paths = {k: os.path.join(base, k) for k in ("upstream", "remote.git", "plus.git")}
        stamp = os.path.join(base, "DONE")
        if os.path.exists(stamp):
            return paths
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(base)
        saved = dict(os.environ)
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("GIT_") or k == "HOME"})
        try:
            init_repository(paths["upstream"])
            self.log(f"building a ledger of {runs:,} runs ...")
            built = build_ledger(paths["upstream"], runs)
            self.log(f"  {built.seconds:.1f} s")
            if log_layout:
                self.log("upgrading it to a log ...")
                self.prov(next(iter(self.srcs)), paths["upstream"], "init", "--no-hooks")
                upgrade = subprocess.run([sys.executable, "-c", UPGRADE, paths["upstream"]],
                                         env=self.env_for(next(iter(self.srcs))), capture_output=True, text=True)
                if upgrade.returncode != 0:
                    raise RuntimeError(f"upgrading the ledger failed: {upgrade.stderr}")
            for bare in ("remote.git", "plus.git"):
                self.git(base, "init", "-q", "--bare", paths[bare])
            self.git(paths["upstream"], "push", "-q", paths["remote.git"], "HEAD:refs/heads/main", f"{LEDGER}:{LEDGER}")
            if log_layout:
                self.make_runs(next(iter(self.srcs)), [paths["upstream"]], NEW)
            else:
                append_runs(paths["upstream"], NEW)
            self.git(paths["upstream"], "push", "-q", paths["plus.git"], "HEAD:refs/heads/main", f"{LEDGER}:{LEDGER}")
        finally:
            os.environ.clear()
            os.environ.update(saved)
        with open(stamp, "w") as f:
            f.write("ok\n")
        return paths

    def fresh_clone(self, remote: str, name: str, label: str | None) -> str:
        """``git clone --no-local`` (the branch only, through git's transport as from a server:
        a local clone would hard-link every object, the ledger's too) + ``prov init
        --no-hooks --no-pull``."""
        dest = os.path.join(self.work, name)
        shutil.rmtree(dest, ignore_errors=True)
        self.git(self.work, "clone", "-q", "--no-local", remote, dest)
        if label is not None:
            self.prov(label, dest, "init", "--no-hooks", "--no-pull")
        return dest

    def base(self, label: str, runs: int, index: bool = True) -> str:
        """A clone that pulled the ``runs``-run ledger with ``label``'s prov (that first pull is
        timed and kept as a sample of the ``first`` part); ``index``: its run index built
        too, as in a user's clone (the ``first`` part does not need it)."""
        key = (label, runs)
        if key in self._bases and index and key not in self._indexed:
            self.prov(label, self._bases[key], "runs", "--limit", "1")
            self._indexed.add(key)
        if key not in self._bases:
            remote = self.ledger(runs)["remote.git"]
            path = self.fresh_clone(remote, f"base-{self.index(label)}-{runs}", label)
            self.log(f"[{label}] first pull of {runs:,} runs (the base clone) ...")
            seconds, _ = self.prov(label, path, "pull")
            self.log(f"  {seconds:.1f} s")
            self._first.setdefault(key, []).append(seconds)
            if index:
                self.prov(label, path, "runs", "--limit", "1")  # the index, built once as in a user's clone
                self._indexed.add(key)
            self._bases[key] = path
        return self._bases[key]

    def index(self, label: str) -> int:
        return list(self.srcs).index(label)

    # -- (a) and (b): pushing at the same moment ---------------------------------------
    def contend(self, label: str, runs: int, clones: int, each: int, converge: bool) -> dict:
        base = self.base(label, runs)
        remote = self.copy(self.ledger(runs)["remote.git"], f"contended-{self.index(label)}.git")
        paths = []
        for i in range(clones):
            path = self.copy(base, f"c{self.index(label)}-{i:03d}")
            self.git(path, "remote", "set-url", "origin", remote)
            paths.append(path)
        self.log(f"[{label}] {clones} clones make {each} run(s) each ...")
        made = self.make_runs(label, paths, each)
        created = {run_id for ids in made.values() for run_id in ids}
        launcher = [sys.executable, self.scripts["launch"]]
        at = time.time() + 3 + 0.03 * clones
        procs, ends, outs = [], {}, []
        env = self.env_for(label)
        for i, path in enumerate(paths):
            out = open(os.path.join(self.work, f"push-{i:03d}.out"), "w+")  # noqa: SIM115 (closed below)
            err = open(os.path.join(self.work, f"push-{i:03d}.err"), "w+")  # noqa: SIM115
            outs.append((out, err))
            procs.append(subprocess.Popen([*launcher, repr(at), sys.executable, "-m", "gitprov.cli.entry", "push", "--json"],
                                          cwd=path, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL))

        def wait(i: int, proc: subprocess.Popen) -> None:
            try:
                proc.wait(timeout=1800)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            ends[i] = time.time()

        self.log(f"[{label}] {clones} prov push at the same moment ...")
        threads = [threading.Thread(target=wait, args=(i, p)) for i, p in enumerate(procs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = max(ends.values()) - at
        failures, attempts, reasons = 0, [], {}
        for proc, (out, err) in zip(procs, outs, strict=True):
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
            out.close()
            err.close()
            if proc.returncode != 0:
                failures += 1
                line = (stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                reasons[line[:160]] = reasons.get(line[:160], 0) + 1
                continue
            with contextlib.suppress(ValueError, AttributeError):
                attempts.append(int(json.loads(stdout).get("push_attempts", 0)))
        arrived = created & remote_run_ids(remote, self.env)
        # a run not on the remote is still pending when its clone's ledger holds it, lost when not
        lost = sum(len(set(ids) - arrived - remote_run_ids(path, self.env)) for path, ids in made.items()
                   if not set(ids) <= arrived)
        result = {"clones": clones, "each": each, "runs": runs, "failures": failures, "created": len(created),
                  "arrived": len(arrived), "lost": lost, "wall": wall, "attempts": attempts, "reasons": reasons}
        self.log(f"  {failures} failed, {len(arrived)}/{len(created)} runs on the remote, {wall:.1f} s")
        if converge:
            self.log(f"[{label}] one prov pull in each clone ...")
            want = (self.git(remote, "rev-parse", f"{LEDGER}^{{tree}}").strip(), tree_of(remote, NOTES, self.env))
            pulls, converged, pull_failures = [], 0, 0
            for path in paths:
                seconds, proc = self.prov(label, path, "pull", check=False)
                pulls.append(seconds)
                pull_failures += proc.returncode != 0
                have = (tree_of(path, LEDGER, self.env), tree_of(path, NOTES, self.env))
                converged += have == want
            result.update(converged=converged, pull_failures=pull_failures, pull_median=statistics.median(pulls))
            self.log(f"  {converged}/{clones} clones hold the remote's trees")
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(remote, ignore_errors=True)
        return result

    # -- (c) first pull ----------------------------------------------------------------
    def first(self, runs: int) -> dict:
        remote = self.ledger(runs)["remote.git"]
        for label in self.srcs:
            self.base(label, runs, index=False)  # its first pull is the first sample
        floor: list[float] = []
        for r in range(self.args.repeat):
            order = list(self.srcs) + ["git fetch"]
            for label in order if r % 2 == 0 else reversed(order):
                if label == "git fetch":
                    if len(floor) >= self.args.repeat:
                        continue
                    path = self.fresh_clone(remote, "first-floor", None)
                    floor.append(self.git_timed(path, "fetch", "-q", "origin", f"+{LEDGER}:refs/prov-remotes/origin/prov/ledger"))
                    self.log(f"  git fetch of {runs:,} runs: {floor[-1]:.1f} s")
                    shutil.rmtree(path, ignore_errors=True)
                elif len(self._first[(label, runs)]) < self.args.repeat:
                    path = self.fresh_clone(remote, f"first-{self.index(label)}", label)
                    seconds, _ = self.prov(label, path, "pull")
                    self._first[(label, runs)].append(seconds)
                    self.log(f"  [{label}] prov pull of {runs:,} runs: {seconds:.1f} s")
                    shutil.rmtree(path, ignore_errors=True)
        return {"git": floor, **{label: self._first[(label, runs)] for label in self.srcs}}

    # -- (d) incremental pull and push of NEW runs ------------------------------------------
    def relay_to(self, path: str, log: str) -> None:
        relay = f"{shlex.quote(sys.executable)} {shlex.quote(self.scripts['relay'])} {shlex.quote(log)}"
        self.git(path, "config", "remote.origin.uploadpack", f"{relay} upload-pack")
        self.git(path, "config", "remote.origin.receivepack", f"{relay} receive-pack")

    def incremental(self, runs: int) -> dict:
        led = self.ledger(runs)
        res: dict[str, dict[str, list]] = {}
        names = [*self.srcs, "git"]
        for r in range(self.args.repeat):
            for who in names if r % 2 == 0 else reversed(names):
                cell = res.setdefault(who, {"pull_s": [], "pull_wire": [], "pull_pack": [], "push_s": [], "push_wire": []})
                base = self.base(who if who != "git" else next(iter(self.srcs)), runs)
                tag = f"inc-{names.index(who)}"
                # pull: the remote gained NEW runs since the clone's last pull
                path = self.copy(base, f"{tag}-pull")
                self.git(path, "remote", "set-url", "origin", led["plus.git"])
                wire, pack = os.path.join(self.work, f"{tag}-pull.wire"), os.path.join(self.work, f"{tag}-pull.pack")
                for f in (wire, pack):
                    if os.path.exists(f):
                        os.remove(f)
                self.relay_to(path, wire)
                extra = {"GIT_TRACE_PACKFILE": pack}
                if who == "git":
                    seconds = self.git_timed(path, "fetch", "-q", "origin", f"+{LEDGER}:refs/prov-remotes/origin/prov/ledger",
                                             extra=extra)
                else:
                    seconds, _ = self.prov(who, path, "pull", extra=extra)
                cell["pull_s"].append(seconds)
                cell["pull_wire"].append(wire_bytes(wire))
                cell["pull_pack"].append(os.path.getsize(pack) if os.path.exists(pack) else 0)
                shutil.rmtree(path, ignore_errors=True)
                # push: the clone made NEW runs; the remote is where the clone left it
                path = self.copy(base, f"{tag}-push")
                remote = self.copy(led["remote.git"], f"{tag}-push-remote.git")
                self.git(path, "remote", "set-url", "origin", remote)
                wire = os.path.join(self.work, f"{tag}-push.wire")
                if os.path.exists(wire):
                    os.remove(wire)
                self.relay_to(path, wire)
                if who == "git":  # the same ledger state prov holds, then the same new runs
                    self.git(path, "update-ref", LEDGER, self.git(path, "rev-parse", "refs/prov-remotes/origin/prov/ledger").strip())
                saved = dict(os.environ)
                os.environ.update({k: v for k, v in self.env.items() if k.startswith("GIT_") or k == "HOME"})
                try:
                    append_runs(path, NEW, seed=r + 1, start=runs + NEW)
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
                if who == "git":
                    seconds = self.git_timed(path, "push", "-q", "origin", f"{LEDGER}:{LEDGER}")
                else:
                    seconds, _ = self.prov(who, path, "push")
                cell["push_s"].append(seconds)
                cell["push_wire"].append(wire_bytes(wire))
                shutil.rmtree(path, ignore_errors=True)
                shutil.rmtree(remote, ignore_errors=True)
            self.log(f"  {runs:,} runs, round {r + 1}/{self.args.repeat}: " + ", ".join(
                f"{who} pull {c['pull_wire'][-1] / KIB:.1f} KiB {c['pull_s'][-1]:.2f} s, "
                f"push {c['push_wire'][-1] / KIB:.1f} KiB {c['push_s'][-1]:.2f} s" for who, c in res.items()))
        return res

    # -- (e) peak RSS of a pull with a big artifact -----------------------------------------
    def rss(self) -> dict:
        mb = self.args.artifact_mb
        base = os.path.join(self.root, f"artifact-{mb}")
        remote = os.path.join(base, "remote.git")
        stamp = os.path.join(base, "DONE")
        first = next(iter(self.srcs))
        if not os.path.exists(stamp):
            shutil.rmtree(base, ignore_errors=True)
            os.makedirs(base)
            up = os.path.join(base, "upstream")
            init_repository(up)
            self.git(base, "init", "-q", "--bare", remote)
            self.prov(first, up, "init", "--no-hooks", "--no-pull")
            self.log(f"a run with a {mb} MB artifact ...")
            self.make_runs(first, [up], 1, artifact=mb * 1000 * 1000)
            self.git(up, "push", "-q", remote, "HEAD:refs/heads/main", f"{LEDGER}:{LEDGER}", f"{NOTES}:{NOTES}")
            shutil.rmtree(up)
            with open(stamp, "w") as f:
                f.write("ok\n")
        res: dict[str, dict[str, list]] = {}
        names = [*self.srcs, "git"]
        out = os.path.join(self.work, "rss.json")
        for r in range(self.args.repeat):
            for who in names if r % 2 == 0 else reversed(names):
                path = self.fresh_clone(remote, f"rss-{names.index(who)}", first if who == "git" else who)
                if who == "git":
                    argv = ["git", "fetch", "-q", "origin",
                            f"+{LEDGER}:refs/prov-remotes/origin/prov/ledger", f"+{NOTES}:refs/prov-remotes/origin/notes/prov"]
                    env = self.env
                else:
                    argv = [sys.executable, self.scripts["rss_prov"], out, "pull"]
                    env = self.env_for(who)
                seconds, tree = sampled(argv, path, env)
                cell = res.setdefault(who, {"self": [], "tree": [], "s": []})
                if who != "git":
                    with open(out) as f:
                        cell["self"].append(json.load(f)["self"] * KIB)
                cell["tree"].append(tree)
                cell["s"].append(seconds)
                shutil.rmtree(path, ignore_errors=True)
                self.log(f"  [{who}] pull of a {mb} MB artifact: " + (
                    f"prov process {cell['self'][-1] / MIB:.0f} MiB, " if who != "git" else "")
                    + f"process tree {tree / MIB:.0f} MiB, {seconds:.1f} s")
        return res


def _serves(pid: int) -> bool:
    """Whether ``pid`` is the remote's side of a transfer (``upload-pack``/``receive-pack``,
    which git starts as its own child for a remote on the local disk)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read()
    except OSError:
        return False
    return b"upload-pack" in argv or b"receive-pack" in argv


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants now (``/proc``), leaving out the
    remote's side of a transfer and everything under it (the server's memory)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    total, todo, page = 0, [pid], os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        if p != pid and _serves(p):
            continue
        todo.extend(children.get(p, ()))
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total


def sampled(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[float, int]:
    """Run ``argv``; its wall time and the peak of its process tree's resident bytes, sampled
    every 10 ms (a peak shorter than that can be missed)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[-3:])} in {cwd} exited {proc.returncode}: {err.strip()}")
    return elapsed, peak


def remote_run_ids(repo: str, env: dict[str, str]) -> set[str]:
    proc = subprocess.run(["git", "ls-tree", "-r", "-d", "--name-only", LEDGER, "runs/"], cwd=repo, env=env,
                          capture_output=True, text=True)
    return {p.split("/")[2] for p in proc.stdout.splitlines() if p.count("/") == 2}


def tree_of(repo: str, ref: str, env: dict[str, str]) -> str | None:
    proc = subprocess.run(["git", "rev-parse", "-q", "--verify", f"{ref}^{{tree}}"], cwd=repo, env=env,
                          capture_output=True, text=True)
    return proc.stdout.strip() or None


def wire_bytes(log: str) -> int:
    """Bytes both ways on every connection the relay saw."""
    if not os.path.exists(log):
        return 0
    with open(log) as f:
        return sum(int(a) + int(b) for line in f if line.strip() for a, b in [line.split()[1:3]])


# -- the report -------------------------------------------------------------------------------
def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def kib(x: float) -> str:
    return f"{x / KIB:,.1f}"


def header(labels: list[str], first: str = "") -> list[str]:
    return [f"| {first} | " + " | ".join(labels) + " |", "| --- |" + " ---: |" * len(labels)]


def contention_table(res: dict[str, dict], target_seconds: float | None) -> list[str]:
    labels = list(res)
    any_ = next(iter(res.values()))
    rows = header(labels, f"{any_['clones']} clones, {any_['each']} new run(s) each, {any_['runs']:,} runs on the remote")
    cells = {
        "`prov push` failures": lambda r: f"{r['failures']} of {r['clones']}",
        "runs that reached the remote": lambda r: f"{r['arrived']} of {r['created']}",
        "runs in neither the remote nor their own clone (lost for good)": lambda r: str(r.get("lost", "—")),
        "wall time, common start to last exit": lambda r: f"{r['wall']:.1f} s",
        "push attempts of the successful (median / max)": lambda r: (
            f"{med(r['attempts']):.0f} / {max(r['attempts'])}" if r["attempts"] else "—"),
    }
    if "converged" in any_:
        cells["clones holding the remote's trees after one `prov pull`"] = lambda r: f"{r['converged']} of {r['clones']}"
        cells["`prov pull` in each clone, median"] = lambda r: f"{r['pull_median']:.2f} s"
    if target_seconds is not None:
        cells[f"target: 0 failures, all runs, all converge, ≤ {target_seconds:.0f} s"] = lambda r: met(
            r["failures"] == 0 and r["arrived"] == r["created"] and r.get("converged", r["clones"]) == r["clones"]
            and r["wall"] <= target_seconds)
    else:
        cells["target: 0 lost (every run on the remote when all have exited)"] = lambda r: met(r["arrived"] == r["created"])
    for name, fn in cells.items():
        rows.append(f"| {name} | " + " | ".join(fn(res[lb]) for lb in labels) + " |")
    notes = [f"- {lb}: {n}× `{line}`" for lb in labels
             for line, n in sorted(res[lb]["reasons"].items(), key=lambda kv: -kv[1])[:3]]
    return rows + ([""] + ["Failures' last line, most frequent first:", "", *notes] if notes else [])


def first_table(res: dict[int, dict[str, list[float]]]) -> list[str]:
    labels = [lb for lb in next(iter(res.values())) if lb != "git"]
    rows = header([*(f"{lb}: `prov pull` s (× git)" for lb in labels), "`git fetch` s"], "runs in the ledger")
    for runs, cell in sorted(res.items()):
        floor = med(cell["git"])
        rows.append(f"| {runs:,} | " + " | ".join(
            f"{med(cell[lb]):.2f} ({med(cell[lb]) / floor:.1f}×)" for lb in labels) + f" | {floor:.2f} |")
    rows.append("| target at 100,000 | " + " | ".join(
        met(med(res[100_000][lb]) <= 1.5 * med(res[100_000]["git"])) if 100_000 in res else "not measured"
        for lb in labels) + " | ≤ 1.5× |")
    return rows


def incremental_table(res: dict[int, dict[str, dict[str, list]]]) -> list[str]:
    sizes = sorted(res)
    labels = [lb for lb in res[sizes[0]] if lb != "git"]
    rows = header([f"{n:,} runs" for n in sizes], f"{NEW} new runs: KiB moved (s)")
    for lb in [*labels, "git"]:
        for what, key, secs in (("pull", "pull_wire", "pull_s"), ("push", "push_wire", "push_s")):
            name = ("`git fetch`" if what == "pull" else "`git push`") if lb == "git" else f"{lb}: `prov {what}`"
            rows.append(f"| {name} | " + " | ".join(
                f"{kib(med(res[n][lb][key]))} ({med(res[n][lb][secs]):.2f} s)" for n in sizes) + " |")
    for lb in labels:
        rows.append(f"| {lb}: pack received by the pull (`GIT_TRACE_PACKFILE`) | " + " | ".join(
            kib(med(res[n][lb]["pull_pack"])) for n in sizes) + " |")
    rows.append("| `git fetch`: pack received | " + " | ".join(kib(med(res[n]["git"]["pull_pack"])) for n in sizes) + " |")
    for lb in labels:
        rows.append(f"| {lb}: target ≤ 40 KiB (pull and push) | " + " | ".join(
            met(max(med(res[n][lb]["pull_wire"]), med(res[n][lb]["push_wire"])) <= 40 * KIB) for n in sizes) + " |")
    return rows


def rss_table(res: dict[str, dict[str, list]], mb: int) -> list[str]:
    labels = list(res)
    names = ["`git fetch`" if lb == "git" else f"{lb}: `prov pull`" for lb in labels]
    rows = header(names, f"pull of a run with a {mb} MB artifact")
    rows.append("| peak RSS of the `prov` process (`RUSAGE_SELF`), MiB | " + " | ".join(
        "—" if lb == "git" else f"{med(res[lb]['self']) / MIB:,.0f}" for lb in labels) + " |")
    rows.append("| peak RSS of the whole process tree (sampled every 10 ms), MiB | " + " | ".join(
        f"{med(res[lb]['tree']) / MIB:,.0f}" for lb in labels) + " |")
    rows.append("| time, s | " + " | ".join(f"{med(res[lb]['s']):.1f}" for lb in labels) + " |")
    rows.append("| target: ≤ 200 MiB (the `prov` process and the tree) | " + " | ".join(
        "" if lb == "git" else met(max(med(res[lb]["self"]), med(res[lb]["tree"])) <= 200 * MIB)
        for lb in labels) + " |")
    return rows


def command(args: argparse.Namespace, part: str) -> str:
    parts = ["python benchmarks/bench_exchange.py", f"--only {part}"]
    for value in args.src or []:
        parts.append(f"--src '{value}'")
    if part in ("first", "incremental"):
        parts.append(f"--sizes {args.sizes}")
    if part == "contention":
        parts += [f"--clones {args.clones}", f"--contention-runs {args.contention_runs}"]
    if part == "pushers":
        parts += [f"--pushers {args.pushers}", f"--contention-runs {args.contention_runs}"]
    if part == "rss":
        parts.append(f"--artifact-mb {args.artifact_mb}")
    if part in ("first", "incremental", "rss"):
        parts.append(f"--repeat {args.repeat}")
    if args.layout == "log":
        parts.append("--layout log")
    if args.remote_repo and part == "first":
        parts.append("--remote-repo REPO")
    return " ".join([*parts, "--out docs/performance.md"])


def section(args: argparse.Namespace, part: str, title: str, intro: str, rows: list[str], machine: str,
            srcs: dict[str, str], minutes: float) -> str:
    trees = "; ".join(f"{lb} = `{path}` {src_label(path)}" for lb, path in srcs.items())
    return "\n".join([
        f"### {title}", "", intro, "",
        f"Reproduce: `{command(args, part)}` (source trees: {trees}; {machine}; "
        f"{minutes:.1f} min, load average at the end {os.getloadavg()[0]:.1f}).", "",
        *rows, ""])


# -- bulk: the first version of this benchmark ------------------------------------------------
def run(argv: list[str], cwd: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in {cwd} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return elapsed


def object_bytes(repo: str) -> int:
    """Bytes in the repository's object store (loose objects and packs)."""
    total = 0
    for root, _, files in os.walk(os.path.join(repo, ".git", "objects")):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def prepare(root: str, runs: int, new: int, env: dict[str, str], prov: list[str], log) -> dict[str, str]:
    """Build (or reuse) upstream, remote and base; returns their paths."""
    paths = {name: os.path.join(root, name) for name in ("upstream", "remote.git", "base", "extra.git")}
    stamp = os.path.join(root, f"built-{runs}-{new}")
    if os.path.exists(stamp):
        return paths
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    os.environ.update({k: v for k, v in env.items() if k.startswith("GIT_") or k == "HOME"})
    init_repository(paths["upstream"])
    log(f"building a ledger of {runs:,} runs ...")
    built = build_ledger(paths["upstream"], runs)
    log(f"  {built.seconds:.1f} s")
    h.git(root, "init", "-q", "--bare", paths["remote.git"], env=env)
    h.git(paths["upstream"], "push", "-q", paths["remote.git"], "HEAD:refs/heads/main", f"{LEDGER}:{LEDGER}", env=env)
    h.git(root, "clone", "-q", "--no-local", paths["remote.git"], paths["base"], env=env)
    run([*prov, "init", "--no-hooks"], paths["base"], env)
    log("initial prov pull of the whole ledger ...")
    first = run([*prov, "pull"], paths["base"], env)
    log(f"  {first:.1f} s")
    with open(os.path.join(root, "initial-pull-seconds"), "w") as f:
        f.write(f"{first}\n")
    run([*prov, "runs", "--limit", "1"], paths["base"], env)  # build the index once, as a user's clone has
    log(f"upstream adds {new:,} runs and pushes them ...")
    append_runs(paths["upstream"], new)
    h.git(paths["upstream"], "push", "-q", paths["remote.git"], f"{LEDGER}:{LEDGER}", env=env)
    with open(stamp, "w") as f:
        f.write("ok\n")
    return paths


def local_runs(path: str, n: int, env: dict[str, str]) -> None:
    code = (
        "import gitprov,sys\n"
        f"repo = gitprov.Repository({path!r})\n"
        f"for i in range({n}):\n"
        "    r = repo.start_run(name=f'local{i}', code=False, environment=False)\n"
        "    r.log_metric('loss', 1.0 / (i + 1)); r.end()\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def bulk(args: argparse.Namespace, env: dict[str, str], prov: list[str]) -> None:
    """The 1,000-new-runs pull and push of the first version of this benchmark (``--only bulk``)."""
    args.root = os.path.join(args.root, "bulk")
    paths = prepare(args.root, args.runs, args.new, env, prov, print)
    work = os.path.join(args.root, "work")
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {k: [] for k in ("prov pull (fast-forward)", "prov pull (merge)", "git fetch",
                                                     "prov push", "git push")}
    grown: dict[str, list[int]] = {"prov pull (fast-forward)": [], "git fetch": []}
    for r in range(args.repeat):
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        ff = h.working_copy(paths["base"], work, "ff")
        merge = h.working_copy(paths["base"], work, "merge")
        floor = h.working_copy(paths["base"], work, "floor")
        local_runs(merge, 10, env)
        before = {name: object_bytes(path) for name, path in (("ff", ff), ("floor", floor))}
        # the cases alternate their order between rounds so drift hits all alike
        cases = [
            ("prov pull (fast-forward)", lambda cwd=ff: run([*prov, "pull"], cwd, env)),
            ("prov pull (merge)", lambda cwd=merge: run([*prov, "pull"], cwd, env)),
            ("git fetch", lambda cwd=floor: run(["git", "fetch", "-q", "origin",
                                                 f"+{LEDGER}:refs/prov-remotes/origin/prov/ledger"], cwd, env)),
        ]
        for name, fn in cases if r % 2 == 0 else reversed(cases):
            times[name].append(fn())
        grown["prov pull (fast-forward)"].append(object_bytes(ff) - before["ff"])
        grown["git fetch"].append(object_bytes(floor) - before["floor"])
        # push: the clone that pulled makes --new runs of its own and pushes them
        for clone in (ff, floor):  # each pushes to its own copy of the remote
            remote = os.path.join(work, f"remote-{os.path.basename(clone)}.git")
            shutil.copytree(paths["remote.git"], remote, symlinks=True)
            h.git(clone, "remote", "set-url", "origin", remote, env=env)
        h.git(floor, "update-ref", LEDGER, h.git(floor, "rev-parse", "refs/prov-remotes/origin/prov/ledger", env=env).strip(), env=env)
        for clone in (ff, floor):
            append_runs(clone, args.new, seed=r + 1, start=args.runs + args.new)
        pushes = [
            ("prov push", lambda cwd=ff: run([*prov, "push"], cwd, env)),
            ("git push", lambda cwd=floor: run(["git", "push", "-q", "origin", f"{LEDGER}:{LEDGER}"], cwd, env)),
        ]
        for name, fn in pushes if r % 2 == 0 else reversed(pushes):
            times[name].append(fn())
        print(f"  round {r + 1}/{args.repeat}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    load_after = os.getloadavg()
    with open(os.path.join(args.root, "initial-pull-seconds")) as f:
        initial = float(f.read())

    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        "| operation | median s | min s | × git floor |",
        "| --- | ---: | ---: | ---: |",
    ]
    floors = {"prov pull (fast-forward)": "git fetch", "prov pull (merge)": "git fetch", "prov push": "git push"}
    for name, values in times.items():
        ratio = f"{med[name] / med[floors[name]]:.1f}×" if name in floors else ""
        rows.append(f"| {name} | {med[name]:.2f} | {min(values):.2f} | {ratio} |")
    text = "\n".join([
        f"### Collaboration: pulling and pushing {args.new:,} new runs with {args.runs:,} in the ledger",
        "",
        "Reproduce: `python benchmarks/bench_exchange.py --only bulk "
        f"--runs {args.runs} --new {args.new} --repeat {args.repeat} --out docs/performance.md` "
        f"({args.repeat} repetitions, medians; git-prov {_version()}, {h.machine()}).",
        "",
        *rows,
        "",
        f"- Bytes added to the clone's object store by one pull: prov pull "
        f"{statistics.median(grown['prov pull (fast-forward)']) / 1024:,.0f} KiB, git fetch "
        f"{statistics.median(grown['git fetch']) / 1024:,.0f} KiB (the same pack; prov adds only its merge "
        "objects, and nothing at all for a fast-forward) — only new objects move.",
        f"- The first `prov pull` of all {args.runs:,} runs into a fresh clone (setup, measured once): {initial:.1f} s.",
        "- `prov pull`: `git ls-remote` + `git fetch` (with `fetch.fsckObjects`), validation of every new or changed "
        "run directory (record id = content hash, format versions, names, modes, sizes, decodable chunks), the merge "
        "(identical shards are never read), `refs/prov/keep` for the pulled runs' commits. The merge case adds a "
        "merge commit over 10 local runs.",
        "- `prov push`: `git push` without force (one attempt here); `git push` floor: the same ledger objects "
        "to a fresh ref.",
        "- The synthetic ledger writes no notes; real runs add a `run` line to their commit's note, which "
        "pull merges as a union of lines.",
        f"- Load average (1 min) at the start {load_before[0]:.1f}, at the end {load_after[0]:.1f}: a shared "
        "2-core machine, so single rounds vary (printed while the benchmark runs).",
    ])
    print(text)
    if args.out:
        h.write_section(args.out, "bench_exchange", text)




def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="contention,pushers,first,incremental,rss",
                   help=f"comma-separated parts: {', '.join(PARTS)}")
    p.add_argument("--src", action="append", metavar="[LABEL=]DIR",
                   help="a source tree to measure (repeat to compare; default this checkout's src)")
    p.add_argument("--sizes", default="1000,10000,100000", help="ledger sizes of the first and incremental parts")
    p.add_argument("--clones", type=int, default=50, help="clones pushing 2 runs each at once (contention)")
    p.add_argument("--pushers", type=int, default=200, help="processes pushing 1 run each at once (pushers)")
    p.add_argument("--contention-runs", type=int, default=1000, help="runs on the remote before contention/pushers")
    p.add_argument("--artifact-mb", type=int, default=300, help="artifact size of the rss part, MB")
    p.add_argument("--repeat", type=int, default=3, help="rounds of the timed parts (medians)")
    p.add_argument("--runs", type=int, default=100_000, help="ledger of the bulk part")
    p.add_argument("--new", type=int, default=1_000, help="new runs of the bulk part")
    p.add_argument("--layout", choices=("tree", "log"), default="tree",
                   help="the remote's ledger as built (format 3's tree) or upgraded to format 4's log")
    p.add_argument("--remote-repo", help="first part: pull this repository's ledger (e.g. one bench_storage.py "
                   "wrote through the API, a log of one transaction a run) instead of the synthetic one")
    p.add_argument("--root", default=os.path.join(h.default_root(), "exchange15"))
    p.add_argument("--out", help="Markdown file whose bench_exchange_<part> blocks are rewritten")
    args = p.parse_args(argv)
    parts = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"--only: unknown part(s) {', '.join(sorted(unknown))}; choose among {', '.join(PARTS)}")
    if args.remote_repo and parts != ["first"]:
        raise SystemExit("--remote-repo is for --only first")
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    bench = Bench(args)
    machine = h.machine()
    print(f"source trees: {bench.srcs}; working in {bench.root}", flush=True)
    texts = []

    def emit(part: str, title: str, intro: str, rows: list[str], t0: float) -> None:
        text = section(args, part, title, intro, rows, machine, bench.srcs, (time.perf_counter() - t0) / 60)
        print("\n" + text, flush=True)
        texts.append(text)
        if args.out:
            h.write_section(args.out, f"bench_exchange_{part}", text)

    if "contention" in parts:
        t0 = time.perf_counter()
        res = {lb: bench.contend(lb, args.contention_runs, args.clones, 2, converge=True) for lb in bench.srcs}
        emit("contention", f"{args.clones} clones pushing at the same moment",
             f"Each of {args.clones} clones (copies of one that pulled a {args.contention_runs:,}-run ledger) makes "
             "2 runs with the API (pinned to HEAD: both the ledger and the notes change), then all start "
             "`prov push --json` at one instant against one bare remote (a path on this disk: git's local "
             "transport). Then each clone runs one `prov pull`, and holds the remote's ledger and notes trees or not.",
             contention_table(res, 60.0), t0)
    if "pushers" in parts:
        t0 = time.perf_counter()
        res = {lb: bench.contend(lb, args.contention_runs, args.pushers, 1, converge=False) for lb in bench.srcs}
        emit("pushers", f"{args.pushers} pusher processes, 1 run each",
             f"{args.pushers} clones of a {args.contention_runs:,}-run ledger, 1 new run each, all start "
             "`prov push --json` at one instant against one bare remote (like cluster workers at the end of a "
             "sweep). A run is lost when it is not on the remote once every process has exited.",
             contention_table(res, None), t0)
    if "first" in parts:
        t0 = time.perf_counter()
        res = {n: bench.first(n) for n in sizes}
        emit("first", "First pull of a whole ledger",
             "A fresh clone (`git clone` of the branch + `prov init --no-hooks --no-pull`) runs `prov pull`; "
             "the floor is `git fetch` of the same ref into another fresh clone, in the same rounds. "
             f"Medians of {args.repeat}; the first `prov pull` of each source tree also makes the clone the "
             "incremental part starts from.", first_table(res), t0)
    if "incremental" in parts:
        t0 = time.perf_counter()
        res_i = {n: bench.incremental(n) for n in sizes}
        emit("incremental", f"Incremental pull and push of {NEW} new runs",
             f"A clone that pulled the whole ledger pulls {NEW} runs the remote gained, and (on another copy, "
             f"against the remote as it was) pushes {NEW} runs of its own; `git fetch` / `git push` of the same "
             "ref from the same state are the floor. KiB moved: every byte both ways on every connection "
             "(`ls-remote`, fetch, push) between the clone and the remote's upload-pack/receive-pack, counted by "
             f"a relay. Medians of {args.repeat}.", incremental_table(res_i), t0)
    if "rss" in parts:
        t0 = time.perf_counter()
        res_r = bench.rss()
        emit("rss", f"Pulling a {args.artifact_mb} MB artifact",
             f"One run holding a {args.artifact_mb} MB artifact of random bytes in the ledger; a fresh clone pulls "
             "it. Peak RSS of the `prov` process (`getrusage(RUSAGE_SELF)` in a launcher that runs the CLI "
             "in-process) and of its whole process tree (the sum over prov and its git children: fetch, index-pack, "
             "cat-file, …, sampled every 10 ms; the remote's upload-pack and pack-objects, which git starts as "
             "children for a remote on the local disk, are left out: they are the server's memory), "
             f"beside `git fetch` of the same refs. Medians of {args.repeat}.",
             rss_table(res_r, args.artifact_mb), t0)
    if "bulk" in parts:
        first = next(iter(bench.srcs))
        bulk(args, bench.env_for(first), [sys.executable, "-m", "gitprov.cli.entry"])
    shutil.rmtree(bench.work, ignore_errors=True)
    return 0


def _version() -> str:
    from gitprov import __version__

    return __version__


if __name__ == "__main__":
    raise SystemExit(main())
