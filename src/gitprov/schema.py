"""The lexicon: JSON Schemas of every record kind plus ``manifest.json``.

The schemas are generated from the model; the manifest lists each file's sha256 and
the ``sha256:`` of the manifest itself is the pin every record carries, so any record
can be validated against the exact schema it was written with. ``python -m
gitprov.schema write`` regenerates the packaged copy and the project's top-level
``.provenance-schema/``; a test fails when either drifts from the model.
"""

from __future__ import annotations

import hashlib
import json
import os

from ._version import FORMAT_VERSION
from .errors import DataError
from .names import LEXICON_DIR

TYPE_CHECKING = False  # typing is not imported at run time: hook path
if TYPE_CHECKING:
    from typing import Any

    from .model.common import SchemaPin

__all__ = [
    "LEXICON_DIR",
    "SCHEMA_VERSION",
    "Lexicon",
    "current_pin",
    "generate",
    "package_lexicon",
]

#: Bumped whenever a generated schema changes.
SCHEMA_VERSION = 1
_PACKAGED = os.path.join(os.path.dirname(__file__), "lexicon")
_MANIFEST = "manifest.json"


def _record_types() -> dict[str, Any]:
    from .model import CommitCapture, CommitRuns, RewriteLink, RunLink, RunRecord, RunState

    return {
        "commit": CommitCapture,
        "run": RunLink,
        "runs": CommitRuns,
        "rewrite": RewriteLink,
        "run-record": RunRecord,
        "run-state": RunState,
    }


def _allow_tagged_floats(node: Any) -> Any:
    """Numbers may also be stored as ``{"$float": ...}`` (see ``codec``)."""
    if isinstance(node, dict):
        node = {k: _allow_tagged_floats(v) for k, v in node.items()}
        if node.get("type") == "number":
            tagged = {
                "type": "object",
                "properties": {"$float": {"enum": ["NaN", "Infinity", "-Infinity"]}},
                "required": ["$float"],
                "additionalProperties": False,
            }
            return {"anyOf": [node, tagged]}
        return node
    if isinstance(node, list):
        return [_allow_tagged_floats(v) for v in node]
    return node


def _dump(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def generate() -> dict[str, bytes]:
    """Every lexicon file name -> its bytes, manifest included."""
    import msgspec

    files: dict[str, bytes] = {}
    for kind, cls in _record_types().items():
        schema = msgspec.json.schema(cls)
        schema = _allow_tagged_floats(schema)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://git-prov.dev/lexicon/v{SCHEMA_VERSION}/{kind}.schema.json"
        schema["title"] = f"git-prov {kind} record"
        files[f"{kind}.schema.json"] = _dump(schema)
    manifest = {
        "format_version": FORMAT_VERSION,
        "schema_version": SCHEMA_VERSION,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    files[_MANIFEST] = _dump(manifest)
    return files


class Lexicon:
    """A lexicon read from a directory (packaged, vendored, or from history)."""

    def __init__(self, files: dict[str, bytes], where: str) -> None:
        self.files = files
        self.where = where
        try:
            self.manifest = json.loads(files[_MANIFEST])
        except (KeyError, ValueError) as exc:
            raise DataError(f"{where}: missing or invalid {_MANIFEST}") from exc

    @classmethod
    def from_dir(cls, path: str) -> Lexicon:
        try:
            names = [n for n in os.listdir(path) if n.endswith(".json")]
            files = {}
            for name in names:
                with open(os.path.join(path, name), "rb") as f:
                    files[name] = f.read()
        except OSError as exc:
            raise DataError(f"cannot read lexicon at {path}: {exc.strerror}") from exc
        return cls(files, path)

    @property
    def hash(self) -> str:
        return "sha256:" + hashlib.sha256(self.files[_MANIFEST]).hexdigest()

    @property
    def pin(self) -> SchemaPin:
        from .model.common import SchemaPin

        return SchemaPin(lexicon=self.hash, version=int(self.manifest["schema_version"]))

    def problems(self) -> list[str]:
        """Files whose sha256 does not match the manifest (empty when intact)."""
        out = []
        listed = self.manifest.get("files", {})
        for name, digest in sorted(listed.items()):
            data = self.files.get(name)
            if data is None:
                out.append(f"{self.where}: {name} is listed in the manifest but missing")
            elif hashlib.sha256(data).hexdigest() != digest:
                out.append(f"{self.where}: {name} does not match its sha256 in the manifest")
        return out

    def schema_for(self, kind: str) -> dict[str, Any]:
        try:
            return json.loads(self.files[f"{kind}.schema.json"])
        except KeyError:
            raise DataError(f"{self.where} has no schema for record kind {kind!r}") from None

    def validate(self, record: Any, kind: str) -> list[str]:
        """Messages for every way ``record`` (plain JSON) breaks the schema of ``kind``."""
        from jsonschema import Draft202012Validator

        validator = Draft202012Validator(self.schema_for(kind))
        return [
            f"{'/'.join(str(p) for p in err.absolute_path) or '(record)'}: {err.message}"
            for err in sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path))
        ]


def package_lexicon() -> Lexicon:
    return Lexicon.from_dir(_PACKAGED)


_pin_cache: dict[str, Any] = {}


def current_pin_fields() -> dict[str, Any]:
    """``{"lexicon", "version"}`` for records written now, from the packaged manifest
    (read once per process: it is part of the installed package)."""
    if not _pin_cache:
        with open(os.path.join(_PACKAGED, _MANIFEST), "rb") as f:
            data = f.read()
        version = json.loads(data)["schema_version"]
        _pin_cache.update({"lexicon": "sha256:" + hashlib.sha256(data).hexdigest(), "version": version})
    return dict(_pin_cache)


def current_pin() -> SchemaPin:
    """The pin for records written now (cheap: reads the packaged manifest)."""
    from .model.common import SchemaPin

    return SchemaPin(**current_pin_fields())


def write(dest: str) -> list[str]:
    """Write the generated lexicon into ``dest``; returns the files written."""
    os.makedirs(dest, exist_ok=True)
    written = []
    for name, data in generate().items():
        path = os.path.join(dest, name)
        with open(path, "wb") as f:
            f.write(data)
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - developer tool
    import sys

    if sys.argv[1:] != ["write"]:
        sys.exit("usage: python -m gitprov.schema write")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for target in (_PACKAGED, os.path.join(root, LEXICON_DIR)):
        for path in write(target):
            print(path)
