"""Run tracking: the Run API on real repositories, bad input, crash safety, concurrency."""

from __future__ import annotations

import io
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest

import gitprov
from gitprov import ProvError, UsageError
from tests.conftest import run_git


def ledger_tip(path) -> str:
    return run_git(path, "rev-parse", "refs/prov/ledger").strip()


def test_full_run_round_trip(prov_repo, tmp_path):
    path = prov_repo.path
    (tmp_path / "model.bin").write_bytes(b"weights" * 10)
    (path / "train.csv").write_text("x,y\n1,2\n")
    repo = gitprov.Repository(path)
    with repo.start_run(name="train", experiment="baseline", tags=["smoke"]) as run:
        run.log_hyperparameters({"lr": 0.1, "epochs": 3, "layers": [64, 32]})
        for step in range(250):
            run.log_metric("train/loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"acc": 0.5, "nan": math.nan, "inf": math.inf, "ninf": -math.inf})
        run.log_observation("sample", {"text": "hello"})
        run.log_observation("sample", {"text": "world"})
        run.log_attribute("notes", {"nested": [1, 2, {"a": None}]})
        run.log_tags({"team": "nlp"})
        run.log_artifact("weights", tmp_path / "model.bin")
        run.log_artifact("config.json", io.BytesIO(b'{"a": 1}'))
        run.log_dataset_version("train", path / "train.csv")
        run.log_dataset_version("remote", "s3-etag:abc123")
        run.log_schema({"x": "float"}, {"y": "int"})
        run.log_environment()
        run_id = run.id
        assert run.get_metric("train/loss") == pytest.approx(1 / 250)
    loaded = gitprov.Repository(path).get_run(run_id[:10])
    assert loaded.id == run_id and loaded.status == "finished" and loaded.name == "train"
    assert loaded.get_hyperparameters() == {"lr": 0.1, "epochs": 3, "layers": [64, 32]}
    history = loaded.get_metric_history("train/loss")
    assert [p.step for p in history] == list(range(250))
    assert history[-1].value == pytest.approx(1 / 250)
    assert math.isnan(loaded.get_metric("nan"))
    assert loaded.get_metric("inf") == math.inf and loaded.get_metric("ninf") == -math.inf
    assert [o.value["text"] for o in loaded.get_observations("sample")] == ["hello", "world"]
    assert [o.epoch for o in loaded.get_observations("sample")] == [0, 1]
    assert loaded.get_attribute("notes") == {"nested": [1, 2, {"a": None}]}
    assert loaded.get_tags() == {"smoke": "", "team": "nlp"}
    assert loaded.get_artifact_keys() == ["config.json", "weights"]
    assert loaded.get_artifact("weights") == b"weights" * 10
    target = loaded.download_artifact("weights", tmp_path / "out.bin")
    assert Path(target).read_bytes() == b"weights" * 10
    assert loaded.fetch_artifacts(["config.json"]) == {"config.json": b'{"a": 1}'}
    assert loaded.get_dataset_versions()["train"].path == "train.csv"
    assert loaded.get_schema() == {"input": {"x": "float"}, "output": {"y": "int"}}
    assert loaded.get_code().commit == prov_repo.git("rev-parse", "HEAD").strip()
    assert loaded.get_date_updated() >= loaded.get_date_created()
    # prov show lists the run; git can read everything; the run id is its record's blob id
    shown = gitprov.show("HEAD", path)
    assert [r.run for r in shown.runs] == [run_id]
    # (the ledger is a log: the run's blob, named with its commit, holds its record)
    head = prov_repo.git("rev-parse", "HEAD").strip()
    blob = subprocess.run(["git", "cat-file", "blob", f"refs/prov/ledger:{run_id}^{head}"], cwd=path,
                          capture_output=True, check=True).stdout
    record = msgspec.msgpack.decode(blob)["record"].decode()
    assert prov_repo.git("hash-object", "--stdin", input=record).strip() == run_id
    prov_repo.fsck()
    assert gitprov.Repository(path).verify().ok


def test_run_status_from_with_block(prov_repo):
    repo = gitprov.Repository(prov_repo.path)
    with pytest.raises(RuntimeError), repo.start_run(name="boom") as run:
        run.log_metric("x", 1)
        raise RuntimeError("training diverged")
    assert repo.get_run(run.id).status == "failed"
    plain = repo.start_run(name="manual")
    plain.end("killed")
    assert repo.get_run(plain.id).status == "killed"


def test_hyperparameter_change_needs_overwrite(prov_repo):
    repo = gitprov.Repository(prov_repo.path)
    with repo.start_run() as run:
        run.log_hyperparameter("lr", 0.1)
        run.log_hyperparameter("lr", 0.1)  # same value: fine
        with pytest.raises(UsageError, match="overwrite=True"):
            run.log_hyperparameter("lr", 0.2)
        run.log_hyperparameter("lr", 0.2, overwrite=True)
        assert run.get_hyperparameter("lr") == 0.2


def test_metadata_edits_after_end_rename_clone_delete(prov_repo):
    repo = gitprov.Repository(prov_repo.path)
    with repo.start_run(name="a", experiment="e1", params={"lr": 1}) as run:
        run.log_tag("x", "1")
    stored = repo.get_run(run.id)
    stored.rename("renamed")
    stored.log_tag("reviewed", "yes")
    assert repo.get_run(run.id).name == "renamed"
    assert repo.get_run(run.id).get_tags() == {"x": "1", "reviewed": "yes"}
    with pytest.raises(UsageError, match="has ended"):
        stored.log_metric("loss", 1.0)
    with stored.clone(experiment="e2") as twin:
        assert twin.get_hyperparameters() == {"lr": 1}
        assert twin.record.parent == run.id and twin.experiment == "e2"
    stored.delete()
    assert run.id not in [r.id for r in repo.runs()]
    assert run.id in [r.id for r in repo.runs(include_deleted=True)]
    assert [r.id for r in repo.runs(experiment="e2")] == [twin.id]


BAD_KEYS = [1, None, "", "../x", "a/../b", "/abs", "a\x00b", "tab\tkey", "x" * 251, "$reserved"]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_bad_keys_are_refused_and_nothing_is_written(prov_repo, key):
    repo = gitprov.Repository(prov_repo.path)
    run = repo.start_run()
    run.flush()
    before = ledger_tip(prov_repo.path)
    for call in (
        lambda: run.log_metric(key, 1.0),
        lambda: run.log_hyperparameter(key, 1),
        lambda: run.log_tag(key, "v"),
        lambda: run.log_attribute(key, 1),
        lambda: run.log_artifact(key, b"x"),
    ):
        with pytest.raises(UsageError):
            call()
    run.flush()
    assert ledger_tip(prov_repo.path) == before
    run.end()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r: r.log_hyperparameter("p", object()), "cannot be stored"),
        (lambda r: r.log_hyperparameter("p", math.nan), "only allowed for metrics"),
        (lambda r: r.log_attribute("a", {1: "x"}), "non-string key"),
        (lambda r: r.log_attribute("a", "x" * (2 << 20)), "limit"),
        (lambda r: r.log_metric("m", "high"), "must be a number"),
        (lambda r: r.log_metric("m", 1.0, step="one"), "step must be an integer"),
        (lambda r: r.log_tag("t", 5), "must be a string"),
        (lambda r: r.log_artifact("a", lambda: 1), "cannot serialize function with pickle"),
        (lambda r: r.log_artifact("a", "/no/such/file"), "is not a file"),
        (lambda r: r.end("bogus"), "status must be one of"),
        (lambda r: r.rename("a\x7fb"), "run name 'a.x7fb' must be at most 250 printable characters"),
        (lambda r: r.rename(None), "run name must be a string"),
    ],
)
def test_bad_values_are_refused(prov_repo, call, message):
    run = gitprov.Repository(prov_repo.path).start_run()
    with pytest.raises(UsageError, match=message):
        call(run)
    run.end()


