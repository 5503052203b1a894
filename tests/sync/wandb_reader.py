"""A reader for W&B's offline run files (``run-<id>.wandb``), for tests.

The file is W&B's "leveldb log" variant: a 7-byte header (``:W&B``, magic 0xBEE1
little-endian, version 0), then 32 KiB blocks of records, each with a 7-byte header
(CRC-32C: 4 bytes, length: 2 bytes LE, type: 1 byte; 1 full, 2 first, 3 middle,
4 last). A block tail shorter than a header is zero padding. Joined payloads are
``wandb_internal_pb2.Record`` protobufs.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_payloads(path: Path) -> list[bytes]:
    data = path.read_bytes()
    ident, magic, version = data[:4], struct.unpack("<H", data[4:6])[0], data[6]
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), (ident, hex(magic), version)
    out: list[bytes] = []
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:  # zero padding up to the end of the block
            pos += left
            continue
        body = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            out.append(body)
        elif kind == FIRST:
            pending = body
        elif kind == MIDDLE:
            pending += body
        elif kind == LAST:
            out.append(pending + body)
            pending = b""
        else:
            raise ValueError(f"unknown record type {kind} at {pos}")
    return out


def read_run(path: Path, wait: float = 60.0) -> dict[str, Any]:
    """What the offline run file holds: run (id, tags, git), config, history, summary,
    artifacts. ``wandb.finish()`` can return before W&B's service has written the file
    to its end, so the file is read again until it holds the run's ``exit`` record (for
    at most ``wait`` seconds: a bound, not a timing check)."""
    import time

    deadline = time.monotonic() + wait
    while True:
        try:
            run = _read_run(path)
        except Exception:  # noqa: BLE001 - a record cut short while W&B is still writing
            run = None
        if (run is not None and run["exit_code"] is not None) or time.monotonic() > deadline:
            return run if run is not None else _read_run(path)
        time.sleep(0.05)


def _read_run(path: Path) -> dict[str, Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    run: dict[str, Any] = {"history": [], "config": {}, "summary": {}, "artifacts": [], "exit_code": None}
    for payload in read_payloads(path):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.update(id=r.run_id, project=r.project, name=r.display_name, tags=list(r.tags),
                       commit=r.git.commit, remote=r.git.remote_url, group=r.run_group, host=r.host,
                       start_ms=r.start_time.ToMilliseconds(), runtime=r.runtime)
            for item in r.config.update:
                run["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            run["history"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                   for item in record.history.item})
        elif kind == "summary":
            for item in record.summary.update:
                run["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "artifact":
            a = record.artifact
            run["artifacts"].append({"name": a.name, "type": a.type, "digest": a.digest,
                                     "files": {e.path: e.digest for e in a.manifest.contents},
                                     "refs": {e.path: e.ref for e in a.manifest.contents if e.ref},
                                     "metadata": json.loads(a.metadata or "{}"), "aliases": list(a.aliases)})
        elif kind == "files":
            run.setdefault("files", []).extend(f.path for f in record.files.files)
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    return run
