"""A synthetic ledger of N runs, written with ``git fast-import`` in one commit.

Every run is what git-prov itself stores (``docs/design/data-model.md``): a
``RunRecord`` and a ``RunState`` encoded by ``gitprov.codec`` from ``gitprov.model``
structs, under ``runs/<id[:2]>/<id>/`` where the id is the git blob id of the record
bytes in the repository's own hash (SHA-1 or SHA-256), plus the ledger's ``format``
marker. Runs carry hyperparameters, summary metrics, tags, an attribute, a dataset
version, lineage (a base model, two recent runs' ``model.pt`` artifacts, an output
model version) and, for a fraction of them, one metric chunk per metric.

Deterministic: run ``i`` depends only on ``(seed, i)`` (and the code commit it pins,
the repository's HEAD by default), so ``build_ledger(repo, n)`` followed by
``append_runs(repo, m)`` stores the same runs as ``build_ledger(repo, n + m)``, in
two ledger commits instead of one. The ids, the tree and even the commit ids are
reproducible.

    from synthetic_ledger import build_ledger, append_runs, init_repository
    init_repository(path, "sha256")
    build_ledger(path, 100_000, seed=0)         # one ledger commit
    append_runs(path, 1_000, seed=0)            # a second one on top (runs 100,000..100,999)

CLI: ``python benchmarks/synthetic_ledger.py PATH --runs 100000 [--append 1000]``.
Runs are listed under their commit (``commits/…``) as git-prov does; nothing is written
to ``refs/notes/prov`` (a real first run at a commit adds its ``runs`` line), and artifacts are external URIs, so no
artifact content is stored.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gitprov import codec
from gitprov._util.clock import utc_timestamp
from gitprov.model import (
    ArtifactRef,
    CodeVersion,
    DatasetVersion,
    Environment,
    Lineage,
    MetricSummary,
    RunRecord,
    RunState,
    SchemaPin,
)
from gitprov.runs.series import encode_metric_chunk
from gitprov.schema import current_pin
from gitprov.store.ledger import LEDGER_FORMAT, LEDGER_REF, run_link_path
from gitprov.store.objects import ObjectFormat, format_named

__all__ = ["LedgerBuild", "append_runs", "build_ledger", "init_repository", "run_id_of", "synthetic_run"]

#: creation time of run 0; run i starts ~37 s after run i-1 (reproducible ids)
EPOCH = 1_700_000_000
SPACING = 37
#: the ledger format marker, exactly as ``prov init`` writes it
FORMAT_BLOB = LEDGER_FORMAT
IDENTITY = b"git-prov <git-prov@localhost>"
#: how many earlier runs' artifacts a run consumes, chosen among the last WINDOW runs
INPUT_RUNS = 2
WINDOW = 20

_ENVIRONMENT = Environment(
    python_implementation="cpython", python_version="3.11.7", platform="linux", machine="x86_64",
    distributions_digest="sha256:" + "5e" * 32, distributions_count=142,
)
_MODELS = ("resnet18", "resnet50", "vit-b16", "bert-base", "gpt2-small")
_OPTIMIZERS = ("adam", "adamw", "sgd", "lamb")
_TEAMS = ("vision", "nlp", "platform", "research")
_STAGES = ("dev", "staging", "prod")
_METRICS = ("acc", "f1", "loss", "val_loss")


@dataclass
class LedgerBuild:
    """What one ``build_ledger`` / ``append_runs`` call wrote."""

    tip: str
    start: int
    run_ids: list[str]
    seconds: float

    @property
    def count(self) -> int:
        return len(self.run_ids)


class _Generator:
    """Run ``i`` of a seed, as record and state bytes (records cached by index)."""

    def __init__(self, fmt: ObjectFormat, seed: int, commit: str | None, lineage: bool,
                 series_fraction: float) -> None:
        self.fmt = fmt
        self.seed = seed
        self.commit = commit
        self.lineage = lineage
        self.series_fraction = series_fraction
        self.pin: SchemaPin = current_pin()
        self._ids: dict[int, str] = {}

    def record(self, i: int) -> tuple[RunRecord, bytes, str]:
        rng = random.Random(f"{self.seed}/record/{i}")
        model = rng.choice(_MODELS)
        params = {
            "lr": round(10 ** rng.uniform(-5, -1), 8),
            "batch_size": rng.choice((16, 32, 64, 128, 256)),
            "optimizer": rng.choice(_OPTIMIZERS),
            "epochs": rng.randint(1, 50),
            "dropout": round(rng.uniform(0, 0.5), 3),
            "weight_decay": round(10 ** rng.uniform(-6, -2), 9),
            "model": model,
            "seed": rng.randrange(2**31),
        }
        record = RunRecord(
            created=utc_timestamp(EPOCH + i * SPACING + rng.random()),
            nonce=f"{rng.getrandbits(64):016x}",
            name=f"run-{i:06d}",
            experiment=_experiment(i),
            code=CodeVersion(commit=self.commit, exec_path="train.py"),
            params=params,
            environment=_ENVIRONMENT,
            command=["python", "train.py", f"--lr={params['lr']}", f"--model={model}"],
            schema=self.pin,
        )
        data = codec.encode(record)
        run_id = self.fmt.hash_object("blob", data)
        self._ids[i] = run_id
        return record, data, run_id

    def run_id(self, i: int) -> str:
        if i not in self._ids:
            self.record(i)
        return self._ids[i]

    def state(self, i: int, record: RunRecord, run_id: str) -> tuple[bytes, dict[str, bytes]]:
        """The state bytes and the run's other files (path in the run directory -> bytes)."""
        rng = random.Random(f"{self.seed}/state/{i}")
        p = record.params
        # accuracy peaks around lr 1e-3: a filter on lr and acc has a realistic selectivity
        acc = max(0.0, min(1.0, 0.93 - 0.06 * abs(math.log10(p["lr"]) + 3) + rng.gauss(0, 0.03)))
        loss = round(max(0.01, (1 - acc) * 2.5 + rng.gauss(0, 0.05)), 6)
        values = {"acc": round(acc, 6), "f1": round(max(0.0, acc - rng.uniform(0, 0.05)), 6),
                  "loss": loss, "val_loss": round(loss * rng.uniform(1.0, 1.3), 6)}
        duration = rng.uniform(60, 7200)
        start = EPOCH + i * SPACING
        last_ms = int((start + duration) * 1000)
        steps = p["epochs"] * 100
        roll = rng.random()
        status, exit_code = (("finished", 0) if roll < 0.90 else ("failed", 1) if roll < 0.95
                             else ("killed", -9) if roll < 0.98 else ("running", None))
        writer = f"{rng.getrandbits(32):08x}"
        files: dict[str, bytes] = {}
        if rng.random() < self.series_fraction:  # one chunk per metric, 200 points each
            for key, final in values.items():
                pts = 200
                step_list = [steps * (k + 1) // pts for k in range(pts)]
                stamps = [int((start + duration * (k + 1) / pts) * 1000) for k in range(pts)]
                vals = [final * (1 + 0.5 * (pts - k - 1) / pts) for k in range(pts - 1)] + [final]
                files[f"series/{key}/{writer}-00000000"] = encode_metric_chunk(step_list, stamps, vals)
        digest = rng.randrange(20)
        datasets = {"input/data/train.parquet": DatasetVersion(
            key="input/data/train.parquet", digest=f"sha256:{digest:064x}", path="data/train.parquet",
            size=1_000_000 + digest)}
        lineage = Lineage()
        if self.lineage:
            inputs: dict[str, list[str]] = {f"model:{p['model']}": [f"v{rng.randint(1, 3)}"]}
            for j in sorted({rng.randint(max(0, i - WINDOW), i - 1) for _ in range(INPUT_RUNS)} if i else ()):
                inputs[f"run:{self.run_id(j)}"] = ["model.pt"]
            lineage = Lineage(inputs=inputs, outputs={f"model:clf-{record.experiment}": [str(i)]})
        state = RunState(
            lamport=rng.randint(2, 6), writer=writer, name=record.name, experiment=record.experiment,
            status=status, updated=utc_timestamp(start + duration),
            ended=None if status == "running" else utc_timestamp(start + duration), exit_code=exit_code,
            tags={"team": rng.choice(_TEAMS), "stage": rng.choice(_STAGES), "dataset": "imagenet-1k"},
            attributes={"prov.duration_seconds": round(duration, 3)},
            params={"early_stop_epoch": rng.randint(1, p["epochs"])} if rng.random() < 0.3 else {},
            metrics={k: MetricSummary(value=v, step=steps, timestamp=last_ms) for k, v in values.items()},
            datasets=datasets,
            artifacts={"model.pt": ArtifactRef(key="model.pt", sha256=f"{rng.getrandbits(256):064x}",
                                               size=rng.randrange(10**6, 10**8),
                                               location=f"s3://synthetic-bench/{run_id}/model.pt")},
            lineage=lineage,
        )
        return codec.encode(state), files


def _experiment(i: int) -> str:
    return f"sweep-{(i // 500) % 40:02d}"


# -- git ---------------------------------------------------------------------------


def _git(repo: str, *args: str, input: bytes | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", repo, *args], input=input, capture_output=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode().strip() if proc.returncode == 0 else ""


def object_format(repo: str) -> ObjectFormat:
    return format_named(_git(repo, "rev-parse", "--show-object-format") or "sha1")


def init_repository(path: str, object_format_name: str = "sha1") -> str:
    """A new repository at ``path`` with one commit (``train.py``) for runs to pin;
    returns that commit's id (the same for the same object format)."""
    subprocess.run(["git", "init", "-q", f"--object-format={object_format_name}", "-b", "main", path],
                   check=True, capture_output=True)
    text = b"print('train')\n"
    stream = (b"commit refs/heads/main\ncommitter %s %d +0000\ndata 14\nsynthetic base\n"
              b"M 100644 inline train.py\ndata %d\n%s\n" % (IDENTITY, EPOCH - 60, len(text), text))
    _git(path, "fast-import", "--quiet", input=stream)
    _git(path, "reset", "-q", "--hard", "main")
    return _git(path, "rev-parse", "HEAD")


def _head(repo: str) -> str | None:
    return _git(repo, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False) or None


def _tip(repo: str, ref: str) -> str | None:
    return _git(repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False) or None


def _count_runs(repo: str, tip: str) -> int:
    listing = _git(repo, "ls-tree", "-d", "-r", "--name-only", f"{tip}:runs")
    return sum(1 for line in listing.splitlines() if "/" in line and line.count("/") == 1)


def _blob(path: str, data: bytes) -> bytes:
    return b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data)


def _write(repo: str, start: int, count: int, *, seed: int, parent: str | None, ref: str,
           commit: str | None, lineage: bool, series_fraction: float) -> LedgerBuild:
    t0 = time.perf_counter()
    gen = _Generator(object_format(repo), seed, commit, lineage, series_fraction)
    last = start + count - 1
    message = f"prov: synthetic runs {start}..{last} (seed {seed})\n".encode()
    when = EPOCH + (last + 1) * SPACING
    proc = subprocess.Popen(["git", "-C", repo, "fast-import", "--quiet", "--done"],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    out = [b"commit %s\ncommitter %s %d +0000\ndata %d\n%s" % (ref.encode(), IDENTITY, when, len(message), message)]
    if parent:
        out.append(b"from %s\n" % parent.encode())
    out.append(_blob("format", FORMAT_BLOB))
    ids = []
    try:
        for i in range(start, start + count):
            record, data, run_id = gen.record(i)
            state, files = gen.state(i, record, run_id)
            base = f"runs/{run_id[:2]}/{run_id}/"
            out.append(_blob(base + "record", data))
            if record.code.commit:  # listed under its commit (the same blob: git stores it once)
                out.append(_blob(run_link_path(record.code.commit, run_id), data))
            out.append(_blob(base + "state", state))
            out.extend(_blob(base + name, blob) for name, blob in files.items())
            ids.append(run_id)
            if len(out) >= 3000:
                proc.stdin.write(b"".join(out))
                out.clear()
        out.append(b"\ndone\n")
        proc.stdin.write(b"".join(out))
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read() if proc.stderr else b""
    if proc.wait() != 0:
        raise RuntimeError(f"git fast-import failed: {err.decode(errors='replace')}")
    tip = _tip(repo, ref)
    assert tip is not None
    return LedgerBuild(tip, start, ids, time.perf_counter() - t0)


def build_ledger(repo: str, n: int, *, seed: int = 0, start: int = 0, commit: str | None = "HEAD",
                 lineage: bool = True, series_fraction: float = 0.01, ref: str = LEDGER_REF) -> LedgerBuild:
    """Write runs ``start .. start+n-1`` as the first commit of ``ref`` (which must not
    exist yet). ``commit``: what the runs pin as their code (``"HEAD"``: the
    repository's HEAD, ``None`` when it has none)."""
    if _tip(repo, ref) is not None:
        raise ValueError(f"{ref} already exists in {repo}; use append_runs")
    return _write(repo, start, n, seed=seed, parent=None, ref=ref, commit=_code_commit(repo, commit),
                  lineage=lineage, series_fraction=series_fraction)


def append_runs(repo: str, m: int, *, seed: int = 0, start: int | None = None, commit: str | None = "HEAD",
                lineage: bool = True, series_fraction: float = 0.01, ref: str = LEDGER_REF) -> LedgerBuild:
    """Write runs ``start .. start+m-1`` as one new commit on top of ``ref``'s tip.
    ``start`` defaults to the number of runs already in the ledger, so repeated calls
    continue the sequence ``build_ledger`` began (with the same ``seed`` and ``commit``,
    a run's lineage to earlier runs resolves; otherwise it dangles)."""
    parent = _tip(repo, ref)
    if parent is None:
        raise ValueError(f"{ref} does not exist in {repo}; use build_ledger")
    if start is None:
        start = _count_runs(repo, parent)
    return _write(repo, start, m, seed=seed, parent=parent, ref=ref, commit=_code_commit(repo, commit),
                  lineage=lineage, series_fraction=series_fraction)


def run_id_of(repo: str, i: int, *, seed: int = 0, commit: str | None = "HEAD") -> str:
    """The id run ``i`` gets in ``repo`` (without writing anything)."""
    return _Generator(object_format(repo), seed, _code_commit(repo, commit), True, 0.0).run_id(i)


def synthetic_run(i: int, *, seed: int = 0, object_format_name: str = "sha1",
                  commit: str | None = None) -> tuple[str, RunRecord, RunState]:
    """Run ``i`` as ``(id, record, state)``, without a repository (e.g. to load the same
    runs into another tracker)."""
    gen = _Generator(format_named(object_format_name), seed, commit, True, 0.0)
    record, _, run_id = gen.record(i)
    return run_id, record, codec.decode(gen.state(i, record, run_id)[0], RunState)


def _code_commit(repo: str, commit: str | None) -> str | None:
    if commit is None:
        return None
    if commit == "HEAD":
        return _head(repo)
    return commit


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="repository (created, with one commit, when it does not exist)")
    parser.add_argument("--runs", type=int, default=0, help="runs in a new ledger (build_ledger)")
    parser.add_argument("--append", type=int, default=0, help="runs added as one more ledger commit (append_runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--object-format", choices=("sha1", "sha256"), default="sha1",
                        help="for a new repository")
    parser.add_argument("--series-fraction", type=float, default=0.01,
                        help="share of runs with one metric chunk per metric (default 0.01)")
    parser.add_argument("--no-lineage", action="store_true")
    args = parser.parse_args(argv)
    if not os.path.exists(args.path):
        init_repository(args.path, args.object_format)
    opts = {"seed": args.seed, "lineage": not args.no_lineage, "series_fraction": args.series_fraction}
    if args.runs:
        built = build_ledger(args.path, args.runs, **opts)
        print(f"{built.count} runs in {built.seconds:.1f} s; {LEDGER_REF} at {built.tip}")
    if args.append:
        built = append_runs(args.path, args.append, **opts)
        print(f"{built.count} runs appended (from run {built.start}) in {built.seconds:.1f} s; "
              f"{LEDGER_REF} at {built.tip}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