def test_logging_to_ended_run_and_unknown_ids(prov_repo):
    repo = gitprov.Repository(prov_repo.path)
    run = repo.start_run()
    run.end()
    with pytest.raises(UsageError, match="has ended"):
        run.log_metric("m", 1.0)
    with pytest.raises(UsageError, match="has ended"):
        run.end()
    with pytest.raises(UsageError, match="no run with id"):
        repo.get_run("0000abcd")
    with pytest.raises(UsageError, match="not a run id"):
        repo.get_run("xyz")
    assert isinstance(UsageError("x"), ProvError)


def test_large_artifacts_go_to_local_cache(prov_repo, tmp_path):
    repo = gitprov.Repository(prov_repo.path)
    with repo.start_run(artifact_threshold=100) as run:
        ref = run.log_artifact("big.bin", b"x" * 1000)
        small = run.log_artifact("small.txt", b"tiny")
        with pytest.raises(UsageError, match="already exists"):
            run.log_artifact("big.bin", b"y")
    assert ref.location == "cache" and small.location == "tree"
    assert (prov_repo.path / ".git" / "prov" / "cas" / ref.sha256[:2] / ref.sha256).exists()
    assert repo.get_run(run.id).get_artifact("big.bin") == b"x" * 1000


def test_log_image_from_array_like(prov_repo):
    class Image:  # the array protocol log_image relies on (numpy-compatible)
        shape = (2, 3, 3)
        dtype = "uint8"

        def tobytes(self):
            return bytes(range(18))

    with gitprov.Repository(prov_repo.path).start_run() as run:
        ref = run.log_image("sample.png", Image())
        assert run.get_artifact("sample.png").startswith(b"\x89PNG")
    assert ref.media_type == "image/png"


