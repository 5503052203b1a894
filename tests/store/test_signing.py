"""Signed provenance (issue 16): with git's signing set up, prov's ledger and notes
commits are signed as ``git commit -S`` signs, and git's own verification accepts them.
Real ``ssh-keygen`` keys, real ``git verify-commit``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import gitprov

from ..conftest import GitRepo, run_prov

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")


def make_key(folder: Path, name: str) -> tuple[Path, str]:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key, (folder / f"{name}.pub").read_text().strip()


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    folder = tmp_path / "keys"
    folder.mkdir()
    return {name: make_key(folder, name) for name in ("alice", "mallory")}


def sign_with(repo: GitRepo, key: Path, allowed: Path, *, setting: str = "commit.gpgSign") -> None:
    repo.git("config", "gpg.format", "ssh")
    repo.git("config", "user.signingKey", str(key))
    repo.git("config", "gpg.ssh.allowedSignersFile", str(allowed))
    repo.git("config", setting, "true")


def allowed_signers(tmp_path: Path, *entries: tuple[str, str]) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text("".join(f'{who} namespaces="git" {pub}\n' for who, pub in entries))
    return path


def test_ledger_and_notes_commits_are_signed_and_git_verifies_them(repo: GitRepo, keys, tmp_path: Path) -> None:
    key, pub = keys["alice"]
    sign_with(repo, key, allowed_signers(tmp_path, ("test@example.com", pub)))
    gitprov.init(repo.path, hooks=False)  # its ledger commit is signed too
    prov_repo = repo
    repo = gitprov.Repository(prov_repo.path)
    gitprov.capture("HEAD", prov_repo.path)
    with repo.start_run(name="r", code=False, environment=False) as run:
        run.log_metric("loss", 0.5)
    for ref in ("refs/prov/ledger", "refs/notes/prov"):
        proc = subprocess.run(["git", "verify-commit", ref], cwd=prov_repo.path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert 'Good "git" signature' in proc.stderr
    prov_repo.fsck()
    proc = run_prov(prov_repo.path, "verify", "--signatures")
    assert proc.returncode == 0, proc.stdout
    assert "signatures:" in proc.stdout and "unsigned" not in proc.stdout


def test_unsigned_and_foreign_signatures_are_problems_for_verify_signatures(prov_repo: GitRepo, keys,
                                                                            tmp_path: Path) -> None:
    alice_pub, mallory = keys["alice"][1], keys["mallory"][0]
    allowed = allowed_signers(tmp_path, ("test@example.com", alice_pub))
    repo = gitprov.Repository(prov_repo.path)
    with repo.start_run(name="unsigned", code=False, environment=False):
        pass
    sign_with(prov_repo, mallory, allowed, setting="prov.sign")
    with gitprov.Repository(prov_repo.path).start_run(name="mallory", code=False, environment=False):
        pass
    assert run_prov(prov_repo.path, "verify").returncode == 0  # records are fine
    proc = run_prov(prov_repo.path, "verify", "--signatures")
    assert proc.returncode == 8
    assert "unsigned" in proc.stdout and "not an allowed signer" in proc.stdout


def test_prov_sign_false_turns_signing_off_for_prov_only(prov_repo: GitRepo, keys, tmp_path: Path) -> None:
    key, pub = keys["alice"]
    sign_with(prov_repo, key, allowed_signers(tmp_path, ("test@example.com", pub)))
    prov_repo.git("config", "prov.sign", "false")
    with gitprov.Repository(prov_repo.path).start_run(name="r", code=False, environment=False):
        pass
    body = prov_repo.git("cat-file", "commit", "refs/prov/ledger")
    assert "gpgsig" not in body


def test_a_signing_failure_is_one_line_and_writes_nothing(prov_repo: GitRepo, tmp_path: Path) -> None:
    prov_repo.git("config", "gpg.format", "ssh")
    prov_repo.git("config", "user.signingKey", str(tmp_path / "no-such-key"))
    prov_repo.git("config", "commit.gpgSign", "true")
    before = prov_repo.git("rev-parse", "refs/prov/ledger").strip()
    proc = run_prov(prov_repo.path, "run", "--", "true")
    assert proc.returncode == 7, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len([ln for ln in lines if ln.startswith("prov: error")]) == 1 and "prov.sign false" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert prov_repo.git("rev-parse", "refs/prov/ledger").strip() == before


# -- signed round trip: A signs, B requires signatures, C's and Mallory's are refused ----------

def _signed_clone(remote: GitRepo, path: Path, key: Path | None, allowed: Path) -> GitRepo:
    from tests.conftest import run_git

    run_git(path.parent, "clone", "-q", str(remote.path), str(path))
    repo = GitRepo(path)
    repo.git("config", "gpg.ssh.allowedSignersFile", str(allowed))
    if key is not None:
        sign_with(repo, key, allowed)
    assert run_prov(path, "init", "--no-hooks", "--no-pull").returncode == 0
    return repo


def test_signed_round_trip_with_require_signed(make_repo, keys, tmp_path: Path) -> None:
    from tests.exchange.clones import make_run, seed_bare

    remote = seed_bare(make_repo)
    alice, alice_pub = keys["alice"]
    allowed = allowed_signers(tmp_path, ("test@example.com", alice_pub))
    a = _signed_clone(remote, tmp_path / "a", alice, allowed)
    first = make_run(a.path, "signed by alice")
    assert run_prov(a.path, "push").returncode == 0

    b = _signed_clone(remote, tmp_path / "b", None, allowed)
    proc = run_prov(b.path, "pull", "--require-signed")
    assert proc.returncode == 0, proc.stderr
    assert first in run_prov(b.path, "runs", "--json").stdout

    c = _signed_clone(remote, tmp_path / "c", None, allowed)  # signs nothing
    assert run_prov(c.path, "pull").returncode == 0
    make_run(c.path, "unsigned")
    assert run_prov(c.path, "push").returncode == 0
    before = b.git("rev-parse", "refs/prov/ledger").strip()
    proc = run_prov(b.path, "pull", "--require-signed")
    assert proc.returncode == 5 and "not signed by an allowed signer" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert b.git("rev-parse", "refs/prov/ledger").strip() == before
    b.git("config", "prov.pull.requireSigned", "true")  # the setting does the same
    assert run_prov(b.path, "pull").returncode == 5
    assert run_prov(b.path, "pull", "--no-require-signed").returncode == 0  # the user's explicit choice
    assert "refused on pull" not in run_prov(b.path, "verify").stdout


def test_a_signature_by_a_key_outside_the_allowed_signers_is_refused(make_repo, keys, tmp_path: Path) -> None:
    from tests.exchange.clones import make_run, seed_bare

    remote = seed_bare(make_repo)
    alice_pub, mallory = keys["alice"][1], keys["mallory"][0]
    allowed = allowed_signers(tmp_path, ("test@example.com", alice_pub))
    m = _signed_clone(remote, tmp_path / "m", mallory, allowed)
    make_run(m.path, "signed by mallory")
    assert run_prov(m.path, "push").returncode == 0
    b = _signed_clone(remote, tmp_path / "b", None, allowed)
    proc = run_prov(b.path, "pull", "--require-signed")
    assert proc.returncode == 5 and "not signed by an allowed signer" in proc.stderr, proc.stderr
    verify = run_prov(b.path, "verify")
    assert "refused on pull" in verify.stdout
