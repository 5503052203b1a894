"""``verify_repository`` called directly: what it counts, and each problem and warning it
reports (tampered notes through the CLI: tests/test_schema.py)."""

from __future__ import annotations

import gitprov
from gitprov.store.ledger import run_dir
from gitprov.store.prov_store import ProvStore
from gitprov.verify import verify_repository


def _prov(repo) -> gitprov.Repository:
    gitprov.init(repo.path, hooks=False)
    return gitprov.Repository(repo.path)


def _run(repo: gitprov.Repository, name: str = "r", **kw) -> str:
    with repo.start_run(name, environment=False, **kw) as run:
        run.log_metric("loss", 0.5)
    repo.flush_links()
    return run.id


def test_a_fresh_repository_warns_that_the_refs_do_not_exist(make_repo) -> None:
    report = verify_repository(ProvStore.open(make_repo().path))
    assert report.ok
    assert report.warnings == ["refs/notes/prov does not exist yet", "refs/prov/ledger does not exist yet"]
    assert (report.notes, report.records, report.runs) == (0, 0, 0)


def test_counts_notes_records_runs_and_lexicons(make_repo) -> None:
    repo = _prov(make_repo())
    repo.capture()
    _run(repo, "a")
    _run(repo, "b")
    report = verify_repository(repo.store)
    assert report.ok, report.problems
    assert (report.notes, report.records, report.runs) == (1, 3, 2)  # a capture and two run links
    assert report.lexicons == [gitprov.Repository(repo.work_tree).show().schema]
    assert report.warnings == []


def test_accepts_a_repository_as_well_as_a_store(make_repo) -> None:
    repo = _prov(make_repo())
    _run(repo)
    assert verify_repository(repo).runs == verify_repository(repo.store).runs == 1


def test_a_run_whose_id_is_not_its_record_hash_is_a_problem(make_repo) -> None:
    repo = _prov(make_repo())
    run_id = _run(repo)
    repo.ledger.apply({f"{run_dir(run_id)}/record": b'{"forged":true}'}, "test: forge a record")
    problems = verify_repository(repo.store).problems
    assert problems[0] == f"run {run_id[:12]}: id does not match its record's content"
    # the index cannot decode it either and says so (issue 16: one problem, once)
    assert all(run_id[:12] in p for p in problems)


def test_a_run_without_a_record_is_a_problem(make_repo) -> None:
    repo = _prov(make_repo())
    run_id = _run(repo)
    repo.ledger.apply({f"{run_dir(run_id)}/record": None}, "test: drop the record")
    problems = verify_repository(repo.store).problems
    assert problems[0] == f"run {run_id[:12]}: no record"
    assert all(run_id[:12] in p for p in problems)


def test_a_note_line_that_is_not_a_record_is_a_problem(make_repo) -> None:
    raw = make_repo()
    repo = _prov(raw)
    repo.capture()
    raw.git("notes", "--ref=prov", "append", "-m", "reviewed by alice", "HEAD")
    report = verify_repository(repo.store)
    assert not report.ok
    assert len(report.problems) == 1 and "line" in report.problems[0]
    assert report.records == 1  # the good line still counts


def test_an_unlinked_run_is_a_warning_naming_it(make_repo) -> None:
    raw = make_repo()
    repo = _prov(raw)
    run_id = _run(repo)
    raw.git("update-ref", "-d", "refs/notes/prov")  # the notes ref reset: the link is gone
    report = verify_repository(repo.store)
    assert report.ok
    assert any(w.startswith(f"run {run_id[:12]}: the note of its commit") for w in report.warnings), report.warnings


def test_many_unlinked_runs_are_one_warning(make_repo) -> None:
    raw = make_repo()
    repo = _prov(raw)
    ids = [_run(repo, f"r{i}") for i in range(7)]
    raw.git("update-ref", "-d", "refs/notes/prov")
    unlinked = [w for w in verify_repository(repo.store).warnings if "do not link them" in w]
    assert len(unlinked) == 1 and unlinked[0].startswith(f"{len(ids)} runs (")


def test_lineage_naming_an_unknown_run_is_a_dangling_reference(make_repo) -> None:
    repo = _prov(make_repo())
    with repo.start_run("consumer", environment=False) as run:
        gitprov.lineage.of(run).with_input_artifact("abcd" * 10, "model.pt").register()
    repo.flush_links()
    warnings = verify_repository(repo.store).warnings
    assert [w for w in warnings if "dangling" in w] == [
        f"run {run.id[:12]}: lineage input names run {'abcd' * 3}, which is not in the ledger "
        "(a dangling reference; fetch it or ignore)"
    ]


def test_a_note_on_a_missing_commit_is_a_warning_with_the_prune_command(make_repo) -> None:
    raw = make_repo()
    repo = _prov(raw)
    ghost = "1" * len(raw.git("rev-parse", "HEAD").strip())
    repo.notes.add({ghost: [b"x"]}, "test: a note on a commit that is not here")
    report = verify_repository(repo.store)
    assert any("git notes --ref=prov prune" in w and ghost[:12] in w for w in report.warnings)
