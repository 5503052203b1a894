"""A measured study of a format-4 ledger layout (issue 14: repository growth per run,
no manual gc, <= 2 KiB at 100,000 runs). Benchmark-only: nothing here changes what
git-prov writes.

    python benchmarks/study_format4.py [--runs 10000] [--real 10000] [--candidates A,B,C,D,E,F,G,H,I,J]
                                       [--samples 10] [--writes 1] [--root DIR] [--keep] [--out FILE]
    python benchmarks/study_format4.py --report ROOT/.../results.json

Smoke run (about ten seconds on a quiet machine, a minute at load 10; every candidate
at 200 runs, ``git fsck --strict`` on each, the format-3 replay checked tree for tree
against the real runs; exits 1 when a repository fails fsck):

    python benchmarks/study_format4.py --runs 200

Measured (docs/performance.md, "Format 4: a measured study"): ``--runs 10000`` (every
candidate), ``--runs 2000 --candidates A,F,G,H``, ``--runs 100000 --candidates G,H,C,A``
(stopped during C, the third: 20-35 min a candidate at load 3-16), ``--runs 100000
--candidates I,G`` (stopped during G), ``--runs 100000 --candidates J,A`` (33 min at
load 1-3) and ``--runs 100000 --candidates J``.

The workload is ``bench_growth.py``'s: three params, 100 points of one metric, one
1,024-byte JSON artifact, ``start_run(code=False, environment=False)``. Step 1 makes
``--runs`` real runs through git-prov's public API in a repository of one commit
(format 3 as it is, prov's own background ``git repack --geometric=4 -d`` as prov
starts it, waited for at the end): the baseline, ``A (real)``. Step 2 reads every
run's content back (record, state, the metric chunk, the artifact) and writes the same
bytes again, run by run, in creation order, into a new repository per candidate layout,
each run one ledger transaction through git-prov's own transaction code
(``store.ledger.Ledger.apply``: one pack per transaction, compare-and-swap of
``refs/prov/ledger`` with its reflog line, then ``odb.maintain``, which starts the same
detached geometric repack prov starts). So a candidate differs from format 3 only in
the paths its objects get:

A   format 3, replayed: ``runs/<xx>/<id>/{record,state,series/<key>/<chunk>,
    artifacts/<key>}`` and ``commits/<cc>/<C>/<xx>/<id>``. Its trees must be the real
    runs' trees, id for id (checked: the study stops otherwise).
B   flat run directory: ``runs/<xx>/<id>/{run, <key>=<chunk>, @<key>}``: ``run`` is
    the record and the state in one blob (record line, state line), a series chunk and
    an artifact are entries of the run's own tree (``=`` and ``@`` cannot start or sit
    inside a percent-encoded key); ``commits/`` as in A, its link naming the empty blob.
C   B without ``commits/``: a run's commit is in its record.
D   C with ``runs/<xx>/<yy>/<id>/`` (65,536 leaves: small at 100,000 runs).
E   C without the ``runs/`` level: ``<xx>/<id>/`` at the root, beside ``format``.
F   E without a run directory: the run's files are entries of its shard,
    ``<xx>/<id>``, ``<xx>/<id>=<key>=<chunk>``, ``<xx>/<id>@<key>``.
G   F with a small artifact (<= 4 KiB) inside the run blob: ``<xx>/<id>`` holds
    record, state and artifact; ``<xx>/<id>=<key>=<chunk>`` the chunk.
H   G with 4,096 shards, ``<xx>/<y>/<id>`` (``<y>``: the id's third hex digit), so a
    shard holds ~24 runs at 100,000 instead of ~390.
I   H with its leaves named by the id's first three digits, ``<xx>/<xxy>/<id>``: 4,096
    leaf names instead of 16, so that git's delta search, which sorts trees by a hash
    of their name that weighs its last characters most, keeps each leaf's versions
    together (H's 16 names put 256 leaves under each).
J   G's entries as a log: each ledger commit's tree holds ``format`` and the entries its
    own transaction wrote, at the root (``<id>``, ``<id>=<key>=<chunk>``,
    ``<id>@<key>``); the previous transaction's entries are removed from it. The
    ledger is the union of its commits' trees (a reader folds the commit chain; the
    run index is that fold, kept), so no tree grows with the runs already there. Every
    tree also holds ``runs/``, one constant subtree with a run of format 4, written by
    the first transaction: what an older release lists, so that it stops with its
    "newer than this git-prov reads" line.

``--writes N``: each run is written as N ledger transactions instead of one, as a run
that flushes while it logs writes it (``flushes``): the state at that moment and the
points logged since the last write, the last one the run as it ended, with its
artifacts. Figures stay per run.

Past ``--real`` runs (default 10,000), run ``k`` is made from real run ``k % real``
as the API would have made run ``k`` of the workload (``synthesise``: its own name,
nonce, params, writer id, metric values, artifact; tested in
tests/test_study_format4.py), so 100,000 runs do not need 100,000 real ones.

Each repository is measured as prov leaves it (its repack waited for) and on a copy
after ``git repack -adf``: ``.git`` growth a run (``du -sb``, from the repository
after ``gitprov.init``), of which ``objects/`` and reflogs, objects a run, and bytes a
run by object kind (``git cat-file --batch-all-objects --batch-check``
``%(objectsize:disk) %(deltabase)``; a blob's kind is known from the replay, a tree's
is its first path in ``git rev-list --objects`` with ids replaced by ``<xx>``/``<id>``).
``git fsck --strict`` must pass on every repository (checked on the copy before the
repack). ``--samples N``: ``.git`` as left is also measured at N moments of each replay
(the repack waited for each time), as it swings with the geometric progression. From
the repacked copy, what a first pull would receive and read: the ledger's pack
(``git pack-objects --revs``), and the CPU of ``git index-pack --strict`` and of prov's
``store/packstream.scan_blobs`` on it. On the repository as left, what a cold index
build lists before any run's blobs, git alone (``listing_seconds``). Results are kept in ``results.json`` under the
root as each candidate ends (``--report`` prints them). Runs per second are the
replay's own (indicative only on a shared machine).
Not a test: nothing asserts a figure; ``--out`` rewrites the ``study_format4`` block of
a Markdown file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h  # noqa: E402
from bench_growth import (  # noqa: E402
    artifact_of,
    copy_repo,
    du,
    gitprov_run,
    object_names,
    params_of,
    series_of,
    settle,
    stats,
    where,
)

from gitprov.store.objects import SHA1  # noqa: E402

KIB = 1024
CANDIDATES = {
    "A": "format 3 (replayed)",
    "B": "flat run directory, record+state one blob",
    "C": "B, no commits/",
    "D": "C, runs/<xx>/<yy>/<id>/",
    "E": "C, shards at the root (no runs/)",
    "F": "E, no run directory",
    "G": "F, small artifact inside the run blob",
    "H": "G, 4,096 shards (<xx>/<y>/)",
    "I": "G, 4,096 shards named apart (<xx>/<xxy>/)",
    "J": "G as a log: a commit's tree holds its own run only",
}
INLINE_LIMIT = 4096


class Run:
    """One run's stored content, read back from the real ledger."""

    __slots__ = ("id", "commit", "created", "record", "state", "chunks", "artifacts")

    def __init__(self, run_id: str) -> None:
        self.id = run_id
        self.commit = ""
        self.created = ""
        self.record = self.state = b""
        self.chunks: dict[tuple[str, str], bytes] = {}  # (key, chunk name) -> bytes
        self.artifacts: dict[str, bytes] = {}  # key -> bytes


