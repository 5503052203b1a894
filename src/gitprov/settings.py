"""``.provenance.toml``: a repository's own git-prov settings (committed with the code).

```toml
[inputs]
paths = ["data/*.csv", "data/**/*.parquet"]   # hashed into every commit capture

[hooks]
strict = false                                  # true: a failed capture blocks the commit
```

Validated with msgspec (already loaded on the hook path); unknown keys are errors so
typos do not silently disable a setting.
"""

from __future__ import annotations

import os

import msgspec

from .errors import ConfigError
from .names import SETTINGS_FILE

__all__ = ["SETTINGS_FILE", "HooksSettings", "InputsSettings", "Settings", "load_settings"]



class InputsSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    paths: list[str] = []


class HooksSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    strict: bool = False


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    inputs: InputsSettings = msgspec.field(default_factory=InputsSettings)
    hooks: HooksSettings = msgspec.field(default_factory=HooksSettings)


def load_settings(work_tree: str | None) -> Settings:
    """The settings of the work tree (defaults when the file is absent)."""
    if work_tree is None:
        return Settings()
    path = os.path.join(work_tree, SETTINGS_FILE)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return Settings()
    except OSError as exc:
        raise ConfigError(f"cannot read {SETTINGS_FILE}: {exc.strerror}") from exc
    try:
        settings = msgspec.toml.decode(data, type=Settings)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"{SETTINGS_FILE} is invalid: {exc}; see docs/concepts.md#settings") from exc
    except ImportError as exc:  # msgspec.toml needs tomllib/tomli
        raise ConfigError(f"cannot parse {SETTINGS_FILE}: {exc}") from exc
    for pattern in settings.inputs.paths:
        if os.path.isabs(pattern) or ".." in pattern.replace("\\", "/").split("/"):
            raise ConfigError(
                f"{SETTINGS_FILE}: input pattern {pattern!r} leaves the work tree; use a relative glob"
            )
    return settings
