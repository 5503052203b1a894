"""The ``python_function`` loader of a pickled model that is not scikit-learn's.

``prov sync mlflow`` copies this file into such a model's ``code/`` directory, so
``mlflow.pyfunc.load_model`` finds it without git-prov installed (MLflow puts a model's
``code/`` on ``sys.path`` before importing its ``loader_module``). It imports nothing
from git-prov. Unpickling runs code: load only models you trust.
"""

from __future__ import annotations

import pickle
from typing import Any

__all__ = ["PickledModel"]


class PickledModel:
    """A pickled object with a ``predict`` method, as MLflow's pyfunc calls it."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def get_raw_model(self) -> Any:
        """The unpickled object itself."""
        return self.model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        if not hasattr(self.model, "predict"):
            raise TypeError(f"the pickled {type(self.model).__name__} has no predict method")
        return self.model.predict(model_input)


def _load_pyfunc(path: str) -> PickledModel:
    with open(path, "rb") as f:
        return PickledModel(pickle.load(f))  # noqa: S301 (a model the user logged; see the module)
