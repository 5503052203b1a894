"""A small repository with the kinds of runs the web interface shows: a sweep over two
commits, one run with uncommitted changes, artifacts of each preview kind, datasets,
observations, stages, a parent with children, lineage, and a run whose name and tags
are HTML (the escaping check). Used by tests/test_ui.py, the screenshots in docs/img
and benchmarks/bench_ui.py.
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

__all__ = ["XSS_NAME", "build_sample", "git_env"]

XSS_NAME = "<script>alert(1)</script>"
XSS_TAG = '<img src=x onerror="document.title=\'pwned\'">'


def git_env(home: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Ada Lovelace", "GIT_AUTHOR_EMAIL": "ada@example.com",
                "GIT_COMMITTER_NAME": "Ada Lovelace", "GIT_COMMITTER_EMAIL": "ada@example.com"})
    if home:
        env["HOME"] = home
    return env


def _git(path: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=path, env=git_env(), check=True, capture_output=True,
                          text=True).stdout


def _png(width: int = 48, height: int = 48) -> bytes:
    import struct
    import zlib

    raw = b"".join(b"\x00" + b"".join(bytes(((x * 5) % 256, (y * 5) % 256, 160)) for x in range(width))
                   for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def build_sample(path: str | os.PathLike[str], points: int = 200) -> dict[str, str]:
    """Build the sample repository at ``path``; returns the ids of its notable runs."""
    import gitprov

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("lr = 0.01\nepochs = 10\n\ndef train():\n    return lr * epochs\n")
    _git(root, "add", "train.py")
    _git(root, "commit", "-q", "-m", "First model: a linear baseline")
    gitprov.init(str(root), hooks=False)
    repo = gitprov.Repository(str(root))
    repo.capture("HEAD")
    ids: dict[str, str] = {}

    def curve(run, lr: float, seed: int) -> None:
        for step in range(points):
            loss = 2.0 * math.exp(-lr * 30 * step / points) + 0.05 * math.sin(step / 7 + seed) + 0.1
            run.log_metrics({"loss": loss, "accuracy": 1 - loss / 2.5}, step=step)

    with repo.start_run("baseline", "mnist", params={"lr": 0.01, "epochs": 10, "optimizer": "sgd"}) as run:
        curve(run, 0.01, 0)
        run.log_artifact("confusion.png", _png(), media_type="image/png")
        run.log_artifact("predictions.csv", b"id,label,score\n1,cat,0.91\n2,dog,0.78\n3,<b>bird</b>,0.55\n",
                         media_type="text/csv")
        run.log_artifact("config.json", b'{"layers": [64, 32], "dropout": 0.1}', media_type="application/json")
        run.log_artifact("weights.bin", os.urandom(2048))
        run.log_dataset_version("train", "sha256:" + "ab" * 32)
        run.log_observation("sample", {"input": "a cat", "prediction": "cat"})
        run.log_observation("sample", {"input": "a dog", "prediction": "cat"})
        run.log_tags({"team": "vision", "stage": "baseline"})
        run.log_attributes({"gpu": "none", "notes": "first try"})
        with run.stage("featurize", params={"bins": 16}):
            pass
        gitprov.lineage.of(run).with_input_dataset("mnist", "sha256:" + "cd" * 32).with_output_model("classifier", "1").register()
        ids["baseline"] = run.id

    (root / "train.py").write_text("lr = 0.03\nepochs = 20\n\ndef train():\n    return lr * epochs * 2\n")
    _git(root, "commit", "-q", "-am", "Sweep the learning rate")
    repo.capture("HEAD")
    with repo.start_run("sweep", "mnist-sweep", params={"sweep": True}) as parent:
        ids["parent"] = parent.id
        for i, lr in enumerate((0.003, 0.01, 0.03, 0.1)):
            with repo.start_run(f"lr={lr}", "mnist-sweep", params={"lr": lr, "epochs": 20, "batch": 32 * (i + 1)},
                                parent=parent.id) as child:
                curve(child, lr, i)
                gitprov.lineage.of(child).with_input_model("classifier", "1").with_output_model("classifier", str(i + 2)).register()
                ids[f"child{i}"] = child.id
    (root / "train.py").write_text("lr = 0.03\nepochs = 20\n# try a warmup\nwarmup = 5\n\ndef train():\n    return lr * epochs * 2\n")
    with repo.start_run("warmup (uncommitted)", "mnist-sweep", params={"lr": 0.03, "epochs": 20, "warmup": 5}) as run:
        curve(run, 0.05, 3)
        ids["dirty"] = run.id
    _git(root, "checkout", "-q", "--", "train.py")
    with repo.start_run(XSS_NAME, "mnist", params={"lr": 0.5, "note": XSS_TAG}) as run:
        run.log_metric("loss", 1.0, step=0)
        run.log_tag("html", XSS_TAG)
        run.log_artifact("page.txt", XSS_TAG.encode(), media_type="text/plain")
        ids["xss"] = run.id
    with repo.start_run("diverged", "mnist", params={"lr": 1.0, "epochs": 10}) as run:
        run.log_metrics({"loss": 1.0}, step=0)
        run.log_metrics({"loss": float("nan")}, step=1)
        run.end("failed", 1)
        ids["failed"] = run.id
    return ids
