"""Signing the commits prov writes on its own refs, as git signs a commit.

When the user has signing set up, ledger and notes commits carry a signature in the
same ``gpgsig`` header ``git commit -S`` writes, made by the same program with the same
key: ``gpg.format`` ``openpgp`` (``gpg -bsau <user.signingKey>``) or ``ssh``
(``ssh-keygen -Y sign -n git -f <user.signingKey>``). So ``git verify-commit``,
``git log --show-signature`` and ``prov verify --signatures`` check them with git's own
rules (``gpg.ssh.allowedSignersFile`` for ssh).

Whether to sign: ``prov.sign`` when set, else ``commit.gpgSign``. Off (the default),
this costs one cached config read per repository: the commit hook is not slowed.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass

from ..errors import ConfigError, WriteError
from .config import GitConfig

__all__ = ["Signer", "sign_commit", "signer_for"]

_HEADERS = {"sha1": "gpgsig", "sha256": "gpgsig-sha256"}


@dataclass(frozen=True)
class Signer:
    """How this repository signs: ``gpg.format``, the key and the program."""

    format: str  # "openpgp" or "ssh"
    key: str
    program: str

    def sign(self, payload: bytes, namespace: str = "git") -> bytes:
        """An ASCII-armoured detached signature of ``payload`` (ssh: in ``namespace``)."""
        if self.format == "ssh":
            return self._ssh(payload, namespace)
        proc = self._run([self.program, "--status-fd=2", "-bsau", self.key], payload)
        if proc.returncode != 0 or b"[GNUPG:] SIG_CREATED " not in proc.stderr:
            raise WriteError(f"gpg could not sign with key {self.key!r}: {_said(proc)}; check 'user.signingKey' or "
                             "turn signing off for prov: git config prov.sign false")
        return proc.stdout

    def _ssh(self, payload: bytes, namespace: str = "git") -> bytes:
        with tempfile.TemporaryDirectory(prefix="prov-sign-") as folder:
            buffer = os.path.join(folder, "payload")
            with open(buffer, "wb") as f:
                f.write(payload)
            key = self.key
            literal = key.startswith("key::") or key.startswith(("ssh-", "ecdsa-", "sk-"))
            args = [self.program, "-Y", "sign", "-n", namespace, "-f"]
            if literal:  # a public key given inline: the agent holds its private half
                key_file = os.path.join(folder, "key.pub")
                with open(key_file, "w", encoding="utf-8") as f:
                    f.write(key.removeprefix("key::") + "\n")
                args += [key_file, "-U", buffer]
            else:
                args += [os.path.expanduser(key), buffer]
            proc = self._run(args, None)
            if proc.returncode != 0:
                raise WriteError(f"ssh-keygen could not sign with {key!r}: {_said(proc)}; check 'user.signingKey' or "
                                 "turn signing off for prov: git config prov.sign false")
            with open(buffer + ".sig", "rb") as f:
                return f.read()

    def _run(self, args: list[str], payload: bytes | None) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(args, input=payload, capture_output=True, check=False,
                                  stdin=None if payload is not None else subprocess.DEVNULL)
        except OSError as exc:
            raise WriteError(f"cannot run {args[0]} to sign prov's commits: {exc.strerror}; install it or set "
                             f"gpg.{'ssh.' if self.format == 'ssh' else ''}program") from exc


def _said(proc: subprocess.CompletedProcess[bytes]) -> str:
    lines = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines()
             if ln.strip() and not ln.startswith("[GNUPG:]")]
    return lines[-1].strip() if lines else f"exit code {proc.returncode}"


def signer_for(config: GitConfig, *, asked: bool = False) -> Signer | None:
    """The signer git would use for ``git commit -S`` in this repository, when prov's
    commits are to be signed (``prov.sign``, else ``commit.gpgSign``), or whenever
    ``asked`` (``prov export --sign``); else None."""
    setting = "prov.sign" if config.get("prov.sign") is not None else "commit.gpgsign"
    if not asked and not config.get_bool(setting):
        return None
    fmt = (config.get("gpg.format") or "openpgp").lower()
    if fmt not in ("openpgp", "ssh"):
        raise ConfigError(f"gpg.format {fmt!r} is not one git-prov signs with (openpgp, ssh); "
                          "turn signing off for prov: git config prov.sign false")
    key = config.get("user.signingkey")
    if not key:
        if fmt == "ssh":
            raise ConfigError("signing with gpg.format=ssh needs user.signingKey (a key file or 'key::ssh-…'); "
                              "set it, or turn signing off for prov: git config prov.sign false")
        from .ident import committer

        name_email = committer(config)
        key = f"{name_email[0]} <{name_email[1]}>" if name_email else ""
        if not key:
            raise ConfigError("signing needs user.signingKey or a committer identity; set user.signingKey")
    program = (config.get(f"gpg.{fmt}.program") or (config.get("gpg.program") if fmt == "openpgp" else None)
               or ("ssh-keygen" if fmt == "ssh" else "gpg"))
    return Signer(fmt, key, program)


def sign_commit(body: bytes, signer: Signer, object_format: str) -> bytes:
    """``body`` (a commit object) with ``signer``'s signature over it in the header git
    uses for ``object_format`` (``gpgsig`` / ``gpgsig-sha256``), after ``committer``."""
    signature = signer.sign(body).rstrip(b"\n")
    header, sep, message = body.partition(b"\n\n")
    lines = signature.split(b"\n")
    field = _HEADERS[object_format].encode() + b" " + b"\n ".join(lines)
    return header + b"\n" + field + sep + message
