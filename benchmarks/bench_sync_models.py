"""Models through sync: ``prov sync mlflow`` of runs that logged a scikit-learn model
(each arriving as a loadable MLflow model), against MLflow's own
``mlflow.sklearn.log_model`` of the same estimator (issue 17).

    python benchmarks/bench_sync_models.py [--runs 20] [--repeat 3] [--workers 4]
                                           [--out docs/performance.md]

Setup (untimed): a repository with ``--runs`` ended runs, each with a logged schema and
``run.log_model(clf, requirements=[scikit-learn==…], name="clf", version=i)`` of one
fitted ``LogisticRegression``; an empty MLflow sqlite store migrated once and copied
fresh for every repetition; mlflow and sklearn imported before any timing.

Measures, in this one process, medians of ``--repeat``:

(a) ``sync_mlflow`` of every run to a fresh store (``--workers``): run, logged model,
    ``MLmodel`` and environment files, the model's bytes;
(a') the same with ``register_models=True`` (a registry version and alias per model);
(b) MLflow's own: per run ``start_run``, ``mlflow.sklearn.log_model(clf, name="clf",
    serialization_format="pickle", pip_requirements=[…], signature=…)``, ``end_run``,
    one after another (MLflow's fluent API is one active run per thread);
(c) ``mlflow.pyfunc.load_model`` of a synced model and of an MLflow-logged one (median of 5).

Not a test: nothing asserts a time. ``--out`` rewrites only the ``bench_sync_models`` block.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from importlib import metadata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h  # noqa: E402
from bench_sync import fresh_db, migrated_store  # noqa: E402

REPRODUCE = "python benchmarks/bench_sync_models.py --out docs/performance.md"


def estimator():
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 4))
    return LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int)), x


def make_repository(root: str, runs: int, clf, pinned: str) -> str:
    import gitprov

    path = os.path.join(root, "repo")
    h.git(root, "init", "-q", path, env=dict(os.environ))
    h.git(path, "commit", "-q", "--allow-empty", "-m", "start", env=dict(os.environ))
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    for i in range(runs):
        with repo.start_run(f"train-{i}", "bench", {"C": 1.0}, code=False, environment=False) as run:
            run.log_schema({f"x{j}": "float" for j in range(4)}, {"y": "int"})
            run.log_model(clf, requirements=[pinned], name="clf", version=str(i))
    return path


def timed_sync(repo_path: str, uri: str, workers: int, artifacts: str, register: bool) -> float:
    import gitprov
    from gitprov.sync import sync_mlflow

    shutil.rmtree(os.path.join(repo_path, ".git", "prov", "sync"), ignore_errors=True)
    t0 = time.perf_counter()
    report = sync_mlflow(gitprov.Repository(repo_path), uri, workers=workers, artifact_location=artifacts,
                         register_models=register)
    seconds = time.perf_counter() - t0
    assert not report.failed, [r.error for r in report.failed]
    return seconds


def timed_mlflow(uri: str, runs: int, clf, x, pinned: str, artifacts: str) -> float:
    import mlflow
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("bench", artifact_location=artifacts)
    signature = infer_signature(x, clf.predict(x))
    t0 = time.perf_counter()
    for i in range(runs):
        with mlflow.start_run(experiment_id=experiment, run_name=f"train-{i}"):
            mlflow.sklearn.log_model(clf, name="clf", serialization_format="pickle", pip_requirements=[pinned],
                                     signature=signature)
    return time.perf_counter() - t0


def timed_load(uri: str) -> float | None:
    """Median seconds to load a logged model, over up to five (a first load warms the
    loader's imports); None when MLflow cannot load it (a git-prov before loadable models)."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    c = MlflowClient(uri)
    first, *rest = c.search_logged_models([e.experiment_id for e in c.search_experiments()], max_results=6)
    try:
        mlflow.pyfunc.load_model(f"models:/{first.model_id}")
    except Exception:  # noqa: BLE001 - no MLmodel
        return None
    times = []
    for model in rest:
        t0 = time.perf_counter()
        mlflow.pyfunc.load_model(f"models:/{model.model_id}")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _ms(seconds: float | None) -> str:
    return "not loadable" if seconds is None else f"{1000 * seconds:.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--out", help="markdown file whose bench_sync_models block is rewritten")
    args = ap.parse_args(argv)
    if min(args.runs - 5, args.repeat, args.workers) < 1:
        ap.error("--runs must be at least 6, --repeat and --workers positive")
    root = tempfile.mkdtemp(prefix="gitprov-bench-models-")
    h.isolate(root, MLFLOW_ENABLE_ASYNC_LOGGING="false", MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
              MLFLOW_LOGGING_LEVEL="ERROR")
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    try:
        import logging

        import sklearn

        logging.getLogger("mlflow").setLevel(logging.ERROR)
        import mlflow.pyfunc
        import mlflow.sklearn  # noqa: F401 - imported before timing, for both sides

        clf, x = estimator()
        pinned = f"scikit-learn=={sklearn.__version__}"
        repo_path = make_repository(root, args.runs, clf, pinned)
        template = migrated_store(root)
        times: dict[str, list[float]] = {"sync": [], "sync_register": [], "mlflow": []}
        loads: dict[str, float] = {}
        for i in range(args.repeat):
            for name, register in (("sync", False), ("sync_register", True)):
                db = fresh_db(template, root, f"{name}-{i}")
                times[name].append(timed_sync(repo_path, f"sqlite:///{db}", args.workers,
                                              os.path.join(root, f"{name}-{i}-art"), register))
                loads.setdefault(name, timed_load(f"sqlite:///{db}"))
            db = fresh_db(template, root, f"mlflow-{i}")
            times["mlflow"].append(timed_mlflow(f"sqlite:///{db}", args.runs, clf, x, pinned,
                                                os.path.join(root, f"mlflow-{i}-art")))
            loads.setdefault("mlflow", timed_load(f"sqlite:///{db}"))
            log(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
        med = {k: statistics.median(v) for k, v in times.items()}
        per = {k: 1000 * v / args.runs for k, v in med.items()}
        packages = ", ".join(f"{p} {metadata.version(p)}" for p in ("git-prov", "mlflow", "scikit-learn"))
        rounds = "; ".join(f"{k}: " + ", ".join(f"{s:.2f}" for s in v) for k, v in times.items())
        text = "\n".join([
            "## Models through sync",
            "",
            f"Machine: {h.machine()}. Packages: {packages}.",
            "",
            f"{args.runs} ended runs, each with a `LogisticRegression` logged by `run.log_model` (schema and "
            f"requirements given), synced with `--workers {args.workers}` into a fresh MLflow sqlite store, where "
            "each arrives as a loadable MLflow model (`MLmodel`, environment files, `model.pkl`); against MLflow's "
            "own `mlflow.sklearn.log_model` of the same estimator, one run each. Reproduce, with the `mlflow` "
            "extra and scikit-learn installed:",
            "",
            "```bash",
            REPRODUCE,
            "```",
            "",
            "| measure | total, s (median) | per model, ms |",
            "| --- | ---: | ---: |",
            f"| (a) `prov sync mlflow`: run + logged model + MLmodel | {med['sync']:.2f} | {per['sync']:.0f} |",
            f"| (a') the same with `--register-models` | {med['sync_register']:.2f} | {per['sync_register']:.0f} |",
            f"| (b) MLflow's `start_run` + `mlflow.sklearn.log_model` + `end_run` | {med['mlflow']:.2f} | "
            f"{per['mlflow']:.0f} |",
            f"| ratio (b) / (a) | {med['mlflow'] / med['sync']:.1f}× | |",
            "| (c) `mlflow.pyfunc.load_model` of a model, median of 5: synced / MLflow-logged, ms | "
            f"{_ms(loads['sync'])} / {_ms(loads['mlflow'])} | |",
            "",
            f"- Every round, s — {rounds}. The machine is shared; single rounds vary.",
            "- (a) includes reading each run from the ledger and, per model, building the `MLmodel` with MLflow's "
            "`Model` API from the stored pickle (never unpickled); (b) pickles the estimator and writes the same files. "
            "(b) runs sequentially: MLflow's fluent API has one active run per thread.",
        ])
        print(text)
        if args.out:
            h.write_section(args.out, "bench_sync_models", text)
            log(f"wrote the bench_sync_models block of {args.out}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
