"""Shared pieces of the git-prov benchmarks: building the 10,000-commit repository,
timing whole processes, a real ``mlflow server`` (also used by the sync tests), and
writing results into ``docs/performance.md``.

No dependency beyond the standard library and git-prov itself (for the build), so
anyone can rerun the benchmarks with the interpreter git-prov is installed in.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

FILES = 50  # files in the work tree; each commit edits one of them
EPOCH = 1_700_000_000  # author/committer time of the first commit (fixed: reproducible ids)
BUILD_VERSION = 1  # bump when the layout of the built repository changes

# A fixed, isolated git environment: no system or user config, fixed identity.
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def bench_env(home: str, pycache: str | None = None) -> dict[str, str]:
    """The environment every measured process runs in.

    ``pycache``: a private ``PYTHONPYCACHEPREFIX`` (warmed by the warm-up rounds), and
    ``PYTHONDONTWRITEBYTECODE`` dropped, so Python runs from bytecode as on a normal
    install; some sandboxes set ``PYTHONDONTWRITEBYTECODE=1``, which makes every
    ``prov`` call recompile git-prov from source.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "PROV_DEBUG"}
    env.update(GIT_ENV)
    env["HOME"] = home
    env.pop("XDG_CONFIG_HOME", None)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def git(cwd: str, *args: str, env: dict[str, str], input: bytes | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, input=input, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


# -- building the repository ---------------------------------------------------------


def _fast_import_stream(n: int) -> bytes:
    """One fast-import stream: a first commit with FILES files, then n-1 one-file edits."""
    out: list[bytes] = []
    for i in range(n):
        ts = EPOCH + i * 60
        msg = f"commit {i}\n".encode()
        out.append(b"commit refs/heads/main\n")
        out.append(b"mark :%d\n" % (i + 1))
        out.append(b"author Bench <bench@example.com> %d +0000\n" % ts)
        out.append(b"committer Bench <bench@example.com> %d +0000\n" % ts)
        out.append(b"data %d\n%s" % (len(msg), msg))
        if i == 0:
            files = {f"src/mod_{k:02d}.py": f"# module {k}\nVALUE = 0\n" for k in range(FILES - 3)}
            files["pyproject.toml"] = '[project]\nname = "bench"\nversion = "0"\n'
            files["requirements.txt"] = "numpy==1.26.4\n"
            files["README.md"] = "# bench\n"
        else:
            out.append(b"from :%d\n" % i)
            k = i % (FILES - 3)
            files = {f"src/mod_{k:02d}.py": f"# module {k}\nVALUE = {i}\n"}
        for path, text in files.items():
            data = text.encode()
            out.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data))
        out.append(b"\n")
    return b"".join(out)


def _write_captures(path: str, log: Callable[[str], None]) -> None:
    """One capture per commit, written with ONE ``Notes.add`` call (one notes commit)."""
    import msgspec

    from gitprov import codec
    from gitprov.api import Repository, utc_timestamp

    repo = Repository(path)
    head = repo.git.head()
    base = repo.build_capture(head, trigger="hook")  # real environment, lockfiles, schema pin
    rows = git(path, "log", "--format=%H %T %ct", "main", env=bench_env(os.environ.get("HOME", "/")))
    lines: dict[str, list[bytes]] = {}
    for row in rows.split("\n"):
        if not row:
            continue
        commit, tree, ct = row.split()
        rec = msgspec.structs.replace(base, commit=commit, tree=tree, captured_at=utc_timestamp(int(ct) + 1))
        lines[commit] = [codec.encode(rec)]
    t0 = time.perf_counter()
    repo.notes.add(lines, f"bench: {len(lines)} captures")
    log(f"  notes.add of {len(lines)} captures: {time.perf_counter() - t0:.1f} s")


def build_repository(root: str, n: int, *, log: Callable[[str], None] = print) -> dict[str, str]:
    """Build (or reuse) the benchmark repositories under ``root``.

    Returns ``{"packed": path, "loose": path}``: the same history and notes, after
    ``git gc --prune=now`` and with every object unpacked to a loose file.
    """
    base = os.path.join(root, f"gitprov-bench-v{BUILD_VERSION}-n{n}")
    packed, loose = os.path.join(base, "packed"), os.path.join(base, "loose")
    done = os.path.join(base, "DONE")
    if os.path.exists(done):
        log(f"reusing cached repositories in {base}")
        return {"packed": packed, "loose": loose}
    shutil.rmtree(base, ignore_errors=True)
    home = os.path.join(base, "home")
    os.makedirs(home)
    env = bench_env(home)
    t_all = time.perf_counter()

    log(f"building {n} commits with git fast-import in {packed} ...")
    t0 = time.perf_counter()
    os.makedirs(packed)
    git(packed, "init", "-q", "-b", "main", env=env)
    git(packed, "fast-import", "--quiet", env=env, input=_fast_import_stream(n))
    git(packed, "reset", "-q", "--hard", "main", env=env)
    log(f"  fast-import + checkout: {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the API reads identity/config from the environment
    try:
        _write_captures(packed, log)
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    log(f"  captures total: {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    git(packed, "gc", "-q", "--prune=now", env=env)
    log(f"  git gc --prune=now: {time.perf_counter() - t0:.1f} s")
    check = git(packed, "notes", "--ref=prov", "list", env=env).count("\n")
    if check != n:
        raise RuntimeError(f"expected {n} notes, git lists {check}")

    t0 = time.perf_counter()
    shutil.copytree(packed, loose, symlinks=True, ignore=shutil.ignore_patterns("pack"))
    os.makedirs(os.path.join(loose, ".git", "objects", "pack"), exist_ok=True)
    pack_dir = os.path.join(packed, ".git", "objects", "pack")
    for name in os.listdir(pack_dir):
        if name.endswith(".pack"):
            with open(os.path.join(pack_dir, name), "rb") as f:
                git(loose, "unpack-objects", "-q", env=env, input=f.read())
    log(f"  loose variant (git unpack-objects): {time.perf_counter() - t0:.1f} s")

    with open(done, "w") as f:
        f.write(f"{n}\n")
    log(f"built in {time.perf_counter() - t_all:.1f} s")
    return {"packed": packed, "loose": loose}


def working_copy(src: str, dest_root: str, name: str) -> str:
    """A disposable copy of a built repository (benchmarks that write never touch the cache)."""
    dest = os.path.join(dest_root, name)
    shutil.copytree(src, dest, symlinks=True)
    return dest


# -- timing --------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    argv: Sequence[str]
    cwd: str
    #: untimed step run before each timed run (e.g. make a fresh commit)
    setup: Callable[[], None] | None = None
    #: a git floor this case is compared with (name of another case)
    floor: str | None = None
    note: str = ""
    #: extra environment for this case only
    env: dict[str, str] | None = None
    times: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))
    return ordered[k]


