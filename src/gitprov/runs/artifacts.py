"""Artifact content: small ones as blobs in the run's tree, large ones in a local
content-addressed cache (``.git/prov/cas/<sha256[:2]>/<sha256>``), plus images.

Names from records are never trusted as paths: downloads use ``safe_file_name``.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO

from ..errors import DataError, UsageError, WriteError
from ..model import ArtifactRef
from ..store.repo import GitRepository

__all__ = [
    "DIRECTORY_TYPE",
    "PICKLE_TYPE",
    "directory_digest",
    "directory_files",
    "image_bytes",
    "load_artifact",
    "safe_file_name",
    "serialize_object",
    "store_artifact",
    "write_tree",
]

#: the media type of a Python object logged as an artifact (pickled)
PICKLE_TYPE = "application/x-pickle"
#: the media type of a directory's listing (its files are artifacts ``<key>/<path>``)
DIRECTORY_TYPE = "application/vnd.git-prov.directory+json"

_MEDIA_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".json": "application/json", ".txt": "text/plain", ".csv": "text/csv", ".md": "text/markdown",
    ".pt": "application/x-pytorch", ".onnx": "application/onnx", ".npy": "application/x-npy",
    ".pkl": "application/x-pickle", ".parquet": "application/x-parquet",
}


def safe_file_name(key: str) -> str:
    """A file name for ``key`` that cannot escape its directory."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._") or "artifact"
    return name[:200]


