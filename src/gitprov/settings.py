"""``.provenance.toml``: a repository's own git-prov settings (committed with the code).

```toml
[inputs]
paths = ["data/*.csv", "data/**/*.parquet"]   # hashed into every commit capture

[hooks]
strict = false                                  # true: a failed capture blocks the commit

[secrets]
patterns = ["acme_[0-9a-f]{32}"]                # more token shapes to redact (regular expressions)
names = ["vault"]                               # more words that make a name secret
```

Validated with msgspec (already loaded on the hook path); unknown keys are errors so
typos do not silently disable a setting. Only when a file is invalid is pydantic
imported, to name every invalid field at once (msgspec stops at the first).
"""

from __future__ import annotations

import functools
import os
import types
import typing

import msgspec

from .errors import ConfigError
from .names import SETTINGS_FILE

if typing.TYPE_CHECKING:
    import pydantic

    from .scrub import Scrubber

__all__ = ["SETTINGS_FILE", "HooksSettings", "InputsSettings", "SecretsSettings", "Settings", "load_settings", "scrubber"]

class InputsSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    paths: list[str] = []


class HooksSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    strict: bool = False


class SecretsSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    patterns: list[str] = []
    names: list[str] = []


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    inputs: InputsSettings = msgspec.field(default_factory=InputsSettings)
    hooks: HooksSettings = msgspec.field(default_factory=HooksSettings)
    secrets: SecretsSettings = msgspec.field(default_factory=SecretsSettings)

#: longest accepted ``[secrets] patterns`` entry (a cloned repository's file is not trusted)
MAX_PATTERN = 200


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
    except msgspec.ValidationError as exc:  # well-formed TOML, wrong keys or types
        problems = _invalid_fields(msgspec.toml.decode(data)) or str(exc)
        raise ConfigError(f"{SETTINGS_FILE} is invalid: {problems}; fix these keys (see docs/concepts.md#settings)") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{SETTINGS_FILE} is invalid: {exc}; see docs/concepts.md#settings") from exc
    except ImportError as exc:  # msgspec.toml needs tomllib/tomli
        raise ConfigError(f"cannot parse {SETTINGS_FILE}: {exc}") from exc
    for pattern in settings.inputs.paths:
        if os.path.isabs(pattern) or ".." in pattern.replace("\\", "/").split("/"):
            raise ConfigError(
                f"{SETTINGS_FILE}: input pattern {pattern!r} leaves the work tree; use a relative glob"
            )
    _check_secrets(settings.secrets)
    return settings


def _check_secrets(secrets: SecretsSettings) -> None:
    import re

    for pattern in secrets.patterns:
        if not pattern or len(pattern) > MAX_PATTERN:
            raise ConfigError(f"{SETTINGS_FILE}: secrets pattern {pattern[:40]!r} must be 1 to {MAX_PATTERN} "
                              "characters; shorten it")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{SETTINGS_FILE}: secrets pattern {pattern!r} is not a regular expression "
                              f"({exc}); fix it") from exc
    for name in secrets.names:
        if not re.fullmatch(r"[A-Za-z0-9]{1,40}", name):
            raise ConfigError(f"{SETTINGS_FILE}: secrets name {name[:40]!r} must be one word of letters and "
                              "digits (it matches a word of a name, in any case)")


def scrubber(work_tree: str | None) -> Scrubber:
    """The redaction rules with the work tree's ``[secrets]`` additions."""
    secrets = load_settings(work_tree).secrets
    return _scrubber(tuple(secrets.patterns), tuple(secrets.names))


@functools.lru_cache(maxsize=8)
def _scrubber(patterns: tuple[str, ...], names: tuple[str, ...]) -> Scrubber:
    from . import scrub

    return scrub.Scrubber(patterns, names) if patterns or names else scrub.DEFAULT


def _invalid_fields(document: dict[str, object]) -> str:
    """Every invalid key of ``document`` as ``location: problem``, joined with ``'; '``
    (empty when pydantic, checking strictly as msgspec does, finds nothing)."""
    import pydantic

    try:
        _pydantic_twin(Settings).model_validate(document)
    except pydantic.ValidationError as exc:
        return "; ".join(f"{'.'.join(str(p) if str(p).isprintable() else repr(p) for p in err['loc'])}: "
                         f"{_PROBLEMS.get(err['type'], err['msg'])}" for err in exc.errors(include_url=False))
    return ""


#: pydantic's words where they would name the twin's classes or read oddly for TOML
_PROBLEMS = {"extra_forbidden": "unknown field", "model_type": "Input should be a table"}


@functools.cache
def _pydantic_twin(struct: type[msgspec.Struct]) -> type[pydantic.BaseModel]:
    """A pydantic model with the fields of ``struct`` (strict, unknown keys forbidden), so
    the settings schema is written once, as msgspec Structs."""
    import pydantic

    fields: dict[str, object] = {}
    for field in msgspec.structs.fields(struct):
        optional = field.default is not msgspec.NODEFAULT or field.default_factory is not msgspec.NODEFAULT
        fields[field.encode_name] = (_twin_type(field.type), None if optional else ...)
    config = pydantic.ConfigDict(strict=True, extra="forbid")
    return pydantic.create_model(struct.__name__, __config__=config, **fields)  # type: ignore[call-overload]


def _twin_type(tp: object) -> object:
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _pydantic_twin(tp)
    args = typing.get_args(tp)
    if not args:
        return tp
    origin = typing.get_origin(tp)
    return (typing.Union if origin is types.UnionType else origin)[tuple(_twin_type(a) for a in args)]