def run_once(case: Case, env: dict[str, str]) -> float:
    if case.setup is not None:
        case.setup()
    t0 = time.perf_counter()
    if case.env:
        env = {**env, **case.env}
    proc = subprocess.run(case.argv, cwd=case.cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{case.name}: {' '.join(case.argv)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return elapsed


def measure(cases: list[Case], env: dict[str, str], repeat: int, warmup: int = 2, log: Callable[[str], None] = print) -> None:
    """Round-robin: every round runs every case once, so drift hits all cases alike."""
    for _ in range(warmup):
        for case in cases:
            run_once(case, env)
    for r in range(repeat):
        for case in cases:
            case.times.append(run_once(case, env))
        if (r + 1) % 5 == 0 or r + 1 == repeat:
            log(f"  round {r + 1}/{repeat}")


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def table(cases: list[Case], targets: dict[str, float] | None = None) -> str:
    targets = targets or {}
    by_name = {c.name: c for c in cases}
    rows = [
        "| command | median ms | p90 ms | min ms | × git floor (median) | target | note |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for c in cases:
        med = statistics.median(c.times)
        ratio = ""
        if c.floor and c.floor in by_name:
            ratio = f"{med / statistics.median(by_name[c.floor].times):.1f}×"
        target = ""
        if c.name in targets:
            t = targets[c.name]
            target = f"≤ {t:.0f} ms: {'met' if med * 1000 <= t else '**missed**'}"
        rows.append(f"| `{c.name}` | {ms(med)} | {ms(percentile(c.times, 0.9))} | {ms(min(c.times))} | {ratio} | {target} | {c.note} |")
    return "\n".join(rows)


def machine() -> str:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gitv = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    try:
        load = "load average at start {:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load average unknown"
    return (
        f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()} ({sys.executable}), {gitv}; {load}"
    )


def write_section(path: str, marker: str, text: str) -> None:
    """Replace the ``<!-- marker:begin -->…<!-- marker:end -->`` block of ``path``
    (appending it when absent), leaving the rest of the document alone."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    try:
        with open(path, encoding="utf-8") as f:
            doc = f.read()
    except FileNotFoundError:
        doc = ""
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        doc = head + block + tail
    else:
        doc = (doc.rstrip() + "\n\n" if doc.strip() else "") + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc)


def default_root() -> str:
    return os.path.join(tempfile.gettempdir(), "gitprov-bench")


def find_prov() -> list[str]:
    """The ``prov`` console script installed next to this interpreter (what users run)."""
    candidate = os.path.join(os.path.dirname(sys.executable), "prov")
    if os.path.exists(candidate):
        return [candidate]
    found = shutil.which("prov")
    if found:
        return [found]
    return [sys.executable, "-m", "gitprov.cli.entry"]


def isolate(root: str, **env: str) -> None:
    """Point git, MLflow and W&B at ``root`` and pin git's identity, for this process and
    its children; ``env`` adds variables."""
    for key in [k for k in os.environ if k.startswith(("GIT_", "WANDB_", "MLFLOW_"))]:
        del os.environ[key]
    os.environ.pop("XDG_CONFIG_HOME", None)
    home = os.path.join(root, "home")
    os.makedirs(home, exist_ok=True)
    os.environ.update(GIT_ENV)
    os.environ.update({"HOME": home, **env})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1 over a sqlite backend, in its own process
    group (the ``mlflow`` script next to this interpreter). ``with`` starts it and
    stops it cleanly; ``kill()`` is the crash the sync tests inject."""

    def __init__(self, db: str | os.PathLike[str], artifacts: str | os.PathLike[str], log: str | os.PathLike[str]) -> None:
        self.db, self.artifacts, self.log = os.fspath(db), os.fspath(artifacts), os.fspath(log)
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 180.0) -> str:
        """Start the server and wait until ``/health`` answers; returns its URL."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        exe = os.path.join(os.path.dirname(sys.executable), "mlflow")
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [exe, "server", "--backend-store-uri", f"sqlite:///{self.db}", "--default-artifact-root",
                 self.artifacts, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self.url
            except OSError:
                time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"mlflow server did not come up in {timeout:.0f}s: {self._log_tail()}")

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL if it has not gone in 30 s."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to its process group at once."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def _log_tail(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return f"see {self.log}"

    def __enter__(self) -> MlflowServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
