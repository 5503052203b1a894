"""The ``git`` binary: the one place prov builds a command line and an environment for it.

Every git that prov runs for its own work starts here (not the user's command of
``prov run``, the demo's, or the detached auto-sync runner, which runs prov):

- the command is ``git [--git-dir DIR] ARGS``. A named git dir replaces ``GIT_DIR`` of
  prov's environment (git lets the option win anyway); a caller that must not pass on
  other variables (``GIT_WORK_TREE``, ``GIT_OBJECT_DIRECTORY``, ...) names them in
  ``drop``, and adds its own in ``extra``. Without a git dir, git finds the repository
  as it would for the user (``-C``, the working directory, ``GIT_DIR``).
- ``GIT_TERMINAL_PROMPT=0`` unless the environment sets it: git never waits for a
  password typed at a terminal.
- ``safe.directory`` is git's own check, never overridden here. git applies it when it
  discovers a repository, not to an explicit git dir: commands given ``git_dir`` (a
  repository prov has already found and opened itself) are not checked, commands that
  let git discover the repository (``-C``) are refused by git in a repository owned
  by another user, as the user's own git commands are.
- a git that cannot be started (not installed, not on ``PATH``) raises ``error``, a
  ``ProvError`` (``ProvError`` itself unless the caller names a subclass), in one line.

``run`` waits for git, ``run_checked`` also turns a failure into ``error`` naming the
command and git's reason, ``start`` leaves git running (``git cat-file --batch``),
``detach`` starts git in a session of its own and never waits for it, and
``output`` is the cheap form for a short command: ``os.posix_spawnp`` where there is one
(importing and running ``subprocess`` costs ~30 ms of a ``prov show`` that has 80 ms in
all, and its fork + exec a few ms per call in a large process; posix_spawn uses vfork).
``subprocess`` is imported only when ``run`` or ``start`` is called (or ``output``
where there is no ``posix_spawnp``).
"""

from __future__ import annotations

import os

from ..errors import ProvError

TYPE_CHECKING = False  # typing and subprocess are not imported at run time: hook path
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = ["detach", "failure", "output", "run", "run_checked", "run_relaying", "start"]


def _command(args: Sequence[str], git_dir: str | None) -> list[str]:
    return ["git", *args] if git_dir is None else ["git", "--git-dir", git_dir, *args]


def _environment(git_dir: str | None, drop: Iterable[str], extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    if git_dir is not None:
        env.pop("GIT_DIR", None)
    for name in drop:
        env.pop(name, None)
    env.setdefault("GIT_TERMINAL_PROMPT", "0")  # never hang on a password prompt
    if extra:
        env.update(extra)
    return env


def _cannot_run(exc: OSError, error: type[ProvError]) -> ProvError:
    return error(f"cannot run git: {exc.strerror or exc}; is git installed and on PATH?")


def output(args: Sequence[str], *, git_dir: str | None = None, drop: Iterable[str] = (),
           extra: Mapping[str, str] | None = None, error: type[ProvError] = ProvError) -> tuple[int, bytes]:
    """``(exit status, stdout bytes)`` of a short git command; stderr is discarded."""
    argv, env = _command(args, git_dir), _environment(git_dir, drop, extra)
    try:
        if not hasattr(os, "posix_spawnp"):
            import subprocess

            proc = subprocess.run(argv, env=env, capture_output=True, check=False)
            return proc.returncode, proc.stdout
        return _spawn(argv, env)
    except OSError as exc:
        raise _cannot_run(exc, error) from exc


def _spawn(argv: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    r, w = os.pipe()
    try:
        pid = os.posix_spawnp(
            argv[0], argv, env,
            file_actions=[(os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)],
        )
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    chunks = []
    try:
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks)


def run(args: Sequence[str], *, git_dir: str | None = None, input: str | bytes | None = None, text: bool = False,
        drop: Iterable[str] = (), extra: Mapping[str, str] | None = None,
        error: type[ProvError] = ProvError) -> subprocess.CompletedProcess:
    """Run git to completion, its stdout and stderr captured (``str`` when ``text``);
    its stdin is ``input``, or nothing. The exit status is the caller's to judge."""
    import subprocess

    try:
        return subprocess.run(_command(args, git_dir), input=input, capture_output=True, text=text, check=False,
                              env=_environment(git_dir, drop, extra),
                              stdin=None if input is not None else subprocess.DEVNULL)
    except OSError as exc:
        raise _cannot_run(exc, error) from exc


def run_relaying(args: Sequence[str], relay: Callable[[bytes], None], *, git_dir: str | None = None,
                 extra: Mapping[str, str] | None = None, error: type[ProvError] = ProvError) -> subprocess.CompletedProcess:
    """Run git to completion, stdin and stdout on /dev/null, handing each piece of its
    stderr to ``relay`` as it comes (git's progress), and keeping all of it (bytes);
    ``extra``: variables added to its environment."""
    import subprocess

    try:
        proc = subprocess.Popen(_command(args, git_dir), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=_environment(git_dir, (), extra))
    except OSError as exc:
        raise _cannot_run(exc, error) from exc
    assert proc.stderr is not None
    said = []
    with proc.stderr:
        while chunk := proc.stderr.read1(1 << 16):
            said.append(chunk)
            relay(chunk)
    return subprocess.CompletedProcess(proc.args, proc.wait(), b"", b"".join(said))


def failure(proc: subprocess.CompletedProcess) -> str:
    """git's reason for failing, in one line: its first ``fatal:``, ``error:`` or
    ``remote:`` line (else the last line; hints skipped), joined with the next when it
    ends in a colon ("unable to access 'URL':" and the reason below), or the exit status."""
    stderr = proc.stderr if isinstance(proc.stderr, str) else (proc.stderr or b"").decode("utf-8", "replace")
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("hint:")]
    at = next((i for i, ln in enumerate(lines) if ln.startswith(("fatal:", "error:", "remote:"))), len(lines) - 1)
    detail = lines[at] if lines else ""
    if detail.endswith(":") and at + 1 < len(lines):
        detail = f"{detail} {lines[at + 1]}"
    return detail.removeprefix("fatal: ").removeprefix("error: ") or f"git exited with {proc.returncode}"


