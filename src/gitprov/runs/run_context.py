"""What a ``Run`` ran with, as its calls record it: the code version (and patch),
dataset versions, the Python environment and a setup script, seeds, and the model's
input/output schema."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .. import codec
from ..errors import UsageError
from ..keys import check_json_value, check_key
from ..model import DatasetVersion
from .run_part import RunPart

if TYPE_CHECKING:
    from ..model import ArtifactRef

__all__ = ["ContextMethods"]


class ContextMethods(RunPart):
    """Mixed into ``Run``: its code, data, environment, seeds and schema."""

    # -- code, data, environment, schema -------------------------------------------
    def log_code(self, exec_path: str | os.PathLike[str] | None = None, repo_url: str | None = None,
                 commit_hash: str | None = None, overwrite: bool = False, is_dirty: bool | None = None,
                 autocapture: bool = True) -> Any:
        """Record the code version now, as Verta's ``log_code``: with ``autocapture``, the
        commit, dirty flag + patch, exec path and repo URL found here, each replaced by the
        value given; without it, only the values given. ``exec_path`` must be an existing
        file (kept relative to the work tree); ``overwrite=False`` refuses to replace a
        code version logged before with another."""
        from .code import given_code_version

        self._require_active("log code")
        code = given_code_version(self._store.git, exec_path, repo_url, commit_hash, is_dirty, autocapture)
        plain = codec.to_plain(code)
        earlier = self._state.attributes.get("prov.code")
        if not overwrite and earlier is not None and earlier != plain:
            raise UsageError("a code version was logged already; pass overwrite=True to replace it")
        self._state.attributes["prov.code"] = plain
        self._writer.stage_edits({"code.patch": code.patch} if code.patch else {})
        return code

    def get_code(self) -> Any:
        import msgspec

        from ..model import CodeVersion

        later = self._state.attributes.get("prov.code")
        return msgspec.convert(later, CodeVersion) if later else self.record.code

    def get_code_patch(self) -> bytes | None:
        """The uncommitted changes recorded with the code version (a git diff)."""
        code = self.get_code()
        return self._store.git.odb.read_typed(code.patch, "blob") if code.patch else None

    def log_dataset_version(self, key: str, path_or_digest: str | os.PathLike[str]) -> DatasetVersion:
        from .inputs import looks_like_a_path, sha256_file

        self._require_active("log dataset versions")
        check_key(key, "dataset key")
        text = os.fspath(path_or_digest)
        if os.path.isfile(text):
            rel = os.path.relpath(os.path.abspath(text), self._store.work_tree or os.getcwd())
            version = DatasetVersion(key=key, digest="sha256:" + sha256_file(text),
                                     path=rel.replace(os.sep, "/"), size=os.path.getsize(text))
        elif os.path.isdir(text):
            from .artifacts import directory_digest

            digest, size = directory_digest(text)
            version = DatasetVersion(key=key, digest=digest, path=text, size=size)
        else:
            if not text or len(text) > 200 or any(ord(c) < 33 for c in text):
                raise UsageError(f"dataset {key!r}: {text!r} is neither an existing path nor a digest")
            if looks_like_a_path(text):
                raise UsageError(f"dataset {key!r}: {text!r} does not exist (from {os.getcwd()}); pass an existing "
                                 "file or directory, or a digest or version such as sha256:<hex> or s3://bucket/key?versionId=…")
            version = DatasetVersion(key=key, digest=text)
        self._state.datasets[key] = version
        self._writer.dirty = True
        return version

    def get_dataset_versions(self) -> dict[str, DatasetVersion]:
        return dict(self._state.datasets)

    @property
    def has_environment(self) -> bool:
        """Whether the run records its Python environment (at start, or ``log_environment``)."""
        return self.record.environment is not None or "prov.environment" in self._state.attributes

    def log_setup_script(self, script: str, overwrite: bool = False) -> ArtifactRef:
        """Store a Python setup script for deploying the model (artifact ``setup_script``),
        checked to be valid Python first, as Verta's ``log_setup_script``."""
        import ast

        if not isinstance(script, str):
            raise UsageError(f"the setup script must be Python source text (str), not {type(script).__name__}; "
                             "read a file with open(path).read()")
        try:
            ast.parse(script)
        except SyntaxError as exc:
            raise UsageError(f"the setup script is not valid Python: {exc.msg} on line {exc.lineno}") from exc
        return self.log_artifact("setup_script", script.encode("utf-8"), overwrite=overwrite,
                                 media_type="text/x-python")

    def log_environment(self) -> Any:
        from ..fingerprint import environment

        self._require_active("log the environment")
        env = environment()
        self._state.attributes["prov.environment"] = codec.to_plain(env)
        self._writer.dirty = True
        return env

    def log_seed(self, seed: int | str, key: str = "seed") -> None:
        """Record a seed the script chose (``random.seed(seed)``, ``np.random.seed(seed)``)
        in the attribute ``prov.seeds``, beside the generator states recorded at start:
        ``prov rerun`` then tells nondeterminism apart from drift."""
        check_key(key, "seed key")
        if isinstance(seed, bool) or not isinstance(seed, (int, str)):
            raise UsageError(f"seed {key!r} must be an integer or a string, got {type(seed).__name__}")
        check_json_value(seed, f"seed {key!r}")
        seeds = dict(self._state.attributes.get("prov.seeds") or {})
        seeds[key] = seed
        self._state.attributes["prov.seeds"] = seeds
        self._touch()

    def get_seeds(self) -> dict[str, Any]:
        """Seeds logged with ``log_seed`` and generator states recorded at start and end."""
        return dict(self._state.attributes.get("prov.seeds") or {})

    def log_schema(self, input: Any, output: Any = None) -> None:
        """Record the input (and output) schema of the model this run trained."""
        check_json_value(input, "input schema")
        check_json_value(output, "output schema")
        self._state.io_schema = {"input": input} if output is None else {"input": input, "output": output}
        self._touch()

    def get_schema(self) -> dict[str, Any] | None:
        """``{"input": ..., "output": ...}``; ``output`` left out when none was logged (as Verta)."""
        schema = self._state.io_schema
        if schema is None:
            return None
        return {k: v for k, v in schema.items() if not (k == "output" and v is None)}
