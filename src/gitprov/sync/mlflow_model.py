"""A model a run logged (``run.log_model``) as an MLflow model directory.

The directory is what MLflow's own ``log_model`` lays out: an ``MLmodel`` file made with
MLflow's ``Model`` API (flavors, signature, metadata), ``requirements.txt``,
``conda.yaml`` and ``python_env.yaml``, and the model's files. Flavors:

- a pickle (an object git-prov pickled, or a file or bytes that are a pickle stream,
  cloudpickle's too) whose framework is ``sklearn``: the ``sklearn`` and
  ``python_function`` flavors, the pickle as ``model.pkl`` (``serialization_format:
  pickle`` or ``cloudpickle``), exactly as ``mlflow.sklearn.log_model`` writes them;
- any other pickle: ``python_function`` with the loader ``code/prov_pickled_model.py``
  (shipped in the model, so loading needs no git-prov), which calls the object's ``predict``;
- anything else (a directory, a file that is no pickle): the ``MLmodel`` with signature
  and environment but no flavor, the files under ``model``; MLflow can download it but
  not load it (``mlflow.pyfunc.load_model`` says the flavor is missing).

The model's bytes are the stored ones (same sha256 as git-prov's record): nothing is
unpickled at sync time, so syncing runs no model code and needs no framework installed.
Python version, ``pip``/``setuptools``/``wheel`` and the framework's version come from
the run's own environment (``record.environment``, ``record.packages``), not the
syncing machine's.
"""

from __future__ import annotations

import json
import os
import pickletools
import shutil
import uuid
from datetime import datetime, timezone
from typing import Any

from ..runs.artifacts import DIRECTORY_TYPE, safe_file_name

__all__ = ["MODEL_LAYOUT", "is_pickle", "mlflow_signature", "write_mlflow_model"]

#: the version of this layout: a model synced with an older one is written again.
MODEL_LAYOUT = 2
PICKLED_MODEL = "model.pkl"
LOADER_MODULE = "prov_pickled_model"
#: the distribution that carries a framework (for its version and default requirement)
FRAMEWORK_PACKAGES = {"sklearn": "scikit-learn", "xgboost": "xgboost", "lightgbm": "lightgbm", "pytorch": "torch",
                      "tensorflow": "tensorflow", "keras": "keras", "catboost": "catboost",
                      "statsmodels": "statsmodels", "transformers": "transformers", "onnx": "onnx"}
#: type names people write in a schema -> MLflow's column types (a Python float is 64 bits)
_TYPES = {"float": "double", "float64": "double", "double": "double", "float32": "float", "int": "long",
          "int64": "long", "long": "long", "int32": "integer", "integer": "integer", "str": "string",
          "string": "string", "object": "string", "bool": "boolean", "boolean": "boolean", "bytes": "binary",
          "binary": "binary", "datetime": "datetime", "datetime64": "datetime"}


def is_pickle(data: bytes) -> bool:
    """True when ``data`` is one whole pickle stream (read opcode by opcode, never loaded)."""
    if len(data) < 2 or data[0] != 0x80 or not 2 <= data[1] <= 5 or data[-1:] != b".":
        return False
    try:
        end = 0
        for op, _arg, pos in pickletools.genops(data):
            end = pos + 1 if op.name == "STOP" else end
        return end == len(data)
    except Exception:  # noqa: BLE001 - any malformed stream is simply not a pickle
        return False


def _schema(side: Any) -> Any:
    """An MLflow ``Schema`` of ``{"name": "type"}`` or ``[{"name":, "type":}]``, else None."""
    from mlflow.types.schema import ColSpec, Schema

    if isinstance(side, dict):
        columns = list(side.items())
    elif isinstance(side, list) and all(isinstance(c, dict) and "type" in c for c in side):
        columns = [(c.get("name"), c["type"]) for c in side]
    else:
        return None
    specs = []
    for name, kind in columns:
        mapped = _TYPES.get(str(kind).lower()) if isinstance(kind, str) else None
        if mapped is None or (name is not None and not isinstance(name, str)):
            return None
        specs.append(ColSpec(mapped, name))
    return Schema(specs) if specs else None


