"""Degrade, don't fail (issue 16): one bad note line or one unreadable run record is
left out with a warning naming it, everything else is shown, and ``prov verify`` names
it with the command that repairs it."""

from __future__ import annotations

import os

import gitprov

from .conftest import GitRepo, run_prov, unpack_all


def _made(prov_repo: GitRepo) -> tuple[str, list[str]]:
    repo = gitprov.Repository(prov_repo.path)
    gitprov.capture("HEAD", prov_repo.path)
    ids = []
    for name in ("a", "b"):
        with repo.start_run(name=name, code=False, environment=False) as run:
            ids.append(run.id)
    return prov_repo.git("rev-parse", "HEAD").strip(), ids


def test_a_teammates_plain_note_line_is_skipped_with_a_warning(prov_repo: GitRepo) -> None:
    head, ids = _made(prov_repo)
    prov_repo.git("notes", "--ref=prov", "append", "-m", "reviewed by alice", "HEAD")
    for args in (("show",), ("show", "--json"), ("log",), ("log", "--json"), ("show", head[:12])):
        proc = run_prov(prov_repo.path, *args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("prov: warning:")]
        assert len(warnings) == 1 and f"git notes --ref=prov show {head[:12]}" in warnings[0], proc.stderr
    shown = run_prov(prov_repo.path, "show").stdout
    assert all(run_id[:12] in shown for run_id in ids) and "capture" in shown.lower()
    verify = run_prov(prov_repo.path, "verify")
    assert verify.returncode == 8
    assert f"git notes --ref=prov edit {head[:12]}" in verify.stdout


def test_a_capture_still_works_on_a_commit_with_a_foreign_line(prov_repo: GitRepo) -> None:
    prov_repo.git("notes", "--ref=prov", "add", "-m", "hello", "HEAD")
    proc = run_prov(prov_repo.path, "capture")
    assert proc.returncode == 0, proc.stderr
    assert gitprov.Repository(prov_repo.path).show("HEAD").captures


def test_a_missing_run_record_leaves_that_run_out_of_prov_show(prov_repo: GitRepo) -> None:
    head, ids = _made(prov_repo)
    unpack_all(prov_repo.path)
    gone = ids[0]
    held = _held_in(prov_repo, gone)
    os.remove(prov_repo.path / ".git" / "objects" / held[:2] / held[2:])
    proc = run_prov(prov_repo.path, "show")
    assert proc.returncode == 0, proc.stderr
    assert ids[1][:12] in proc.stdout and gone[:12] not in proc.stdout
    assert "prov: warning:" in proc.stderr and gone[:2] in proc.stderr and "prov verify" in proc.stderr
    data = run_prov(prov_repo.path, "show", "--json")
    assert data.returncode == 0 and '"problems"' in data.stdout


def test_a_ledger_ref_moved_to_a_code_commit_is_named_and_never_written_into(prov_repo: GitRepo) -> None:
    _made(prov_repo)
    head = prov_repo.git("rev-parse", "HEAD").strip()
    prov_repo.git("update-ref", "refs/prov/ledger", head)
    verify = run_prov(prov_repo.path, "verify")
    assert verify.returncode == 8 and "does not point at a git-prov ledger" in verify.stdout, verify.stdout
    assert "git reflog refs/prov/ledger" in verify.stdout
    proc = run_prov(prov_repo.path, "run", "--", "true")
    assert proc.returncode == 5, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "does not point at a git-prov ledger" in proc.stderr
    assert prov_repo.git("rev-parse", "refs/prov/ledger").strip() == head


def test_messages_name_the_next_step(prov_repo: GitRepo) -> None:
    prov_repo.commit("second")
    proc = run_prov(prov_repo.path, "show", "HEAD~1..HEAD")
    assert proc.returncode == 2 and "prov log HEAD~1..HEAD" in proc.stderr and "Traceback" not in proc.stderr
    blob = prov_repo.git("hash-object", "-w", "--stdin", input="x").strip()
    prov_repo.git("update-ref", "refs/notes/prov", blob)
    proc = run_prov(prov_repo.path, "show")
    assert proc.returncode == 5 and "git reflog refs/notes/prov" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _held_in(prov_repo: GitRepo, run_id: str) -> str:
    """The object holding a run's record: its run blob in the log, the record itself
    (its id is the run id) in format 3's tree."""
    ledger = gitprov.Repository(prov_repo.path).store.ledger
    return dict(ledger.run_entries())[run_id].oid if ledger.is_log() else run_id


def _corrupt_one_record(prov_repo: GitRepo) -> tuple[str, list[str]]:
    repo = gitprov.Repository(prov_repo.path)
    ids = []
    for name in ("a", "b", "c"):
        with repo.start_run(name=name, code=False, environment=False) as run:
            ids.append(run.id)
    unpack_all(prov_repo.path)
    bad = ids[1]
    held = _held_in(prov_repo, bad)
    path = prov_repo.path / ".git" / "objects" / held[:2] / held[2:]
    path.chmod(0o644)
    path.write_bytes(b"not zlib at all")
    return bad, ids


def test_a_corrupt_run_is_left_out_of_prov_runs_with_a_warning(prov_repo: GitRepo) -> None:
    bad, ids = _corrupt_one_record(prov_repo)
    for args in (("runs",), ("runs", "--json"), ("runs",)):  # a cold build, then the built index
        proc = run_prov(prov_repo.path, *args)
        assert proc.returncode == 0, proc.stderr
        assert all(i[:12] in proc.stdout for i in ids if i != bad) and bad[:12] not in proc.stdout
        warnings = proc.stderr.strip().splitlines()
        assert len(warnings) == 1 and warnings[0].startswith(f"prov: warning: run {bad[:12]} left out")


def test_a_corrupt_run_through_git_cat_file_is_left_out_too(prov_repo: GitRepo, monkeypatch) -> None:
    from gitprov.index import reading

    bad, ids = _corrupt_one_record(prov_repo)
    monkeypatch.setattr(reading, "BULK_MIN", 1)
    repo = gitprov.Repository(prov_repo.path)
    assert sorted(r.id for r in repo.find_runs()) == sorted(i for i in ids if i != bad)
    assert list(repo.index().skipped()) == [bad]