# -- step 1: real runs, read back --------------------------------------------------------


def new_repo(path: str) -> str:
    import gitprov

    os.makedirs(path)
    env = dict(os.environ)
    h.git(path, "init", "-q", "-b", "main", env=env)
    with open(os.path.join(path, "train.py"), "w") as f:
        f.write("print('train')\n")
    h.git(path, "add", "train.py", env=env)
    h.git(path, "commit", "-q", "-m", "initial", env=env)
    gitprov.init(path, hooks=False)
    return path


def real_runs(path: str, n: int) -> float:
    """``n`` runs of the workload through the public API; seconds."""
    import gitprov

    repo = gitprov.Repository(path)
    t0 = time.perf_counter()
    for k in range(n):
        gitprov_run(repo, k, 100, "json")
    return time.perf_counter() - t0


def read_back(path: str) -> list[Run]:
    """Every run of the ledger with its content, in creation order."""
    env = dict(os.environ)
    listing = h.git(path, "ls-tree", "-r", "refs/prov/ledger", "runs", env=env).splitlines()
    runs: dict[str, Run] = {}
    wanted: list[tuple[str, str, tuple[str, ...]]] = []  # (oid, run id, rest of the path)
    for line in listing:
        meta, _, name = line.partition("\t")
        oid = meta.split()[2]
        parts = name.split("/")
        run = runs.setdefault(parts[2], Run(parts[2]))
        wanted.append((oid, run.id, tuple(parts[3:])))
    proc = subprocess.run(["git", "cat-file", "--batch"], cwd=path, env=env, check=True, capture_output=True,
                          input="".join(f"{oid}\n" for oid, _, _ in wanted).encode())
    data, at = proc.stdout, 0
    for _oid, run_id, rest in wanted:
        end = data.index(b"\n", at)
        size = int(data[at:end].split()[2])
        body = data[end + 1:end + 1 + size]
        at = end + 2 + size
        run = runs[run_id]
        if rest == ("record",):
            run.record = body
            record = json.loads(body)
            run.commit, run.created = record["code"]["commit"], record["created"]
        elif rest == ("state",):
            run.state = body
        elif rest[0] == "series" and len(rest) == 3:
            run.chunks[(rest[1], rest[2])] = body
        elif rest[0] == "artifacts" and len(rest) == 2:
            run.artifacts[rest[1]] = body
        else:
            raise SystemExit(f"run {run_id}: unexpected entry {'/'.join(rest)} (the study knows the workload's)")
    return sorted(runs.values(), key=lambda r: (r.created, r.id))