def mlflow_signature(signature: Any) -> Any:
    """MLflow's ``ModelSignature`` of a recorded signature: MLflow's own dict form
    (``{"inputs": "[...]", "outputs": ...}``), or git-prov's ``log_schema`` form
    (``{"input": {"x": "float"}, "output": {"y": "int"}}``, columns as a dict or a list of
    ``{"name", "type"}``); None when it does not map (every column needs a known type)."""
    from mlflow.models.signature import ModelSignature

    if not isinstance(signature, dict):
        return None
    if "inputs" in signature:
        try:
            return ModelSignature.from_dict(signature)
        except Exception:  # noqa: BLE001 - a dict that only looks like MLflow's
            return None
    inputs = _schema(signature.get("input"))
    if inputs is None:
        return None
    outputs = _schema(signature["output"]) if signature.get("output") is not None else None
    if signature.get("output") is not None and outputs is None:
        return None
    return ModelSignature(inputs=inputs, outputs=outputs)


def _packages(run: Any) -> dict[str, str]:
    """``{normalized name: version}`` of the run's own environment (empty if unrecorded)."""
    out = {}
    for line in (run.record.packages or "").splitlines():
        name, sep, version = line.partition("==")
        if sep:
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def _name(requirement: str) -> str | None:
    """The normalized distribution name of a requirement line (None for ``-r …`` and the like)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(requirement).name.lower().replace("_", "-")
    except InvalidRequirement:
        return None


def _pinned(requirements: list[str], package: str) -> str | None:
    for req in requirements:
        name, sep, version = req.partition("==")
        if sep and name.strip().lower().replace("_", "-") == package:
            return version.strip()
    return None


def _requirements(info: dict[str, Any], packages: dict[str, str], cloudpickled: bool) -> list[str]:
    """The pip requirements MLflow writes: ``mlflow`` first (as MLflow's ``log_model``
    adds it), then the recorded ones, or else the framework at the run's version; and
    ``cloudpickle`` when the pickle needs it to load."""
    import mlflow

    def at_run_version(package: str) -> str:
        return f"{package}=={packages[package]}" if package in packages else package

    reqs = list(info.get("requirements") or [])
    package = FRAMEWORK_PACKAGES.get(info.get("framework") or "")
    if not reqs and package:
        reqs = [at_run_version(package)]
    if cloudpickled and "cloudpickle" not in {_name(r) for r in reqs}:
        reqs.append(at_run_version("cloudpickle"))
    if "mlflow" not in {_name(r) for r in reqs}:
        reqs.insert(0, f"mlflow=={mlflow.__version__}")
    return list(dict.fromkeys(reqs))


def _write_environment(folder: str, run: Any, reqs: list[str], packages: dict[str, str]) -> str:
    """``requirements.txt``, ``conda.yaml`` and ``python_env.yaml`` as MLflow writes them,
    for the run's Python (the syncing machine's when unrecorded); returns that version."""
    import yaml
    from mlflow.utils.environment import _mlflow_conda_env, _PythonEnv

    env = run.record.environment
    python = env.python_version if env is not None and env.python_version else _PythonEnv.current().python
    build = [f"{p}=={packages[p]}" if p in packages else p for p in _PythonEnv.BUILD_PACKAGES] if packages else \
        _PythonEnv.get_current_build_dependencies()
    conda = _mlflow_conda_env(additional_pip_deps=reqs, install_mlflow=False)
    conda["dependencies"] = [f"python={python}" if isinstance(d, str) and d.startswith("python=") else d
                             for d in conda["dependencies"]]
    with open(os.path.join(folder, "conda.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(conda, stream=f, default_flow_style=False)
    with open(os.path.join(folder, "requirements.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(reqs))
    _PythonEnv(python=python, build_dependencies=build, dependencies=["-r requirements.txt"]).to_yaml(
        os.path.join(folder, "python_env.yaml"))
    return python


def _created(run: Any) -> str:
    """When the model was logged, as MLflow writes ``utc_time_created``: the run's end
    (its start while it runs), so syncing twice writes the same file."""
    stamp = run.state.ended or run.record.created
    when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")


def _model_files(run: Any, info: dict[str, Any]) -> dict[str, bytes]:
    """The model's stored files by artifact key (one for a file, every file of a tree)."""
    key = info.get("artifact") or "model"
    return {k: run.get_artifact(k) for k, ref in sorted(run.state.artifacts.items())
            if (k == key or k.startswith(key + "/")) and ref.media_type != DIRECTORY_TYPE}