def _read_source(source: Any) -> tuple[bytes, str | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise UsageError(f"artifact source {path!r} is not a file")
        with open(path, "rb") as f:
            return f.read(), os.path.splitext(path)[1].lower()
    if hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise UsageError("artifact file objects must be opened in binary mode")
        return bytes(data), None
    raise UsageError(f"artifact source must be a path, bytes or a binary file object, not {type(source).__name__}")


def _cas_path(git: GitRepository, sha256: str) -> str:
    prov_dir = git.prov_dir()
    if prov_dir is None:
        raise UsageError("large artifacts need an on-disk repository")
    return os.path.join(prov_dir, "cas", sha256[:2], sha256)


def store_artifact(git: GitRepository, key: str, source: str | os.PathLike[str] | bytes | BinaryIO,
                   media_type: str | None, threshold: int,
                   defer: Callable[[bytes], str | None] | None = None) -> tuple[ArtifactRef, str | None]:
    """Store content; returns its descriptor and the blob id (None when cached).

    ``defer(data)`` may take a blob in the tree to write later (returning its id), or
    return None to have it written now."""
    data, ext = _read_source(source)
    digest = hashlib.sha256(data).hexdigest()
    media = media_type or _MEDIA_TYPES.get(ext or os.path.splitext(key)[1].lower(), "application/octet-stream")
    if len(data) <= threshold or git.prov_dir() is None:
        blob = (defer(data) if defer is not None else None) or git.odb.write("blob", data)
        return ArtifactRef(key=key, sha256=digest, size=len(data), media_type=media, location="tree"), blob
    path = _cas_path(git, digest)
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise WriteError(f"cannot store artifact {key!r} in the local cache: {exc.strerror}") from exc
    return ArtifactRef(key=key, sha256=digest, size=len(data), media_type=media, location="cache"), None


def load_artifact(git: GitRepository, ref: ArtifactRef, blob: str | None, data: bytes | None = None) -> bytes:
    """An artifact's bytes (``data``: as read already), checked against its sha256."""
    if data is not None:
        pass
    elif ref.location == "tree":
        if blob is None:
            raise DataError(f"artifact {ref.key!r} is missing from the run's tree")
        data = git.odb.read_typed(blob, "blob")
    elif ref.location == "cache":
        path = _cas_path(git, ref.sha256)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise DataError(
                f"artifact {ref.key!r} ({ref.size} bytes) lives in the local cache of the clone that "
                "logged it and is not in this one"
            ) from None
    else:
        raise DataError(f"artifact {ref.key!r} is stored at {ref.location}, which git-prov cannot fetch")
    if hashlib.sha256(data).hexdigest() != ref.sha256:
        raise DataError(f"artifact {ref.key!r} does not match its sha256; the stored copy is corrupt")
    return data


def serialize_object(key: str, obj: Any) -> bytes:
    """``obj`` pickled (protocol 4: readable by every Python git-prov runs on)."""
    import pickle

    try:
        return pickle.dumps(obj, protocol=4)
    except Exception as exc:  # pickling raises whatever the object's __reduce__ raises
        raise UsageError(f"artifact {key!r}: cannot serialize {type(obj).__name__} with pickle ({exc}); pass a "
                         "path, bytes or a binary file object instead") from exc


def directory_files(path: str, key: str) -> list[tuple[str, str]]:
    """``(relative posix path, full path)`` of every file below ``path``, sorted; a
    symbolic link is refused (git-prov never follows one)."""
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            if os.path.islink(full):
                raise UsageError(f"artifact {key!r}: {full} is a symbolic link and git-prov never follows one; "
                                 "remove it or log the files it points to")
        out += [(os.path.relpath(os.path.join(root, f), path).replace(os.sep, "/"), os.path.join(root, f))
                for f in sorted(files)]
    if not out:
        raise UsageError(f"artifact {key!r}: directory {path!r} holds no files")
    return out


def write_tree(target: str, files: dict[str, bytes]) -> str:
    """Write ``{relative path: content}`` below ``target``; a path that would leave it
    (absolute, ``..``) is refused, whatever the stored listing says."""
    for rel in files:
        parts = rel.split("/")
        if rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
            raise DataError(f"directory artifact lists {rel!r}, which is not a plain relative path")
    for rel, data in files.items():
        dest = os.path.join(target, *rel.split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = f"{dest}.prov-tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    return target


def directory_digest(path: str) -> tuple[str, int]:
    """A digest over every file (relative path + sha256) below ``path``, and total size."""
    h = hashlib.sha256()
    total = 0
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path).replace(os.sep, "/")
            with open(full, "rb") as f:
                content = f.read()
            total += len(content)
            h.update(f"{rel}\0{hashlib.sha256(content).hexdigest()}\n".encode())
    return "sha256-tree:" + h.hexdigest(), total


def _png(width: int, height: int, channels: int, rows: bytes) -> bytes:
    color = {1: 0, 3: 2, 4: 6}[channels]

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    stride = width * channels
    raw = b"".join(b"\x00" + rows[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def image_bytes(image: Any) -> tuple[bytes, str]:
    """Encode an image given as bytes/path (PNG, JPEG), a PIL image or a uint8 array."""
    if isinstance(image, (bytes, bytearray, str, os.PathLike)):
        data, _ = _read_source(image)
        if data.startswith(b"\x89PNG"):
            return data, "image/png"
        if data.startswith(b"\xff\xd8"):
            return data, "image/jpeg"
        raise UsageError("image bytes must be PNG or JPEG")
    if hasattr(image, "savefig"):  # a matplotlib Figure, or pyplot (its current figure)
        import io

        buf = io.BytesIO()
        image.savefig(buf, format="png")
        return buf.getvalue(), "image/png"
    if hasattr(image, "save") and hasattr(image, "mode"):  # PIL
        import io

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue(), "image/png"
    shape = getattr(image, "shape", None)
    if shape is not None and len(shape) in (2, 3):
        channels = 1 if len(shape) == 2 else shape[2]
        if channels not in (1, 3, 4) or str(getattr(image, "dtype", "")) != "uint8":
            raise UsageError("image arrays must be uint8 with shape H×W, H×W×3 or H×W×4")
        return _png(shape[1], shape[0], channels, image.tobytes()), "image/png"
    raise UsageError(f"cannot make an image from {type(image).__name__}")