def test_dirty_code_is_stored_as_a_patch_that_rebuilds_the_code(prov_repo, tmp_path):
    path = prov_repo.path
    tracked = next(p for p in path.iterdir() if p.suffix == ".txt")
    tracked.write_text("changed, not committed\n")
    with gitprov.Repository(path).start_run() as run:
        code = run.get_code()
    assert code.is_dirty and code.patch
    clone = tmp_path / "rebuilt"
    run_git(tmp_path, "clone", "-q", str(path), str(clone))
    run_git(clone, "checkout", "-q", code.commit)
    # reachable from the ledger, so git gc keeps it: in the log, the entry <id>#patch of a transaction
    stored = prov_repo.git("log", "--format=", "--raw", "--no-abbrev", "--no-renames", "refs/prov/ledger", "--",
                           f"{run.id}#patch").split()
    assert code.patch in stored
    patch = gitprov.Repository(path).get_run(run.id).get_code_patch()
    run_git(clone, "apply", "-", input=patch.decode())
    assert (clone / tracked.name).read_text() == "changed, not committed\n"


def test_memory_twin_runs(memory_store):
    repo = gitprov.Repository(memory_store)
    with repo.start_run(name="mem", environment=False) as run:
        run.log_metric("m", 2.0)
    assert repo.get_run(run.id).get_metric_history("m")[0].value == 2.0