def synthesise(real: list[Run], total: int):
    """``total`` runs: the ``real`` ones, then run ``k`` made from real run ``k % len(real)``
    as the API would have made run ``k`` of the workload: its own name, nonce (so its own
    id), params, writer id, metric values (``bench_growth.series_of(k)``, encoded with
    ``runs/series.py``'s ``encode_metric_chunk`` at the real run's steps and timestamps),
    artifact (``artifact_of(k)``) and the state's latest value and artifact digest."""
    import hashlib
    import random

    import msgspec

    from gitprov.runs.series import decode_metric_chunk, encode_metric_chunk
    yield from real
    for k in range(len(real), total):
        src = real[k % len(real)]
        rng = random.Random(k)
        old_name = b'"name":"run-%06d"' % (k % len(real))
        new_name = b'"name":"run-%06d"' % k
        params = msgspec.json.encode(params_of(k), order="sorted")
        record = re.sub(rb'"nonce":"[0-9a-f]+"', b'"nonce":"%016x"' % rng.getrandbits(64), src.record)
        record = re.sub(rb'"params":\{[^}]*\}', lambda _m, p=params: b'"params":' + p, record)
        record = record.replace(old_name, new_name)
        run = Run(SHA1.hash_object("blob", record))
        run.commit, run.created, run.record = src.commit, src.created, record
        writer = f"{rng.getrandbits(32):08x}"
        values = series_of(k, 100)
        for (key, chunk), data in src.chunks.items():
            steps, stamps, _ = decode_metric_chunk(data)
            run.chunks[(key, writer + chunk[8:])] = encode_metric_chunk(steps, stamps, values[:len(steps)])
        state = src.state.replace(old_name, new_name)
        state = re.sub(rb'"writer":"[0-9a-f]{8}"', b'"writer":"%s"' % writer.encode(), state)
        state = re.sub(rb'"value":[^,}]+\}', b'"value":%s}' % msgspec.json.encode(values[-1]), state)
        for key, data in src.artifacts.items():
            art_key, content = artifact_of(k, "json")
            assert art_key == key, (art_key, key)
            run.artifacts[key] = content
            state = state.replace(hashlib.sha256(data).hexdigest().encode(), hashlib.sha256(content).hexdigest().encode())
        run.state = state
        yield run


# -- step 2: the candidates --------------------------------------------------------------


