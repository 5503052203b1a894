"""The hook scripts git runs: small POSIX ``sh`` shims around ``prov hooks run``.

An installed shim names the absolute interpreter recorded at install time, so it works
from GUI clients and shells where the virtualenv is not active. It runs a chained
foreign hook first (same arguments, same stdin; its exit code still counts), then
git-prov, and exits 0 whatever git-prov does, unless git-prov reports a strict-mode
failure (exit 97 from the interpreter). A missing interpreter or an uninstalled
git-prov prints one line and lets git carry on.

The top-level ``hooks/`` directory of the project holds ``render(name)`` for every
hook (interpreter found on ``PATH``); ``python -m gitprov.githooks.shims DIR``
regenerates it and a test fails when it drifts.
"""

from __future__ import annotations

import os
import re
import sys

from . import HOOKS, STDIN_HOOKS

__all__ = ["CHAINED_SUFFIX", "MARKER", "STRICT_FAILURE", "interpreter_of", "is_shim", "render"]

#: The line that identifies a git-prov shim (install/uninstall/status look for it).
MARKER = "# git-prov hook shim"
#: A foreign hook moved aside by install lives next to the shim under this suffix.
CHAINED_SUFFIX = ".prov-chained"
#: Exit status the interpreter uses to ask the shim to fail the hook (strict mode).
STRICT_FAILURE = 97

# Runs inside the interpreter; no single quotes (it sits in a single-quoted sh word).
_PYTHON_CODE = """import sys
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]
try:
    from gitprov.cli.entry import main
except Exception as exc:
    sys.stderr.write("prov: provenance not captured: cannot import git-prov with %s (%s); reinstall it or run: prov hooks uninstall\\n" % (sys.executable, exc))
    sys.exit(0)
sys.exit(97 if main(["hooks", "run"] + sys.argv[1:]) else 0)"""

_TEMPLATE = """#!/bin/sh
{marker}: {hook}
# Written by 'prov hooks install'; 'prov hooks uninstall' removes it and puts back the
# hook it chained, if any. git-prov never blocks git unless strict mode is on: see
# docs/hooks.md. Set PROV_HOOKS_DISABLED=1 to skip git-prov for one command.
{python_line}
hook={hook}
chained="$0{suffix}"
code='{code}'
status=0
if [ -x "$chained" ]; then
{run_chained}
	status=$?
	{stop_on_failure}
fi
if [ ! -x "$PROV_PYTHON" ]; then
	echo "prov: provenance not captured: interpreter $PROV_PYTHON is missing; run 'prov hooks install' again from the environment that has git-prov" >&2
	case "${{PROV_STRICT:-$(git config --bool prov.strict 2>/dev/null)}}" in
	1|true|yes|on) [ "$status" -eq 0 ] && status=1 ;;
	esac
	exit "$status"
fi
{run_prov}
rc=$?
if [ "$rc" -eq {strict} ]; then
	[ "$status" -eq 0 ] && status=1
elif [ "$rc" -ne 0 ]; then
	echo "prov: provenance not captured: $PROV_PYTHON exited with status $rc" >&2
fi
exit "$status"
"""

_PYTHON_CALL = '"$PROV_PYTHON" -c "$code" "$hook" "$@"'


def _sh_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def render(hook: str, python: str | None = None) -> str:
    """The shim for ``hook`` running ``python`` (None: the ``python3`` found on PATH)."""
    if hook not in HOOKS:
        raise ValueError(f"unknown hook {hook!r}")
    if python is None:
        python_line = 'PROV_PYTHON="${PROV_PYTHON:-$(command -v python3)}"'
    else:
        python_line = f"PROV_PYTHON={_sh_quote(python)}"
    call = _PYTHON_CALL
    if hook in STDIN_HOOKS:
        # git's stdin, byte for byte (trailing newlines too), for both hooks.
        run_chained = (
            "\tinput=$(cat; echo x)\n"
            "\tinput=${input%x}\n"
            "\tprintf '%s' \"$input\" | \"$chained\" \"$@\""
        )
        run_prov = (
            'if [ -x "$chained" ]; then\n'
            f"\tprintf '%s' \"$input\" | {call}\n"
            "else\n"
            f"\t{call}\n"
            "fi"
        )
    else:
        run_chained = '\t"$chained" "$@"'
        run_prov = call
    if hook.startswith("pre-"):
        stop = '[ "$status" -ne 0 ] && exit "$status"  # the chained hook refused: git-prov stays out'
    else:
        stop = "# git has already acted: git-prov runs whatever the chained hook returned"
    return _TEMPLATE.format(
        marker=MARKER,
        hook=hook,
        python_line=python_line,
        suffix=CHAINED_SUFFIX,
        code=_PYTHON_CODE,
        run_chained=run_chained,
        stop_on_failure=stop,
        run_prov=run_prov,
        strict=STRICT_FAILURE,
    )


def is_shim(data: bytes) -> bool:
    """True for a hook file written by git-prov."""
    return MARKER.encode() in data[:200]


_PYTHON_RE = re.compile(r"^PROV_PYTHON=(.*)$", re.MULTILINE)


def interpreter_of(text: str) -> str | None:
    """The interpreter an installed shim runs (None for the PATH-searching one)."""
    m = _PYTHON_RE.search(text)
    if not m or not m.group(1).startswith("'"):
        return None
    value = m.group(1)
    out, i = [], 1
    while i < len(value):
        if value.startswith("'\\''", i):
            out.append("'")
            i += 4
        elif value[i] == "'":
            break
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def write_all(dest: str) -> list[str]:
    """Write the generic shim of every hook into ``dest`` (the project's ``hooks/``)."""
    os.makedirs(dest, exist_ok=True)
    written = []
    for hook in HOOKS:
        path = os.path.join(dest, hook)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(render(hook))
        os.chmod(path, 0o755)
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    for written_path in write_all(sys.argv[1] if len(sys.argv) > 1 else "hooks"):
        print(written_path)
