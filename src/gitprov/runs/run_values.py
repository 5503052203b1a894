"""The keyed values of ``Run``: hyperparameters (secrets redacted before they are kept;
a changed value only with ``overwrite``), attributes (any JSON value) and tags."""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from ..keys import check_json_value, check_key
from .run_part import RunPart

__all__ = ["ValueMethods"]


class ValueMethods(RunPart):
    """Mixed into ``Run``: its hyperparameters, attributes and tags."""

    # -- hyperparameters ---------------------------------------------------------
    def log_hyperparameter(self, key: str, value: Any, overwrite: bool = False) -> None:
        self.log_hyperparameters({key: value}, overwrite=overwrite)

    def log_hyperparameters(self, params: dict[str, Any], overwrite: bool = False) -> None:
        self._require_active("log hyperparameters")
        if not isinstance(params, dict):
            raise UsageError("hyperparameters must be a dict of key -> value")
        from ..settings import scrubber

        current = self.get_hyperparameters()
        for key, value in params.items():
            check_key(key, "hyperparameter key")
            check_json_value(value, f"hyperparameter {key!r}")
        params = scrubber(self._store.work_tree).redact_params(params, self._store.redaction_key)
        for key, value in params.items():
            if key in current and current[key] != value and not overwrite:
                raise UsageError(
                    f"hyperparameter {key!r} is already {current[key]!r}; pass overwrite=True to change it to {value!r}"
                )
        self._state.params.update(params)
        self._touch()

    def get_hyperparameter(self, key: str) -> Any:
        return self.get_hyperparameters().get(key)

    def get_hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter, those given at the start and those logged since, by key
        in sorted order (as the stored record has each part)."""
        return dict(sorted({**self.record.params, **self._state.params}.items()))

    # -- attributes and tags -----------------------------------------------------
    def log_attribute(self, key: str, value: Any, overwrite: bool = False) -> None:
        self.log_attributes({key: value}, overwrite=overwrite)

    def log_attributes(self, attributes: dict[str, Any], overwrite: bool = False) -> None:
        """Set attributes; one that exists with another value is replaced only with
        ``overwrite=True`` (as in Verta; the same value again is fine)."""
        if not isinstance(attributes, dict):
            raise UsageError("attributes must be a dict of key -> JSON value")
        current = self._state.attributes
        for key, value in attributes.items():
            check_key(key, "attribute key")
            check_json_value(value, f"attribute {key!r}")
            if not overwrite and key in current and current[key] != value:
                raise UsageError(f"attribute {key!r} is already {_short(current[key])}; pass overwrite=True to replace "
                                 "it, or log a value that changes as an observation")
        self._state.attributes.update(attributes)
        self._touch()

    def get_attribute(self, key: str) -> Any:
        return self._state.attributes.get(key)

    def get_attributes(self) -> dict[str, Any]:
        return dict(self._state.attributes)

    def log_tag(self, key: str, value: str = "") -> None:
        self.log_tags({key: value})

    def log_tags(self, tags: dict[str, str] | list[str]) -> None:
        items = {t: "" for t in tags} if isinstance(tags, (list, tuple, set)) else tags
        if not isinstance(items, dict):
            raise UsageError("tags must be a dict of key -> string or a list of strings")
        for key, value in items.items():
            check_key(key, "tag")
            if not isinstance(value, str):
                raise UsageError(f"tag {key!r} value must be a string, got {type(value).__name__}")
            check_json_value(value, f"tag {key!r}")
        self._state.tags.update(items)
        self._touch()

    def get_tags(self) -> dict[str, str]:
        return dict(self._state.tags)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
