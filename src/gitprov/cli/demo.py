"""``prov demo``: a throwaway repository that shows git-prov end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable

__all__ = ["run_demo"]

_TRAIN = '''"""A tiny training script for the git-prov demo."""
import gitprov

with gitprov.start_run(name="train", experiment="demo") as run:
    run.log_hyperparameters({"lr": 0.1, "epochs": 3})
    for step in range(3):
        run.log_metric("loss", 1.0 / (step + 1), step=step)
'''


def _git(cwd: str, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="Demo User", GIT_AUTHOR_EMAIL="demo@example.com",
               GIT_COMMITTER_NAME="Demo User", GIT_COMMITTER_EMAIL="demo@example.com")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def run_demo(keep: bool = False, echo: Callable[[str], None] = print) -> str:
    """Run the demo; returns the repository path (removed unless ``keep``)."""
    from ..api import Repository, init
    from .render import render_show

    root = tempfile.mkdtemp(prefix="prov-demo-")
    try:
        echo(f"$ git init {root}")
        _git(root, "init", "-q", "-b", "main")
        echo("$ prov init")
        result = init(root)
        echo(f"  lexicon {result.lexicon}, ledger refs/prov/ledger")
        os.makedirs(os.path.join(root, "data"))
        files = {
            "train.py": _TRAIN,
            "requirements.txt": "numpy>=1.26\n",
            "data/train.csv": "x,y\n1,2\n3,4\n",
            ".provenance.toml": '[inputs]\npaths = ["data/*.csv"]\n',
        }
        for name, text in files.items():
            with open(os.path.join(root, name), "w", encoding="utf-8") as f:
                f.write(text)
        echo("$ git add . && git commit -m 'Add training script and data'")
        _git(root, "add", ".")
        _git(root, "commit", "-q", "-m", "Add training script and data")
        repo = Repository(root)
        captured = repo.capture("HEAD", trigger="cli")
        echo("$ prov capture" + ("" if captured.created else "   (the post-commit hook already did)"))
        echo("$ prov show HEAD")
        echo(render_show(repo.show("HEAD")))
        echo("$ git notes --ref=prov show HEAD   # plain git reads the same record")
        echo(_git(root, "notes", "--ref=prov", "show", "HEAD").rstrip()[:300] + " …")
        verdict = repo.verify()
        echo(f"$ prov verify\n  {'ok' if verdict.ok else 'problems: ' + '; '.join(verdict.problems)}")
        if keep:
            echo(f"demo repository kept at {root}")
        return root
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