def run_checked(args: Sequence[str], *, what: str | None = None, git_dir: str | None = None,
                input: str | bytes | None = None, text: bool = False, drop: Iterable[str] = (),
                extra: Mapping[str, str] | None = None, error: type[ProvError] = ProvError) -> subprocess.CompletedProcess:
    """``run``, and a nonzero exit raises ``error``: "cannot WHAT: git's reason", where
    ``what`` says what the command was for (by default, the command itself)."""
    proc = run(args, git_dir=git_dir, input=input, text=text, drop=drop, extra=extra, error=error)
    if proc.returncode != 0:
        raise error(f"cannot {what or 'run git ' + ' '.join(args)}: {failure(proc)}")
    return proc


def start(args: Sequence[str], *, git_dir: str | None = None, drop: Iterable[str] = (),
          extra: Mapping[str, str] | None = None, bufsize: int = -1,
          error: type[ProvError] = ProvError) -> subprocess.Popen[bytes]:
    """Start git and leave it running: its stdin and stdout are pipes (bytes), its
    stderr is discarded. The caller closes the pipes and waits for it."""
    import subprocess

    try:
        return subprocess.Popen(_command(args, git_dir), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=_environment(git_dir, drop, extra), bufsize=bufsize)
    except OSError as exc:
        raise _cannot_run(exc, error) from exc


def detach(args: Sequence[str], *, git_dir: str | None = None, drop: Iterable[str] = (),
           log: str | None = None, error: type[ProvError] = ProvError, wrap: Sequence[str] = ()) -> int:
    """Start git in a session of its own and leave it: stdin and stdout are /dev/null,
    stderr is appended to ``log`` (or /dev/null). Returns its pid; nobody here waits
    for it (the caller reaps it, or it outlives the caller). ``wrap``: a command that
    runs the git command line it is given as its last arguments (a shell loop)."""
    argv, env = [*wrap, *_command(args, git_dir)], _environment(git_dir, drop, None)
    try:
        err = os.open(log or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        err = os.open(os.devnull, os.O_WRONLY)
    try:
        if hasattr(os, "posix_spawnp"):
            actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                       (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0), (os.POSIX_SPAWN_DUP2, err, 2)]
            return os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=True)
        import subprocess

        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True).pid
    except OSError as exc:
        raise _cannot_run(exc, error) from exc
    finally:
        os.close(err)
