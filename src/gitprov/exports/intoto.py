"""in-toto / SLSA: an in-toto Statement v1 per run, whose subjects are the run's
outputs with a sha256 digest and whose predicate is SLSA Provenance v1, built and
checked with ``in-toto-attestation``'s bindings; optionally each in a DSSE envelope
signed with the user's ssh key (``ssh-keygen -Y sign``, namespace ``in-toto``).

Written as JSON Lines, one statement (or envelope) a line, in run id order. A run with
no output that has a sha256 digest (only models without digests, or nothing) has no
subject to attest, so no statement.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any, BinaryIO

from .._version import __version__
from ..errors import ConfigError, UsageError
from .extras import require

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..runs.run import Run
    from ..store.prov_store import ProvStore
    from .graph import ExportGraph

__all__ = ["BUILD_TYPE", "BUILDER_ID", "PAYLOAD_TYPE", "SIGNING_NAMESPACE", "intoto_statements", "pae",
           "write_intoto"]

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://git-prov.dev/slsa/run/v1"
BUILDER_ID = "https://git-prov.dev/builder/git-prov"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
SIGNING_NAMESPACE = "in-toto"


def _sha256_of(info: dict[str, Any]) -> str | None:
    """The hex sha256 an entity carries (an artifact's, or a ``sha256:`` digest)."""
    if info.get("sha256"):
        return str(info["sha256"])
    digest = str(info.get("digest") or "")
    return digest.removeprefix("sha256:") if digest.startswith("sha256:") else None


def _descriptor(node: str, info: dict[str, Any]) -> dict[str, Any] | None:
    """A resource descriptor (as JSON) of an entity: name, digests, annotations."""
    kind = info.get("kind")
    digest: dict[str, str] = {}
    if kind == "commit":
        digest["gitCommit"] = info["commit"]
    elif kind == "patch":
        digest["gitBlob"] = info["blob"]
    elif _sha256_of(info):
        digest["sha256"] = _sha256_of(info)  # type: ignore[assignment]
    out: dict[str, Any] = {"name": node}
    if digest:
        out["digest"] = digest
    if kind == "commit" and info.get("repo_url"):
        out["uri"] = f"git+{info['repo_url']}@{info['commit']}"
    if kind == "model" and info.get("version"):
        out["annotations"] = {"version": info["version"]}
    if kind == "artifact" and info.get("media_type"):
        out["mediaType"] = info["media_type"]
    return out


def _predicate(run: Run, graph: ExportGraph, patch_sha256: str | None) -> dict[str, Any]:
    import msgspec

    record, state = run.record, run.state
    me = f"run:{run.id}"
    deps = []
    for edge in graph.edges_of(run.id):
        if edge.relation == "used" and edge.subject == me:
            desc = _descriptor(edge.object, graph.entities.get(edge.object, {}))
            if desc is not None:
                if edge.role == "patch" and patch_sha256:
                    desc["digest"]["sha256"] = patch_sha256
                if edge.role:
                    desc.setdefault("annotations", {})["role"] = edge.role
                deps.append(desc)
        elif edge.relation == "wasInformedBy" and edge.subject == me:
            deps.append({"name": edge.object, "annotations": {"role": edge.role or "run"}})
    deps.sort(key=lambda d: (d["name"], json.dumps(d, sort_keys=True)))
    external: dict[str, Any] = {"name": state.name, "params": {**record.params, **state.params}}
    if record.command:
        external["command"] = list(record.command)
    if state.experiment:
        external["experiment"] = state.experiment
    code = run.get_code()
    if code.exec_path:
        external["entryPoint"] = code.exec_path
    internal: dict[str, Any] = {"gitprovRunId": run.id, "lexicon": record.schema.lexicon, "status": state.status}
    if record.environment is not None:
        internal["environment"] = msgspec.to_builtins(record.environment)
    metadata: dict[str, Any] = {"invocationId": run.id, "startedOn": record.created}
    if state.ended:
        metadata["finishedOn"] = state.ended
    agent = graph.agents.get(graph.run_agents.get(run.id, ""))
    builder: dict[str, Any] = {"id": BUILDER_ID, "version": {"git-prov": __version__}}
    if agent:
        internal["recordedBy"] = dict(agent)
    return {
        "buildDefinition": {"buildType": BUILD_TYPE, "externalParameters": external,
                            "internalParameters": internal, "resolvedDependencies": deps},
        "runDetails": {"builder": builder, "metadata": metadata},
    }


def check_provenance(predicate: dict[str, Any]) -> None:
    """``predicate`` parsed into the SLSA Provenance v1 protobuf (unknown fields and
    wrong types refused) with its required fields and every descriptor valid."""
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor

    pb = json_format.ParseDict(predicate, provenance_pb2.Provenance())
    if not pb.build_definition.build_type:
        raise ValueError("buildDefinition.buildType required")
    if not pb.build_definition.HasField("external_parameters"):
        raise ValueError("buildDefinition.externalParameters required")
    if not pb.run_details.builder.id:
        raise ValueError("runDetails.builder.id required")
    for dep in pb.build_definition.resolved_dependencies:
        ResourceDescriptor.copy_from_pb(dep).validate()


def intoto_statements(store: ProvStore, graph: ExportGraph) -> list[dict[str, Any]]:
    """The validated statements of ``graph`` (as JSON objects), in run id order."""
    return list(_statements(store, graph))


def _statements(store: ProvStore, graph: ExportGraph) -> Iterator[dict[str, Any]]:
    """``intoto_statements``, each made when it is asked for."""
    require("in_toto_attestation", "in-toto export")
    from google.protobuf import json_format
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    for run_id, run in graph.runs.items():
        me = f"run:{run_id}"
        subjects = []
        for edge in graph.edges_of(run_id):
            if edge.relation == "wasGeneratedBy" and edge.object == me:
                sha = _sha256_of(graph.entities.get(edge.subject, {}))
                if sha:
                    subjects.append((edge.subject, sha))
        if not subjects:
            continue
        patch_sha = None
        code = run.get_code()
        if code.patch:
            data = store.git.odb.read_typed(code.patch, "blob")
            patch_sha = hashlib.sha256(data).hexdigest() if data is not None else None
        predicate = _predicate(run, graph, patch_sha)
        check_provenance(predicate)
        statement = Statement([ResourceDescriptor(name=name, digest={"sha256": sha}).pb
                               for name, sha in sorted(set(subjects))], PREDICATE_TYPE, predicate)
        statement.validate()
        # the predicate as built: protobuf's Struct would turn every integer into a float
        yield {"_type": statement.pb.type, "predicateType": statement.pb.predicate_type, "predicate": predicate,
               "subject": [json_format.MessageToDict(s) for s in statement.pb.subject]}


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _envelope(payload: bytes, signer: Any, keyid: str) -> dict[str, Any]:
    signature = signer.sign(pae(PAYLOAD_TYPE, payload), SIGNING_NAMESPACE)
    return {"payload": base64.b64encode(payload).decode("ascii"), "payloadType": PAYLOAD_TYPE,
            "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}]}


def _ssh_signer(store: ProvStore) -> tuple[Any, str]:
    """The user's ssh signer (``gpg.format=ssh``, ``user.signingKey``) and its key id
    (the key's SHA256 fingerprint)."""
    import os
    import subprocess

    from ..store.signing import signer_for

    signer = signer_for(store.git.config, asked=True)
    if signer is None or signer.format != "ssh":
        raise ConfigError("--sign signs with your ssh key: set git config gpg.format ssh and user.signingKey "
                          "(a key file), then export again")
    key = signer.key.removeprefix("key::")
    try:
        if key.startswith(("ssh-", "ecdsa-", "sk-")):
            proc = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=key.encode(), capture_output=True,
                                  check=False)
        else:
            proc = subprocess.run(["ssh-keygen", "-l", "-f", os.path.expanduser(key)], capture_output=True,
                                  check=False, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise ConfigError(f"cannot run ssh-keygen to sign: {exc.strerror}; install OpenSSH") from exc
    parts = proc.stdout.decode("utf-8", "replace").split()
    return signer, parts[1] if proc.returncode == 0 and len(parts) > 1 else ""


def write_intoto(store: ProvStore, graph: ExportGraph, stream: BinaryIO, *, sign: bool = False) -> int:
    """The statements as JSON Lines to ``stream`` (keys sorted, compact), each written as
    soon as it is made; ``sign``: DSSE envelopes. The number written."""
    signer: Any = None
    keyid = ""
    count = 0
    for statement in _statements(store, graph):
        if not sign:
            stream.write(_dumps(statement) + b"\n")
        else:
            if signer is None:  # before the first line: a missing key writes nothing
                signer, keyid = _ssh_signer(store)
            stream.write(_dumps(_envelope(_dumps(statement), signer, keyid)) + b"\n")
        count += 1
    if sign and not count:
        raise UsageError("nothing to sign: none of the selected runs has an output with a sha256 digest")
    return count