def flushes(run: Run, n: int) -> list[Run]:
    """``run`` as ``n`` ledger writes, as a run that flushes while it logs writes it:
    write ``j`` holds the state at that moment (``running``, its lamport ``j + 1``, the
    metric's latest point) and a chunk of the points logged since the last; the last
    write is the run as it ended, with its artifacts."""
    if n <= 1:
        return [run]
    import msgspec

    from gitprov.runs.series import decode_metric_chunk, encode_metric_chunk

    (key, name), data = next(iter(run.chunks.items()))
    steps, stamps, values = decode_metric_chunk(data)
    cuts = [len(steps) * j // n for j in range(n + 1)]
    state = msgspec.json.decode(run.state)
    out = []
    for j in range(n):
        part = Run(run.id)
        part.commit, part.created, part.record = run.commit, run.created, run.record
        a, b = cuts[j], cuts[j + 1]
        part.chunks[(key, f"{name[:8]}-{j:08d}")] = encode_metric_chunk(steps[a:b], stamps[a:b], values[a:b])
        last = j == n - 1
        now = dict(state, lamport=j + 1 if not last else n)
        if not last:
            now.update(status="running", ended=None, artifacts={},
                       metrics={key: {"step": steps[b - 1], "timestamp": stamps[b - 1], "value": values[b - 1]}})
        else:
            part.artifacts = dict(run.artifacts)
        part.state = msgspec.json.encode(now, order="sorted")
        out.append(part)
    return out




def run_blob(run: Run, inline: bool) -> bytes:
    """Record and state in one blob (a line each), and with ``inline`` the run's small
    artifacts after them: a prototype framing (a real format would frame with lengths;
    a few bytes either way)."""
    parts = [run.record, run.state]
    if inline:
        parts += [key.encode() + b"\n" + content for key, content in sorted(run.artifacts.items())
                  if len(content) <= INLINE_LIMIT]
    return b"\n".join(parts)


EMPTY = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
#: J keeps a run of format 4 under ``runs/`` (the same subtree in every commit's tree):
#: what an older release lists there, so it stops with its "newer than this git-prov
#: reads" line instead of showing an empty ledger
_SENTINEL_RECORD = b'{"format_version":4,"kind":"run-record","requires":"git-prov>=0.4.0"}'
SENTINEL = {f"runs/{sid[:2]}/{sid}/{name}": data
            for sid in [SHA1.hash_object("blob", _SENTINEL_RECORD)]
            for name, data in (("record", _SENTINEL_RECORD),
                               ("state", b'{"format_version":4,"kind":"run-state"}'))}


def changes_for(name: str, run: Run, empty: str) -> tuple[dict[str, bytes | str], dict[bytes, str]]:
    """``(changes, {blob bytes: kind})`` of candidate ``name`` for ``run``."""
    rid, x = run.id, run.id[:2]
    out: dict[str, bytes | str] = {}
    kinds: dict[bytes, str] = {}

    def put(path: str, data: bytes, kind: str) -> None:
        out[path] = data
        kinds[data] = kind

    chunk_kind, art_kind = "metric chunk blob", "artifact blob"
    if name == "A":
        base = f"runs/{x}/{rid}"
        put(f"{base}/record", run.record, "record blob")
        put(f"{base}/state", run.state, "state blob")
        for (key, chunk), data in run.chunks.items():
            put(f"{base}/series/{key}/{chunk}", data, chunk_kind)
        for key, data in run.artifacts.items():
            put(f"{base}/artifacts/{key}", data, art_kind)
        out[f"commits/{run.commit[:2]}/{run.commit}/{x}/{rid}"] = rid
        return out, kinds
    inline = name in ("G", "H", "I", "J")
    if name in ("B", "C"):
        base, sep = f"runs/{x}/{rid}/", ""
    elif name == "D":
        base, sep = f"runs/{x}/{rid[2:4]}/{rid}/", ""
    elif name == "E":
        base, sep = f"{x}/{rid}/", ""
    elif name == "H":
        base, sep = f"{x}/{rid[2]}/{rid}", "-"
    elif name == "I":
        base, sep = f"{x}/{rid[:3]}/{rid}", "-"
    elif name == "J":
        base, sep = rid, "-"
    else:  # F, G: the run's files are entries of its shard
        base, sep = f"{x}/{rid}", "-"
    put(base + ("run" if not sep else ""), run_blob(run, inline), "run blob (record+state" + (
        "+artifact)" if inline else ")"))
    for (key, chunk), data in run.chunks.items():
        put(f"{base}={key}={chunk}" if sep else f"{base}{key}={chunk}", data, chunk_kind)
    for key, data in run.artifacts.items():
        if inline and len(data) <= INLINE_LIMIT:
            continue
        put(f"{base}@{key}" if sep else f"{base}@{key}", data, art_kind)
    if name == "B":
        out[f"commits/{run.commit[:2]}/{run.commit}/{x}/{rid}"] = empty
    return out, kinds


def replay(name: str, path: str, runs: Iterable[Run], every: int = 0,
           samples: list | None = None, writes: int = 1) -> tuple[float, dict[str, str], list[str]]:
    """Write ``runs`` under candidate ``name`` into the repository at ``path``, one
    ledger transaction each (``writes``: that many, as ``flushes`` makes them);
    ``(seconds, {blob id: kind}, the commits' trees)``. With ``every``, ``(runs, du -sb
    .git)`` is appended to ``samples`` after every ``every`` runs, prov's repack waited
    for first (not counted in the seconds)."""
    from gitprov.store.ledger import Ledger
    from gitprov.store.repo import GitRepository

    repo = GitRepository.open(path)
    fmt = repo.fmt
    ledger = Ledger(repo)
    kinds: dict[str, str] = {}
    empty: bytes | str = b""
    t0 = time.perf_counter()
    paused = 0.0
    previous: list[str] = []
    for done, run in enumerate(runs, 1):
        for version in flushes(run, writes):
            changes, blob_kinds = changes_for(name, version, EMPTY)
            if name == "J":  # a log: the tree holds this transaction's entries only
                now = list(changes)
                changes = {**dict.fromkeys(previous), **changes, **(SENTINEL if done == 1 else {})}
                previous = now
            if name == "B" and empty == b"":  # the first link writes the empty blob, the rest name it
                changes = {p: (b"" if v == EMPTY else v) for p, v in changes.items()}
                empty = EMPTY
            status = "finished" if version.artifacts or writes == 1 else "running"
            ledger.apply(changes, f"prov: run {run.id[:12]} {status}")
            for data, kind in blob_kinds.items():
                kinds[fmt.hash_object("blob", data)] = kind
        if every and samples is not None and done % every == 0:
            t1 = time.perf_counter()
            settle(path)
            samples.append((done, du(os.path.join(path, ".git"), "-b")))
            paused += time.perf_counter() - t1
    seconds = time.perf_counter() - t0 - paused
    trees = h.git(path, "log", "--reverse", "--format=%T", "refs/prov/ledger", env=dict(os.environ)).split()
    return seconds, kinds, trees


def migrate(path: str, runs: Iterable[Run], scratch: str) -> dict:
    """The 3 -> 4 upgrade as one transaction on a copy of the format-3 repository at
    ``path``: every run's G entries (a new run blob; chunks and large artifacts under
    their new names by the ids they have), ``runs/`` and ``commits/`` removed. What it
    adds to ``.git`` as left (the repack waited for) and after ``git repack -adf``
    (history keeps the format-3 trees), and its seconds."""
    from gitprov.store.ledger import Ledger
    from gitprov.store.repo import GitRepository

    settle(path)
    work = copy_repo(path, scratch)
    before = stats(work)
    changes: dict[str, bytes | str | None] = {"runs": None, "commits": None}
    for run in runs:
        for entry, data in changes_for("G", run, EMPTY)[0].items():
            kept = entry.endswith(tuple(f"={k}={c}" for k, c in run.chunks)) or "@" in entry
            changes[entry] = SHA1.hash_object("blob", data) if kept and isinstance(data, bytes) else data
    repo = GitRepository.open(work)
    t0 = time.perf_counter()
    tip = Ledger(repo).apply(changes, "prov: upgrade the ledger to format 4")
    seconds = time.perf_counter() - t0
    tree = repo.read_commit(tip).tree if tip else None
    settle(work)
    fsck = subprocess.run(["git", "fsck", "--strict", "--no-progress"], cwd=work, capture_output=True, text=True)
    after = stats(work)
    h.git(work, "repack", "-adf", "-q", env=dict(os.environ))
    repacked_after = stats(work)
    shutil.rmtree(work, ignore_errors=True)
    work = copy_repo(path, scratch)
    h.git(work, "repack", "-adf", "-q", env=dict(os.environ))
    repacked_before = stats(work)
    shutil.rmtree(work, ignore_errors=True)
    return {"seconds": seconds, "fsck": fsck.returncode == 0, "tree": tree, "left": after["git"] - before["git"],
            "repacked": repacked_after["git"] - repacked_before["git"]}


# -- measuring ---------------------------------------------------------------------------

_HEX1, _HEX2, _HEX3 = re.compile(r"^[0-9a-f]$"), re.compile(r"^[0-9a-f]{2}$"), re.compile(r"^[0-9a-f]{3}$")
_ID = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def tree_kind(path: str | None) -> str:
    if not path:
        return "root tree"
    parts = ["<xx>" if _HEX2.match(p) else "<id>" if _ID.match(p) else "<y>" if _HEX1.match(p)
             else "<xxy>" if _HEX3.match(p) else p for p in path.split("/")]
    return "/".join(parts) + "/ tree"


def breakdown(path: str, names: dict[str, tuple[str, str | None]], blob_kinds: dict[str, str]) -> dict:
    """``{"kinds": {kind: [objects, bytes on disk, deltas]}, "idx": bytes}`` of every
    object in the repository (``bench_growth.where``, with kinds of this study)."""

    def kind_of(oid: str, typ: str, ref: str, name: str | None) -> str:
        if ref == "unreachable":
            return f"unreachable {typ}"
        if ref != "refs/prov/ledger":
            return f"{ref.rsplit('/', 1)[-1]} {typ}"
        if typ == "commit":
            return "ledger commit"
        if typ == "tree":
            return tree_kind(name)
        return blob_kinds.get(oid, "format blob" if name == "format" else f"other blob ({name})")

    return where(path, names, kind_of)


def _batch_tree_names(out: bytes, raw_len: int = 20) -> Iterator[bytes]:
    """The entry names of the trees in ``git cat-file --batch`` output."""
    at = 0
    while at < len(out):
        eol = out.index(b"\n", at)
        size = int(out[at:eol].split()[2])
        tree, at = out[eol + 1:eol + 1 + size], eol + 2 + size
        i = 0
        while i < len(tree):
            nul = tree.index(b"\0", i)
            yield tree[tree.index(b" ", i) + 1:nul]
            i = nul + 1 + raw_len


def listing_seconds(path: str, log: bool) -> dict:
    """What a cold index build reads before any run's blobs, git alone, on the
    repository as left (wall seconds, best of three): for a tip tree, every entry under
    it (``git ls-tree -r``, one process); for a log (J), the trees of every ledger commit
    (``git log --format=%T``) through one ``git cat-file --batch``. ``entries``: the
    run entries read (names other than ``format`` and J's ``runs``)."""
    env = dict(os.environ)
    best: float | None = None
    entries = 0
    for _ in range(3):
        t0 = time.perf_counter()
        if log:
            trees = subprocess.run(["git", "log", "--format=%T", "refs/prov/ledger"], cwd=path, env=env,
                                   check=True, capture_output=True).stdout
            out = subprocess.run(["git", "cat-file", "--batch"], cwd=path, env=env, input=trees, check=True,
                                 capture_output=True).stdout
            entries = sum(1 for name in _batch_tree_names(out) if name not in (b"format", b"runs"))
        else:
            out = subprocess.run(["git", "ls-tree", "-r", "-z", "refs/prov/ledger"], cwd=path, env=env,
                                 check=True, capture_output=True).stdout
            entries = out.count(b"\0") - 1
        seconds = time.perf_counter() - t0
        best = seconds if best is None else min(best, seconds)
    return {"seconds": best, "entries": entries}


def measure(path: str, base: dict, n: int, blob_kinds: dict[str, str], scratch: str, log: bool = False) -> dict:
    """The repository as prov leaves it and after ``git repack -adf`` (on a copy), with
    ``git fsck --strict`` on the copy first."""
    waited = settle(path)
    names = object_names(path)
    res = {"waited": waited, "left": stats(path), "left_kinds": breakdown(path, names, blob_kinds),
           "listing": listing_seconds(path, log)}
    copy = copy_repo(path, scratch)
    fsck = subprocess.run(["git", "fsck", "--strict", "--no-progress"], cwd=copy, capture_output=True, text=True)
    res["fsck"] = fsck.returncode == 0 and not fsck.stdout.strip() and "error" not in fsck.stderr.lower()
    res["fsck_text"] = (fsck.stdout + fsck.stderr).strip()[:500]
    t0 = time.perf_counter()
    h.git(copy, "repack", "-adf", "-q", env=dict(os.environ))
    res["repack_s"] = time.perf_counter() - t0
    res["repacked"] = stats(copy)
    res["repacked_kinds"] = breakdown(copy, names, blob_kinds)
    res["pull"] = first_pull_costs(copy)
    shutil.rmtree(copy, ignore_errors=True)
    res["base"], res["n"] = base, n
    return res


def first_pull_costs(path: str) -> dict:
    """What a first pull of the ledger would receive and read, from the repacked copy:
    the pack ``git pack-objects --revs`` sends for ``refs/prov/ledger`` (bytes, objects),
    the CPU seconds of ``git index-pack --strict`` on it (what ``git fetch`` does with
    it; best of three) and of ``store/packstream.scan_blobs`` over it (prov's reader of
    the same bytes; best of three)."""
    import io
    import resource

    from gitprov.store.packstream import scan_blobs

    pack = subprocess.run(["git", "pack-objects", "--revs", "--stdout", "-q"], cwd=path, check=True,
                          input=b"refs/prov/ledger\n", capture_output=True).stdout
    git_cpu, prov_cpu = [], []
    scratch = os.path.join(path, "pull-scratch.pack")
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(["git", "index-pack", "--strict", "--stdin", scratch], cwd=path, check=True, input=pack,
                       capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        git_cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        for leftover in (scratch, scratch[:-5] + ".idx"):
            if os.path.exists(leftover):
                os.remove(leftover)
        t0 = time.process_time()
        blobs = sum(1 for _ in scan_blobs(io.BytesIO(pack).read))
        prov_cpu.append(time.process_time() - t0)
    return {"bytes": len(pack), "objects": int.from_bytes(pack[8:12], "big"), "blobs": blobs,
            "index_pack_s": min(git_cpu), "scan_s": min(prov_cpu)}


def listing_table(results: dict[str, dict]) -> list[str]:
    rows = ["What a cold index build lists before reading any run's blobs, git alone, as left (wall seconds, best "
            "of three; a tip tree: `git ls-tree -r`; the log J: `git log --format=%T` and its trees through "
            "`git cat-file --batch`):", "",
            "| candidate | run entries listed | seconds |", "| --- | ---: | ---: |"]
    for label, res in results.items():
        listing = res.get("listing")
        if listing:
            rows.append(f"| {label} | {listing['entries']:,} | {listing['seconds']:.2f} |")
    return rows if len(rows) > 4 else []


def migration_rows(results: dict[str, dict]) -> list[str]:
    out = []
    for label, res in results.items():
        mig = res.get("migration")
        if mig:
            n = res["n"]
            out.append(f"The 3 -> 4 upgrade of {label} (to G), one transaction: {mig['seconds']:.1f} s; it adds "
                       f"{mig['left'] / n:,.0f} B a run to `.git` as left and {mig['repacked'] / n:,.0f} B a run after "
                       f"`git repack -adf` (history keeps format 3's trees); `git fsck --strict` "
                       f"{'ok' if mig['fsck'] else 'FAILED'}.")
    return out


def pull_table(results: dict[str, dict]) -> list[str]:
    rows = ["What a first pull would receive and read (the ledger's pack from the repacked copy; CPU seconds, best "
            "of three):", "",
            "| candidate | pack, bytes a run | objects a run | `git index-pack --strict`, CPU s | "
            "prov's pack reader (`scan_blobs`), CPU s |", "| --- | ---: | ---: | ---: | ---: |"]
    for label, res in results.items():
        pull, n = res.get("pull"), res["n"]
        if pull:
            rows.append(f"| {label} | {pull['bytes'] / n:,.0f} | {pull['objects'] / n:.2f} | "
                        f"{pull['index_pack_s']:.2f} | {pull['scan_s']:.2f} |")
    return rows if len(rows) > 4 else []


# -- report ------------------------------------------------------------------------------


def per_run(res: dict, stage: str, key: str = "git") -> float:
    return (res[stage][key] - res["base"][key]) / res["n"]


def moments(res: dict) -> str:
    """The median (min–max) of ``.git`` a run at the sampled moments, with a tenth of the
    runs written at least (before, one pack is most of it)."""
    values = [x for k, x in res.get("samples", []) if k >= res["n"] // 10]
    if not values:
        return ""
    return f"{statistics.median(values) / KIB:.2f} ({min(values) / KIB:.2f}–{max(values) / KIB:.2f})"


def objects_a_run(kinds: dict, n: int) -> float:
    return sum(c for kind, (c, _d, _x) in kinds["kinds"].items()
               if not kind.startswith(("unreachable", "HEAD", "prov "))) / n


def summary_table(results: dict[str, dict]) -> list[str]:
    rows = ["| candidate | objects a run | `.git` a run as left, KiB | as left at moments of the replay: median "
            "(min–max), KiB | of which reflogs, B | packs as left | after `git repack -adf`, KiB | "
            "`git fsck --strict` | runs/s (replay) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for label, res in results.items():
        rows.append(f"| {label} | {objects_a_run(res['left_kinds'], res['n']):.2f} | "
                    f"{per_run(res, 'left') / KIB:.2f} | {moments(res)} | {per_run(res, 'left', 'logs'):.0f} | "
                    f"{res['left']['packs']} | {per_run(res, 'repacked') / KIB:.2f} | "
                    f"{'ok' if res['fsck'] else 'FAILED'} | {res['rate']:.0f} |")
    return rows


def kinds_table(results: dict[str, dict]) -> list[str]:
    """Bytes a run by object kind: a column per candidate, as left / after repack."""
    n = next(iter(results.values()))["n"]
    order: dict[str, float] = {}
    for res in results.values():
        for stage in ("left_kinds", "repacked_kinds"):
            for kind, (_c, disk, _d) in res[stage]["kinds"].items():
                order[kind] = max(order.get(kind, 0.0), disk / res["n"])
    shown = [k for k in sorted(order, key=lambda k: -order[k]) if order[k] >= 1]
    labels = list(results)
    rows = [f"Bytes a run by object kind at {n:,} runs (objects a run · bytes a run as left / after "
            "`git repack -adf` · share stored as deltas as left):", "",
            "| object kind | " + " | ".join(labels) + " |", "| --- | " + " | ".join("---:" for _ in labels) + " |"]
    for kind in shown:
        cells = []
        for label in labels:
            res = results[label]
            c, disk, deltas = res["left_kinds"]["kinds"].get(kind, [0, 0, 0])
            _c2, disk2, _d2 = res["repacked_kinds"]["kinds"].get(kind, [0, 0, 0])
            cells.append(f"{c / res['n']:.2f} · {disk / res['n']:,.0f} / {disk2 / res['n']:,.0f} B · "
                         f"{100 * deltas / c:.0f}%" if c else "")
        rows.append(f"| {kind} | " + " | ".join(cells) + " |")
    rows.append("| pack `.idx` files | " + " | ".join(
        f"{results[lb]['left_kinds']['idx'] / results[lb]['n']:,.0f} / "
        f"{results[lb]['repacked_kinds']['idx'] / results[lb]['n']:,.0f} B" for lb in labels) + " |")
    rows.append("| reflogs (`logs/`) | " + " | ".join(f"{per_run(results[lb], 'left', 'logs'):,.0f} B"
                                                     for lb in labels) + " |")
    return rows


def report(args: argparse.Namespace, results: dict[str, dict], real_rate: float | None, minutes: float | None) -> str:
    cmd = f"python benchmarks/study_format4.py --runs {args.runs} --candidates {args.candidates}" + (
        f" --real {args.real}" if args.real != 10_000 else "") + (
        f" --samples {args.samples}" if args.samples != 10 else "") + (
        f" --writes {args.writes}" if args.writes != 1 else "") + (" --migrate" if args.migrate else "")
    lines = ["Reproduce:", "", "```bash", cmd, "```", "",
             f"Machine: {h.machine()}. Load average at the end: "
             + ", ".join(f"{x:.1f}" for x in os.getloadavg())
             + (f"; {minutes:.0f} min in all" if minutes is not None else "")
             + (f"; the real runs wrote {real_rate:.0f} runs/s" if real_rate is not None else "") + ".", "", *summary_table(results), "", *kinds_table(results), "",
             *pull_table(results), "", *listing_table(results), "", *migration_rows(results)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--real", type=int, default=10_000,
                   help="real runs at most; past them, runs are made from the real ones (synthesise)")
    p.add_argument("--candidates", default=",".join(CANDIDATES), help="of " + ", ".join(CANDIDATES))
    p.add_argument("--samples", type=int, default=10,
                   help="measure .git as left at this many moments of each candidate's replay (0: at the end only)")
    p.add_argument("--writes", type=int, default=1,
                   help="ledger writes a run: a run that flushes while it logs (flushes), the last with its end")
    p.add_argument("--migrate", action="store_true",
                   help="also measure the 3 -> 4 upgrade (to G) of candidate A's repository, as one transaction")
    p.add_argument("--root", help="work here (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the repositories")
    p.add_argument("--out", help="Markdown file whose study_format4 block is rewritten")
    p.add_argument("--report", metavar="RESULTS_JSON",
                   help="only print the report of the candidates measured so far (the results.json under --root)")
    args = p.parse_args(argv)
    if args.report:
        with open(args.report) as f:
            results = json.load(f)
        print(report(args, results, None, None))
        return 0
    chosen = [c.strip() for c in args.candidates.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CANDIDATES]
    if unknown:
        p.error(f"unknown candidates {unknown}; known: {', '.join(CANDIDATES)}")
    root = tempfile.mkdtemp(prefix="gitprov-study-format4-", dir=args.root)
    h.isolate(root)
    t0 = time.perf_counter()
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    results: dict[str, dict] = {}
    try:
        real = new_repo(os.path.join(root, "real"))
        base = stats(real)
        made = min(args.runs, args.real or args.runs)
        log(f"{made:,} real runs (format 3, the public API) ...")
        seconds = real_runs(real, made)
        real_rate = made / seconds
        runs = read_back(real)
        assert len(runs) == made, len(runs)
        real_trees = h.git(real, "log", "--reverse", "--format=%T", "refs/prov/ledger", env=dict(os.environ)).split()
        if made == args.runs:
            real_kinds = {}
            for run in runs:
                for data, kind in changes_for("A", run, EMPTY)[1].items():
                    real_kinds[SHA1.hash_object("blob", data)] = kind
            results["A (real)"] = measure(real, base, args.runs, real_kinds, os.path.join(root, "copy"))
            results["A (real)"]["rate"] = real_rate
            log(f"  {real_rate:.0f} runs/s; {per_run(results['A (real)'], 'left') / KIB:.2f} KiB a run as left")
        else:
            log(f"  {real_rate:.0f} runs/s; the other {args.runs - made:,} runs are made from them (synthesise)")
        shutil.rmtree(real, ignore_errors=True)
        for name in chosen:
            path = new_repo(os.path.join(root, f"cand-{name}"))
            base = stats(path)
            log(f"candidate {name} ({CANDIDATES[name]}) ...")
            samples: list = []
            seconds, kinds, trees = replay(name, path, synthesise(runs, args.runs),
                                           args.runs // args.samples if args.samples else 0, samples, args.writes)
            if name == "A" and made == args.runs and args.writes == 1 and trees != real_trees:
                same = sum(a == b for a, b in zip(trees, real_trees, strict=False))
                raise SystemExit(f"the replayed format 3 differs from the real runs' trees ({same} of "
                                 f"{len(real_trees)} ledger trees the same)")
            label = f"{name}: {CANDIDATES[name]}"
            results[label] = measure(path, base, args.runs, kinds, os.path.join(root, "copy"), log=name == "J")
            results[label]["rate"] = args.runs / seconds
            res = results[label]
            res["samples"] = [(k, (size - base["git"]) / k) for k, size in samples]
            log(f"  {args.runs / seconds:.0f} runs/s; {per_run(res, 'left') / KIB:.2f} KiB a run as left, "
                f"{per_run(res, 'repacked') / KIB:.2f} after repack -adf; fsck {'ok' if res['fsck'] else 'FAILED'}")
            if not res["fsck"]:
                log(res["fsck_text"])
            if not res["fsck"] or not res.get("migration", {}).get("fsck", True):
                log("  git fsck --strict FAILED")
            with open(os.path.join(root, "results.json"), "w") as f:  # what is measured so far
                json.dump(results, f)
            if name == "A" and args.migrate:
                log("  the 3 -> 4 upgrade of it, as one transaction ...")
                res["migration"] = migrate(path, synthesise(runs, args.runs), os.path.join(root, "copy"))
                mig = res["migration"]
                log(f"  {mig['seconds']:.1f} s; adds {mig['left'] / args.runs:,.0f} B a run as left, "
                    f"{mig['repacked'] / args.runs:,.0f} after repack -adf; fsck {'ok' if mig['fsck'] else 'FAILED'}")
            if not args.keep:
                shutil.rmtree(path, ignore_errors=True)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    text = report(args, results, real_rate, (time.perf_counter() - t0) / 60)
    print()
    print(text)
    if args.out:
        h.write_section(args.out, "study_format4", text)
    return 0 if all(r["fsck"] and r.get("migration", {}).get("fsck", True) for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