CRASHING_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import gitprov
    run = gitprov.start_run(name="doomed", spill_points=100)
    run.log_hyperparameter("lr", 0.5)
    run.log_artifact("notes", b"kept")  # written with the next spill's pack
    assert run.get_artifact("notes") == b"kept"
    for step in range(1000):          # spilled (journaled) in chunks of 100
        run.log_metric("loss", float(step), step=step)
    run.log_metric("loss", -1.0, step=1000)  # buffered only: may be lost
    print(run.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_sigkill_mid_run_is_recovered_as_crashed(prov_repo):
    path = prov_repo.path
    proc = subprocess.run([sys.executable, "-c", CRASHING_SCRIPT], cwd=path, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_id = proc.stdout.strip()
    assert os.listdir(path / ".git" / "prov" / "journal")  # the dead writer's journal
    run = gitprov.Repository(path).get_run(run_id)  # opening folds it in
    assert run.status == "crashed"
    assert run.get_hyperparameters() == {"lr": 0.5}
    assert run.get_artifact("notes") == b"kept"
    assert [p.step for p in run.get_metric_history("loss")] == list(range(1000))
    assert not os.listdir(path / ".git" / "prov" / "journal")
    assert [r.run for r in gitprov.show("HEAD", path).runs] == [run_id]
    prov_repo.fsck()


HALF_TRANSACTION_SCRIPT = textwrap.dedent(
    """
    import os, signal
    import gitprov
    from gitprov.store import refs

    compare_and_swap = refs.DiskRefs.compare_and_swap

    def dies_before_the_note(self, name, old, new, message=""):
        if name == "refs/notes/prov":   # the ledger ref has moved; the link has not
            os.kill(os.getpid(), signal.SIGKILL)
        return compare_and_swap(self, name, old, new, message)

    refs.DiskRefs.compare_and_swap = dies_before_the_note
    run = gitprov.start_run(name="half", environment=False)
    run.log_hyperparameter("lr", 0.25)
    run.log_metric("loss", 1.5)
    print(run.id, flush=True)
    run.end()
    """
)


def test_sigkill_between_the_ledger_and_the_note_is_recovered(prov_repo):
    """A run, its entry under its commit and the note's ``runs`` line are one
    transaction (one pack) but two ref updates: a writer killed between them leaves a
    finished run that is listed under its commit already (``prov show`` has it), with
    a note that does not point at the list yet; the next prov call adds that line from
    the journal, and verify reports the gap meanwhile."""
    path = prov_repo.path
    proc = subprocess.run([sys.executable, "-c", HALF_TRANSACTION_SCRIPT], cwd=path, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_id = proc.stdout.strip()
    head = run_git(path, "rev-parse", "HEAD").strip()
    ledger = run_git(path, "ls-tree", "-r", "--name-only", "refs/prov/ledger")
    assert f"{run_id}^{head}" in ledger.split()  # the ledger moved: the run's blob, named with its commit
    note = run_git(path, "notes", "--ref=prov", "show", "HEAD", check=False)
    assert '"kind":"runs"' not in note  # the note did not
    prov_repo.fsck()
    from gitprov.verify import verify_repository

    journal = path / ".git" / "prov" / "journal"
    held = journal / "held.wal"  # keep recovery away while verify looks at the gap
    (journal / os.listdir(journal)[0]).rename(held)
    lock = os.open(held, os.O_RDONLY)
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        report = verify_repository(gitprov.Repository(path))
        shown = [r.run for r in gitprov.show("HEAD", path).runs]
    finally:
        os.close(lock)
    assert report.ok, report.problems
    assert any(head[:12] in w and "has no runs line" in w for w in report.warnings), report.warnings
    assert shown == [run_id]  # listed by the ledger, whatever the note says
    repo = gitprov.Repository(path)  # folds the journal in
    run = repo.get_run(run_id)
    assert run.status == "finished"  # the ledger's final state, not 'crashed'
    assert run.get_hyperparameters() == {"lr": 0.25}
    assert [p.value for p in run.get_metric_history("loss")] == [1.5]
    assert [r.run for r in gitprov.show("HEAD", path).runs] == [run_id]
    assert '"kind":"runs"' in run_git(path, "notes", "--ref=prov", "show", "HEAD")
    assert not os.listdir(journal)
    assert not verify_repository(gitprov.Repository(path)).warnings
    prov_repo.fsck()


LEFT_OPEN_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import gitprov
    repo = gitprov.Repository(".")
    run = repo.start_run(name="open", params={"lr": 0.5}, environment=False)  # never ended
    for step in range(30):
        run.log_metric("loss", 1.0 / (step + 1), step=step)
    run.log_artifact("notes", b"kept")
    print(run.id, flush=True)
    if sys.argv[1] == "fork":  # a forked child that exits normally leaves its parent's run alone
        pid = os.fork()
        if pid == 0:
            sys.exit(0)
        os.waitpid(pid, 0)
        run.log_metric("loss", 0.001, step=30)
    if sys.argv[1] == "raise":
        raise RuntimeError("training diverged")
    if sys.argv[1] == "interrupt":
        raise KeyboardInterrupt
    if sys.argv[1].startswith("sys.exit"):
        sys.exit(eval(sys.argv[1][len("sys.exit"):]))
    """
)


@pytest.mark.parametrize(("ending", "status", "code"), [
    ("exit", "finished", None), ("fork", "finished", None), ("raise", "failed", None), ("interrupt", "killed", None),
    ("sys.exit(1)", "failed", 1), ("sys.exit('bad config')", "failed", 1), ("sys.exit(0)", "finished", 0),
    ("sys.exit(None)", "finished", 0)])
def test_a_run_left_open_is_ended_at_exit_with_what_it_logged(prov_repo, ending, status, code):
    """As MLflow and W&B do: a run never ended keeps everything it logged when the
    process exits through its exit handlers (an uncaught exception too, or ``sys.exit``
    with a failing status, as W&B marks it); only a process that dies without them
    leaves it to crash recovery."""
    path = prov_repo.path
    proc = subprocess.run([sys.executable, "-c", LEFT_OPEN_SCRIPT, ending], cwd=path, capture_output=True, text=True)
    assert (proc.returncode == 0) == (status == "finished"), proc.stderr
    assert code is None or proc.returncode == code
    assert "warning" not in proc.stderr
    assert not os.listdir(path / ".git" / "prov" / "journal")  # ended, not left for recovery
    run = gitprov.Repository(path).get_run(proc.stdout.strip())
    assert run.status == status
    assert run.state.exit_code == code
    assert run.get_hyperparameters() == {"lr": 0.5}
    assert run.get_artifact("notes") == b"kept"
    assert len(run.get_metric_history("loss")) == (31 if ending == "fork" else 30)
    assert [r.run for r in gitprov.show("HEAD", path).runs] == [run.id]


WITH_EXIT_SCRIPT = textwrap.dedent(
    """
    import sys
    import gitprov
    with gitprov.Repository(".").start_run(name="with", environment=False) as run:
        print(run.id, flush=True)
        sys.exit(eval(sys.argv[1]))
    """
)


@pytest.mark.parametrize(("status_arg", "status", "code"), [("0", "finished", 0), ("None", "finished", 0),
                                                            ("3", "failed", 3), ("'no data'", "failed", 1)])
def test_sys_exit_inside_with_ends_the_run_by_its_status(prov_repo, status_arg, status, code):
    """``sys.exit(0)`` in a ``with`` block is a normal end, not a failure; a failing
    status fails the run and is kept as its exit code."""
    proc = subprocess.run([sys.executable, "-c", WITH_EXIT_SCRIPT, status_arg], cwd=prov_repo.path,
                          capture_output=True, text=True)
    assert proc.returncode == code, proc.stderr
    run = gitprov.Repository(prov_repo.path).get_run(proc.stdout.strip())
    assert (run.status, run.state.exit_code) == (status, code)


REUSED_JOURNAL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import gitprov
    repo = gitprov.Repository(".")
    journal = os.path.join(".git", "prov", "journal")
    with repo.start_run(name="first", environment=False) as run:
        run.log_metric("m", 1.0)
    idle = os.listdir(journal)
    assert len(idle) == 1 and os.path.getsize(os.path.join(journal, idle[0])) == 0, idle
    second = repo.start_run(name="second", environment=False, spill_points=10)
    assert os.listdir(journal) == idle  # the same file, a new header
    for step in range(25):
        second.log_metric("m", float(step))
    print(run.id, second.id, flush=True)
    if sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    second.end()
    """
)


@pytest.mark.parametrize("ending", ["exit", "kill"])
def test_a_process_reuses_its_journal_between_runs(prov_repo, ending):
    path = prov_repo.path
    proc = subprocess.run([sys.executable, "-c", REUSED_JOURNAL_SCRIPT, ending], cwd=path, capture_output=True, text=True)
    first, second = proc.stdout.split()
    journal = path / ".git" / "prov" / "journal"
    if ending == "exit":
        assert proc.returncode == 0, proc.stderr
        assert not os.listdir(journal)  # the idle journal is removed at exit
    else:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        assert len(os.listdir(journal)) == 1
    repo = gitprov.Repository(path)
    assert repo.get_run(first).status == "finished"
    run = repo.get_run(second)
    assert run.status == ("finished" if ending == "exit" else "crashed")
    assert len(run.get_metric_history("m")) == (25 if ending == "exit" else 20)  # two spills of 10
    assert not os.listdir(journal)
    prov_repo.fsck()


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, gitprov
    repo = gitprov.Repository(".")
    for i in range(5):
        with repo.start_run(name=f"w{sys.argv[1]}-{i}", environment=False, code=False) as run:
            run.log_hyperparameters({"writer": int(sys.argv[1]), "i": i})
            for s in range(20):
                run.log_metric("m", s * 1.0)
    """
)


def test_four_processes_write_runs_at_once(prov_repo):
    path = prov_repo.path
    procs = [subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(w)], cwd=path, stderr=subprocess.PIPE)
             for w in range(4)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read().decode()
    runs = gitprov.Repository(path).runs()
    assert sorted(r.name for r in runs) == sorted(f"w{w}-{i}" for w in range(4) for i in range(5))
    assert all(len(r.get_metric_history("m")) == 20 for r in runs)
    assert len(gitprov.show("HEAD", path).runs) == 20
    prov_repo.fsck()


def test_repositories_opened_on_one_repository_share_its_object_database(prov_repo, tmp_path):
    """``gitprov.start_run`` opens the repository each time: what the object database
    has read of immutable things (pack indexes, trees) is kept for the process."""
    path = prov_repo.path
    (path / "sub").mkdir()
    first = gitprov.Repository(path).git.odb
    assert gitprov.Repository(path / "sub").git.odb is first
    other = tmp_path / "other"
    run_git(tmp_path, "init", "-q", str(other))
    assert gitprov.Repository(other).git.odb is not first
    ids = []
    for i in range(3):
        with gitprov.start_run(name=f"m{i}", environment=False, path=path) as run:
            run.log_metric("m", float(i))
        ids.append(run.id)
    assert {r.id for r in gitprov.Repository(path).runs()} >= set(ids)


MANY_RUNS_SCRIPT = textwrap.dedent(
    """
    import sys, gitprov
    repo = gitprov.Repository(".")
    for i in range(int(sys.argv[2])):
        with repo.start_run(name=f"p{sys.argv[1]}-{i}", environment=False, code=False) as run:
            run.log_metric("m", float(i))
            run.log_artifact("a", b"x" * 64)
    """
)


def test_many_writers_while_git_repacks_under_them(prov_repo):
    """Six processes writing short runs at once: each run is a pack, and with a low
    ``prov.autoPackLimit`` git's geometric repack keeps rolling them up in the
    background, so a pack can vanish between being listed and being opened by another
    process, more than once for one read; no run may fail or lose data."""
    path = prov_repo.path
    prov_repo.git("config", "prov.autoPackLimit", "2")
    procs = [subprocess.Popen([sys.executable, "-c", MANY_RUNS_SCRIPT, str(w), "80"], cwd=path, stderr=subprocess.PIPE)
             for w in range(6)]
    errors = [p.stderr.read().decode() for p in procs if p.wait(timeout=300) != 0]
    assert not errors, errors[0]
    runs = gitprov.Repository(path).runs()
    assert len(runs) == 480
    assert {r.status for r in runs} == {"finished"}
    assert all(r.get_metric("m") is not None and r.get_artifact("a") == b"x" * 64 for r in runs)
    assert len(gitprov.show("HEAD", path).runs) == 480
    prov_repo.fsck()


def test_a_later_run_on_a_commit_compares_note_ids_and_reads_no_note(prov_repo, monkeypatch):
    """The first run on a commit reads its note and records the pair of the commit and
    the note's blob id (``.git/prov/notes-with-runs``); a later run, in a process of its
    own (here: this process's memory of it cleared), compares ids and reads no note. A
    note rewritten by hand has another id: it is read again and its ``runs`` line put
    back."""
    from gitprov.runs import writer

    path = prov_repo.path
    read: list[bytes] = []
    monkeypatch.setattr(writer, "split_note", lambda data: read.append(data) or data.splitlines())

    def one_run(name: str) -> None:
        writer._pointed.clear()
        gitprov.Repository(path).start_run(name=name, environment=False).end()

    one_run("first")  # the note gets its runs line: nothing to read yet
    one_run("second")
    head = run_git(path, "rev-parse", "HEAD").strip()
    blob = run_git(path, "notes", "--ref=prov", "list", "HEAD").strip()
    record = path / ".git" / "prov" / writer.POINTING_NOTES
    assert record.read_text() == f"{head} {blob}\n" and len(read) == 1
    one_run("third")
    assert len(read) == 1  # the ids compared, the note not read
    run_git(path, "notes", "--ref=prov", "add", "-f", "-m", "by hand", "HEAD")
    one_run("fourth")
    assert len(read) == 2 and read[-1] == b"by hand\n"
    assert '"kind":"runs"' in run_git(path, "notes", "--ref=prov", "show", "HEAD")
    assert len(gitprov.show("HEAD", path).runs) == 4


def test_the_record_of_pointing_notes_stays_small(tmp_path, monkeypatch):
    from gitprov.runs import writer

    monkeypatch.setattr(writer, "_POINTING_MAX", 1024)
    record = tmp_path / "notes-with-runs"
    pairs = [f"{i:040x} {i + 1:040x}\n".encode() for i in range(200)]
    for pair in pairs:
        writer._remember_pair(str(record), pair)
        assert record.stat().st_size <= 512 + len(pair)
    kept = record.read_bytes()
    assert kept.endswith(pairs[-1]) and kept.startswith(b"0") and all(
        line + b"\n" in pairs for line in kept.splitlines())
