"""Dataset versions as MLflow dataset inputs (``log_inputs``): where each came from, as
MLflow's source types say it, and its digest cut to what MLflow's field holds."""

from __future__ import annotations

import json
import os
from typing import Any

from ..scrub import scrub_url

__all__ = ["MAX_DIGEST", "dataset_digest", "dataset_inputs", "dataset_source"]

MAX_DIGEST = 36


def dataset_inputs(datasets: list[Any], code: Any) -> list[Any]:
    """The ``DatasetInput`` of each prov dataset version (tagged ``mlflow.data.context``
    = ``prov``); ``code``: the run's code version, for the sources."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = []
    for d in datasets:
        source_type, source = dataset_source(d, code)
        profile = {"digest": d.digest, **({"size": d.size} if d.size is not None else {})}
        dataset = Dataset(name=d.key, digest=dataset_digest(d.digest), source_type=source_type,
                          source=json.dumps(source, sort_keys=True), profile=json.dumps(profile, sort_keys=True))
        inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "prov")]))
    return inputs


def dataset_source(dataset: Any, code: Any) -> tuple[str, dict[str, Any]]:
    """MLflow's source type and source of a prov dataset version: a path in the
    repository -> ``git`` (the run's remote URL, commit and the path) or, without a
    remote, ``local`` (the path and commit); an absolute path -> ``local``; a digest that
    is a URI (``s3://…``) -> its scheme; a bare digest -> ``git`` at the run's commit."""
    path, digest = dataset.path, dataset.digest
    repo = scrub_url(code.repo_url) if code.repo_url else None
    if path and not (os.path.isabs(path) or path.startswith("/")):
        if repo:
            return "git", {"uri": repo, "revision": code.commit, "path": path}
        return "local", {"uri": path, "revision": code.commit}
    if path:
        return "local", {"uri": path}
    scheme = digest.split("://", 1)[0] if "://" in digest else ""
    if scheme and scheme.isascii() and scheme.replace("+", "").replace("-", "").isalnum():
        return scheme.lower(), {"uri": scrub_url(digest)}
    if repo or code.commit:
        return "git", {"uri": repo or "", "revision": code.commit, "digest": digest}
    return "prov", {"digest": digest}


def dataset_digest(digest: str) -> str:
    """MLflow's dataset digest field takes at most 36 characters: the hash part, cut."""
    return digest.rsplit(":", 1)[-1][:MAX_DIGEST]
