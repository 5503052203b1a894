"""``prov sync``'s first line: said on stderr (on a terminal, or with ``--progress``)
from the run index, before the tracker's library is imported or its server contacted;
never on stdout, never with credentials."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_prov

#: a ``prov`` process that says on stderr when mlflow is first imported
_MARK_MLFLOW_IMPORT = """
import sys
from importlib.abc import MetaPathFinder
from importlib.machinery import PathFinder

class Mark(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "mlflow":
            return None
        spec = PathFinder.find_spec(name, path)
        run = spec.loader.exec_module

        def exec_module(module):
            sys.stderr.write("<mlflow imported>\\n")
            sys.stderr.flush()
            run(module)

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Mark())
from gitprov.cli.entry import main
sys.exit(main(sys.argv[1:]))
"""


def test_progress_says_what_is_to_sync_before_mlflow_is_imported(prov_path: Path, mlflow_db: Path, make_run,
                                                                  tmp_path: Path) -> None:
    make_run(prov_path)
    make_run(prov_path, "second")
    uri = f"sqlite:///{mlflow_db}"
    proc = subprocess.run([sys.executable, "-c", _MARK_MLFLOW_IMPORT, "sync", "mlflow", "--tracking-uri", uri,
                           "--artifact-location", str(tmp_path / "a"), "--progress"],
                          cwd=prov_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == f"prov: sync mlflow: 2 runs to compare; syncing what changed to {uri}"
    assert "<mlflow imported>" in lines[1:]  # the sync did need MLflow, after the line
    assert proc.stdout.splitlines()[-1].startswith("synced to mlflow")
    dry = run_prov(prov_path, "sync", "mlflow", "--tracking-uri", uri, "--dry-run", "--progress",
                   "--run", proc.stdout.splitlines()[1][:12])
    assert dry.returncode == 0, dry.stderr
    assert dry.stderr == f"prov: sync mlflow: 1 run to compare; checking what would sync to {uri}\n"


def test_json_stdout_stays_pure_json_with_the_line_on_stderr(prov_path: Path, mlflow_db: Path, make_run,
                                                             tmp_path: Path) -> None:
    run_id = make_run(prov_path)
    proc = run_prov(prov_path, "sync", "mlflow", "--tracking-uri", f"sqlite:///{mlflow_db}", "--artifact-location",
                    str(tmp_path / "a"), "--json", "--progress")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["runs"][0]["run_id"] == run_id
    assert proc.stderr.startswith("prov: sync mlflow: 1 run to compare;")


def test_off_a_terminal_nothing_is_said_unless_asked(prov_path: Path, mlflow_db: Path, make_run) -> None:
    make_run(prov_path)
    proc = run_prov(prov_path, "sync", "mlflow", "--tracking-uri", f"sqlite:///{mlflow_db}", "--dry-run")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def _on_a_terminal(cwd: Path, *args: str) -> tuple[int, str, str]:
    """``prov`` with stderr on a pseudo-terminal and stdout on a pipe: exit code, stderr, stdout."""
    primary, secondary = pty.openpty()
    exe = Path(sys.executable).with_name("prov")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "gitprov.cli.entry"]
    proc = subprocess.Popen([*cmd, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=secondary,
                            stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "80"})
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 1 << 16)
        except OSError:  # the other end closed (Linux: EIO)
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode()  # type: ignore[union-attr]
    proc.wait()
    os.close(primary)
    return proc.returncode, b"".join(chunks).decode(errors="replace"), out


def test_on_a_terminal_the_line_comes_unasked_and_no_progress_silences_it(prov_path: Path, mlflow_db: Path,
                                                                          make_run) -> None:
    make_run(prov_path)
    uri = f"sqlite:///{mlflow_db}"
    code, err, out = _on_a_terminal(prov_path, "sync", "mlflow", "--tracking-uri", uri, "--dry-run")
    assert code == 0, err
    assert err.startswith(f"prov: sync mlflow: 1 run to compare; checking what would sync to {uri}\r\n")
    assert "syncing to mlflow" in err  # then the progress bar
    assert out.splitlines()[-1].startswith("would sync to mlflow")
    code, err, out = _on_a_terminal(prov_path, "sync", "mlflow", "--tracking-uri", uri, "--dry-run", "--no-progress")
    assert code == 0 and err == "", err


def test_the_line_never_shows_credentials_and_an_unreachable_tracker_still_ends_in_one_error(
        prov_path: Path, make_run) -> None:
    from _harness import free_port

    make_run(prov_path)
    port = free_port()  # a closed port
    proc = run_prov(prov_path, "sync", "mlflow", "--tracking-uri", f"http://alice:s3cret-token@127.0.0.1:{port}",
                    "--retries", "0", "--progress")
    assert proc.returncode == 10, proc.stderr
    assert "s3cret" not in proc.stderr and "alice" not in proc.stderr and proc.stdout == ""
    first, error = proc.stderr.splitlines()
    assert first == f"prov: sync mlflow: 1 run to compare; syncing what changed to http://127.0.0.1:{port}"
    assert error.startswith(f"prov: error: cannot reach MLflow at http://127.0.0.1:{port}: connection refused")
