"""What the ``prov`` commands share: the repository they work in."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import click

from ..errors import ProvError

__all__ = ["with_repository"]


def with_repository(
    *, optional: bool = False, before: Callable[[dict[str, Any]], None] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Pass the command the repository it runs in as ``repo``: the one at or above the
    current directory, found as git finds it (``GIT_DIR`` and ``GIT_WORK_TREE`` too).

    A repository prov cannot work in raises its ``ProvError``, which the application
    prints as one line with its exit code; ``optional``: the command gets None instead.
    ``before(params)`` runs first on the command's parameters and may check or replace
    them, so mistakes that need no repository (arguments that do not go together, a
    filter that does not parse, an input file that cannot be read) are reported before
    it is opened. A group that runs a subcommand gets None and skips ``before``: the
    subcommand opens the repository itself.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_repo(*args: Any, **params: Any) -> Any:
            if click.get_current_context().invoked_subcommand is not None:
                return command(*args, repo=None, **params)
            if before is not None:
                before(params)
            from ..api import Repository

            try:
                repo = Repository(os.getcwd())
            except ProvError:
                if not optional:
                    raise
                repo = None
            return command(*args, repo=repo, **params)

        return with_repo

    return decorate
