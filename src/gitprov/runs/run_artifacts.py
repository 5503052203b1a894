"""The artifact and model calls of ``Run`` (Verta's ``log_artifact`` / ``get_artifact`` /
``download_artifact``, ``log_image``, ``log_model`` / ``get_model`` /
``download_model``): files, bytes, pickled objects and directory trees stored as blobs
in the run's ``artifacts/`` tree, or in the local cache above the size threshold
(``runs/artifacts.py`` does the storing; ``runs/models.py`` what a model records)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .. import codec
from ..errors import UsageError
from ..keys import check_key, key_to_name
from . import reading
from .run_part import RunPart

if TYPE_CHECKING:
    from ..model import ArtifactRef

__all__ = ["ArtifactMethods"]


class ArtifactMethods(RunPart):
    """Mixed into ``Run``: its artifacts and its model."""

    # -- artifacts ---------------------------------------------------------------
    def log_artifact(self, key: str, source: Any, overwrite: bool = False,
                     media_type: str | None = None) -> ArtifactRef:
        """Store ``source`` under ``key``: a file, bytes or a binary file object as it is;
        a directory as a tree (each file its own artifact ``key/<path>``, identical
        content stored once, and at ``key`` a listing of type ``DIRECTORY_TYPE``); any
        other Python object serialized with pickle (type ``PICKLE_TYPE``; read it back
        with ``get_artifact_object``)."""
        from .artifacts import PICKLE_TYPE, serialize_object

        self._require_active("log artifacts")
        check_key(key, "artifact key")
        if key in self._state.artifacts and not overwrite:
            raise UsageError(f"artifact {key!r} already exists; pass overwrite=True to replace it")
        if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
            return self._log_directory(key, os.fspath(source), overwrite)
        if not isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)) and not hasattr(source, "read"):
            source, media_type = serialize_object(key, source), media_type or PICKLE_TYPE
        return self._store_artifact(key, source, media_type)

    def _store_artifact(self, key: str, source: Any, media_type: str | None) -> ArtifactRef:
        from .artifacts import store_artifact

        writer = self._writer
        ref, blob = store_artifact(self._store.git, key, source, media_type, writer.settings.artifact_threshold,
                                   defer=writer.defer_blob)
        self._state.artifacts[key] = ref
        # blob is None when the content lives in the local cache, not in the tree
        writer.stage_edits({f"artifacts/{key_to_name(key)}": blob}, journal=blob not in writer.deferred)
        return ref

    def _log_directory(self, key: str, path: str, overwrite: bool) -> ArtifactRef:
        from .artifacts import DIRECTORY_TYPE, directory_files

        files = directory_files(path, key)
        listing: dict[str, Any] = {}
        for rel, _full in files:
            file_key = f"{key}/{rel}"
            check_key(file_key, "artifact key")
            if file_key in self._state.artifacts and not overwrite:
                raise UsageError(f"artifact {file_key!r} already exists; pass overwrite=True to replace it")
        for rel, full in files:
            ref = self._store_artifact(f"{key}/{rel}", full, None)
            listing[rel] = {"sha256": ref.sha256, "size": ref.size, "media_type": ref.media_type}
        return self._store_artifact(key, codec.encode({"files": listing}), DIRECTORY_TYPE)

    def log_image(self, key: str, image: Any, overwrite: bool = False) -> ArtifactRef:
        """Store an image: PNG/JPEG bytes or path, a matplotlib figure (or ``pyplot``), a
        PIL image, or an array (H×W[×C] uint8)."""
        from .artifacts import image_bytes

        data, media_type = image_bytes(image)
        return self.log_artifact(key, data, overwrite=overwrite, media_type=media_type)

    def get_artifact_keys(self) -> list[str]:
        return sorted(self._state.artifacts)

    def get_artifact(self, key: str) -> bytes:
        from .artifacts import load_artifact

        ref = self._state.artifacts.get(key)
        if ref is None:
            raise UsageError(f"run {self.id[:12]} has no artifact {key!r}; it has {self.get_artifact_keys()}")
        path = f"artifacts/{key_to_name(key)}"
        writer = self._writer
        pending = writer.pending.get(path)
        if isinstance(pending, str) and pending in writer.deferred:
            return writer.deferred[pending]
        blob = pending if isinstance(pending, str) else (
            reading.artifact_blob_id(self._store.ledger, self.id, key) if writer.stored else None)
        if ref.location == "tree" and blob is not None and not isinstance(pending, str) \
                and not self._store.git.odb.contains(blob):  # kept in the run's blob (format 4)
            data = self._store.ledger.run_file(self.id, path)
            if data is not None:
                return load_artifact(self._store.git, ref, None, data)
        return load_artifact(self._store.git, ref, blob)

    def get_artifact_object(self, key: str) -> Any:
        """Artifact ``key`` as what was logged: a pickled object loaded (only load what you
        trust: unpickling runs code), a directory's listing as a dict, else the bytes."""
        from .artifacts import DIRECTORY_TYPE, PICKLE_TYPE

        data = self.get_artifact(key)
        media = self._state.artifacts[key].media_type
        if media == PICKLE_TYPE:
            import pickle

            return pickle.loads(data)  # noqa: S301 (the caller's own artifact; documented)
        if media == DIRECTORY_TYPE:
            import msgspec

            return msgspec.json.decode(data)
        return data

    def download_artifact(self, key: str, to_path: str | os.PathLike[str]) -> str:
        """Write artifact ``key`` to ``to_path`` (a file, or a directory to put it in);
        a directory artifact is written back as the directory tree it was."""
        from .artifacts import DIRECTORY_TYPE, safe_file_name

        target = os.fspath(to_path)
        ref = self._state.artifacts.get(key)
        if ref is not None and ref.media_type == DIRECTORY_TYPE:
            return self._download_directory(key, target)
        if os.path.isdir(target):
            target = os.path.join(target, safe_file_name(key))
        data = self.get_artifact(key)
        tmp = f"{target}.prov-tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
        return target

    def _download_directory(self, key: str, target: str) -> str:
        from .artifacts import write_tree

        listing = self.get_artifact_object(key)
        return write_tree(target, {rel: self.get_artifact(f"{key}/{rel}") for rel in listing["files"]})

    def fetch_artifacts(self, keys: list[str] | None = None, to_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Artifacts by key: bytes, or file paths when ``to_dir`` is given."""
        keys = self.get_artifact_keys() if keys is None else list(keys)
        if to_dir is None:
            return {k: self.get_artifact(k) for k in keys}
        os.makedirs(to_dir, exist_ok=True)
        return {k: self.download_artifact(k, to_dir) for k in keys}

    # -- models --------------------------------------------------------------------
    def log_model(self, model: Any, framework: str | None = None, signature: Any = None,
                  requirements: list[str] | str | os.PathLike[str] | None = None, *, name: str | None = None,
                  version: str | None = None, overwrite: bool = False) -> dict[str, Any]:
        """Store a model (artifact ``model``): a file or directory path, bytes, or a Python
        object (pickled); see ``gitprov.runs.models``. Returns what is recorded."""
        from .models import log_model

        return log_model(self, model, framework, signature, requirements, name, version, overwrite)

    def get_model_info(self) -> dict[str, Any] | None:
        """What ``log_model`` recorded (framework, signature, requirements, name,
        version, format), or None."""
        return self._state.attributes.get("prov.model")

    def get_model(self) -> Any:
        """The logged model: the object for a pickled one, the listing for a directory,
        else the bytes (only load what you trust: unpickling runs code)."""
        from .models import MODEL_KEY

        if MODEL_KEY not in self._state.artifacts:
            raise UsageError(f"run {self.id[:12]} has no model; log one with run.log_model(model)")
        return self.get_artifact_object(MODEL_KEY)

    def download_model(self, to_path: str | os.PathLike[str]) -> str:
        """Write the logged model to ``to_path`` (a directory model as its tree)."""
        from .models import MODEL_KEY

        if MODEL_KEY not in self._state.artifacts:
            raise UsageError(f"run {self.id[:12]} has no model; log one with run.log_model(model)")
        return self.download_artifact(MODEL_KEY, to_path)
