"""Console entry point of ``prov`` / ``git-prov``.

``prov show`` and ``prov capture`` run on every commit and in scripts, and
``prov hooks run <hook> [ARGS]`` is what the git hooks call, so they are served
without importing click (~40 ms here) when their arguments are the plain ones this
module knows; anything else (``--help``, other commands, unknown options) goes to
the click application in ``cli.app``, which defines and documents every command.
Both paths share ``cli.render`` and the same error handling, and a test checks that
they print the same thing.
"""

from __future__ import annotations

import os
import sys

__all__ = ["main"]

_FAST = {
    "show": ({"--json"}, 1),
    "capture": ({"--json", "--force"}, 1),
}


def _parse_fast(argv: list[str]) -> tuple[str, str, set[str]] | None:
    if not argv or argv[0] not in _FAST:
        return None
    flags_known, max_positional = _FAST[argv[0]]
    flags: set[str] = set()
    positional: list[str] = []
    for arg in argv[1:]:
        if arg in flags_known:
            flags.add(arg)
        elif arg.startswith("-") or arg in flags:
            return None
        else:
            positional.append(arg)
    if len(positional) > max_positional:
        return None
    return argv[0], (positional[0] if positional else "HEAD"), flags


def run_fast(command: str, rev: str, flags: set[str]) -> int:
    if command == "capture" and rev == "HEAD" and not flags:
        from ..quickcapture import try_capture_head

        commit = try_capture_head(os.getcwd(), trigger="cli")
        if commit is not None:
            from .render import capture_message

            print(capture_message(commit, created=True))
            return 0
    from ..api import Repository
    from . import render

    repo = Repository(os.getcwd())
    if command == "show":
        render.print_show(repo, rev, "--json" in flags)
        return 0
    result = repo.capture(rev, force="--force" in flags)
    if "--json" in flags:
        render.emit_json(result)
    else:
        print(render.capture_message(result.commit, result.created))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["hooks", "run"] and len(argv) > 2 and not argv[2].startswith("-"):
        from ..githooks.runtime import run as run_hook

        return run_hook(argv[2], argv[3:])  # fails open: never raises
    fast = _parse_fast(argv)
    if fast is not None:
        from ..errors import ProvError

        try:
            return run_fast(*fast)
        except ProvError as exc:
            if os.environ.get("PROV_DEBUG"):
                raise
            print(f"prov: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except BrokenPipeError:
            return 0
    from .app import cli

    return cli.main(args=argv, prog_name="prov", standalone_mode=True) or 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
