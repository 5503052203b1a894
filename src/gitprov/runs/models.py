"""Models a run logs: Verta's ``log_model`` / ``get_model`` / ``download_model``.

The model is the run's artifact ``model`` (a file, a directory as a tree, bytes, or a
Python object pickled); what describes it is the attribute ``prov.model``::

    {"artifact": "model", "format": "pickle" | "file" | "directory" | "bytes",
     "framework": "sklearn", "signature": {...}, "requirements": ["scikit-learn==1.5.0"],
     "name": "classifier", "version": "3f2a…", "sha256": "…", "media_type": "…",
     "class": "sklearn.linear_model._logistic.LogisticRegression", "predict": true}

(``class`` and ``predict``, whether the object has a ``predict`` method, only for a
Python object: ``prov sync mlflow`` gives it MLflow's ``python_function`` flavor then.)

and the run's lineage gets the output model ``name@version`` (``prov lineage NAME``
shows it). ``name`` defaults to the run's name (else ``model``), ``version`` to the
first 12 characters of the run id; ``signature`` to the run's ``get_schema()``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..keys import check_json_value, check_label

if TYPE_CHECKING:
    from .run import Run

__all__ = ["MODEL_ATTRIBUTE", "MODEL_KEY", "log_model"]

MODEL_KEY = "model"
MODEL_ATTRIBUTE = "prov.model"
#: the framework named after the top-level package of the model's class
_FRAMEWORKS = {"sklearn": "sklearn", "torch": "pytorch", "xgboost": "xgboost", "lightgbm": "lightgbm",
               "tensorflow": "tensorflow", "keras": "keras", "catboost": "catboost", "statsmodels": "statsmodels",
               "transformers": "transformers", "onnx": "onnx"}


def _requirements(requirements: Any) -> list[str]:
    if requirements is None:
        return []
    if isinstance(requirements, (str, os.PathLike)) and os.path.isfile(requirements):
        with open(requirements, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
        return [line for line in lines if line and not line.startswith("#")]
    if isinstance(requirements, (list, tuple)) and all(isinstance(r, str) for r in requirements):
        return [r.strip() for r in requirements if r.strip()]
    raise UsageError("requirements must be a list of strings (\"scikit-learn==1.5.0\") or the path of a "
                     "requirements.txt file")


def _format(model: Any) -> str:
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if os.path.isdir(path):
            return "directory"
        if os.path.isfile(path):
            return "file"
        raise UsageError(f"model path {path!r} does not exist; pass a file, a directory or the model object")
    if isinstance(model, (bytes, bytearray, memoryview)):
        return "bytes"
    return "file" if hasattr(model, "read") else "pickle"


def log_model(run: Run, model: Any, framework: str | None, signature: Any, requirements: Any,
              name: str | None, version: str | None, overwrite: bool) -> dict[str, Any]:
    """Store ``model`` as the run's artifact ``model`` and describe it; see the module."""
    from ..nodes import lineage_label

    run._require_active("log a model")
    fmt = _format(model)
    if framework is None and fmt == "pickle":
        framework = _FRAMEWORKS.get(type(model).__module__.split(".")[0])
    if framework is not None:
        framework = check_label(framework, "model framework", required=True)
    signature = run.get_schema() if signature is None else signature
    check_json_value(signature, "model signature")
    info = {
        "artifact": MODEL_KEY, "format": fmt, "framework": framework, "signature": signature,
        "requirements": _requirements(requirements),
        "name": lineage_label(name if name is not None else (run.name or "model"), "model name"),
        "version": lineage_label(version if version is not None else run.id[:12], "model version"),
    }
    check_json_value(info["requirements"], "model requirements")
    if fmt == "pickle":
        info.update({"class": f"{type(model).__module__}.{type(model).__qualname__}",
                     "predict": callable(getattr(model, "predict", None))})
    ref = run.log_artifact(MODEL_KEY, model, overwrite=overwrite)
    info.update(sha256=ref.sha256, media_type=ref.media_type)
    run.log_attributes({MODEL_ATTRIBUTE: info}, overwrite=True)  # replacing the model was allowed above
    from .lineage import of

    of(run).with_output_model(info["name"], info["version"]).register()
    return info
