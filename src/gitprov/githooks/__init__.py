"""Git hooks that capture commit provenance (DESIGN.md §5).

``runtime`` is what a hook does when git runs it (imported on every commit, so it
stays lean: no click); ``shims`` renders the small POSIX ``sh`` scripts git runs;
``install`` puts them in place, chains foreign hooks and reports their status.
"""

from __future__ import annotations

__all__ = ["HOOKS", "STDIN_HOOKS"]

#: Every hook git-prov installs, in the order git tends to run them.
HOOKS = ("post-commit", "post-rewrite", "post-merge", "post-applypatch", "pre-push")
#: Hooks git feeds on stdin (``old new`` pairs, pushed refs).
STDIN_HOOKS = ("post-rewrite", "pre-push")