def write_mlflow_model(folder: str, run: Any, info: dict[str, Any], *, model_id: str, run_id: str | None,
                       artifact_location: str | None) -> list[str]:
    """Lay the model ``info`` describes out in ``folder`` as an MLflow model (see the
    module); returns its flavors."""
    from mlflow.models import Model
    from mlflow.pyfunc import add_to_model

    packages = _packages(run)
    files = _model_files(run, info)
    key = info.get("artifact") or "model"
    pickled = files[key] if list(files) == [key] and (info.get("format") == "pickle" or is_pickle(files[key])) \
        else None
    # a pickle made by cloudpickle (classes by value) names its module; loading needs it
    cloudpickled = pickled is not None and b"cloudpickle" in pickled
    reqs = _requirements(info, packages, cloudpickled)
    python = _write_environment(folder, run, reqs, packages)
    metadata = {"prov.run_id": run.id, "prov.model.name": str(info.get("name")),
                "prov.model.version": str(info.get("version")), "prov.model.sha256": str(info.get("sha256")),
                "prov.model.format": str(info.get("format"))}
    if info.get("framework"):
        metadata["prov.model.framework"] = str(info["framework"])
    model = Model(artifact_path=artifact_location, run_id=run_id, model_id=model_id, model_uuid=uuid.uuid5(
        uuid.NAMESPACE_URL, f"prov-model:{info.get('name')}@{info.get('version')}").hex,
        utc_time_created=_created(run), metadata=metadata, signature=mlflow_signature(info.get("signature")))
    env = {"conda_env": "conda.yaml", "python_env": "python_env.yaml"}
    if pickled is not None:
        with open(os.path.join(folder, PICKLED_MODEL), "wb") as f:
            f.write(pickled)
        if info.get("framework") == "sklearn":
            if info.get("predict", True):
                add_to_model(model, loader_module="mlflow.sklearn", model_path=PICKLED_MODEL, predict_fn="predict",
                             **env)
            model.add_flavor("sklearn", pickled_model=PICKLED_MODEL, sklearn_version=packages.get(
                "scikit-learn") or _pinned(reqs, "scikit-learn"),
                serialization_format="cloudpickle" if cloudpickled else "pickle", code=None,
                skops_trusted_types=None)
        elif info.get("predict", True):
            os.makedirs(os.path.join(folder, "code"))
            shutil.copyfile(os.path.join(os.path.dirname(__file__), f"{LOADER_MODULE}.py"),
                            os.path.join(folder, "code", f"{LOADER_MODULE}.py"))
            add_to_model(model, loader_module=LOADER_MODULE, data=PICKLED_MODEL, code="code", **env)
    else:
        for k, data in files.items():
            parts = [safe_file_name(p) for p in k.split("/") if p]
            path = os.path.join(folder, *parts)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
    if "python_function" in model.flavors:
        model.flavors["python_function"]["python_version"] = python  # the run's, not the syncing machine's
    model.model_size_bytes = sum(len(d) for d in files.values())
    model.save(os.path.join(folder, "MLmodel"))
    with open(os.path.join(folder, "prov_model.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(info, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    return sorted(model.flavors)
