"""The environment fingerprint of a capture: interpreter, platform, installed
distributions, lock files and CI identifiers. Cheap enough for a commit hook: it
lists ``*.dist-info`` directory names instead of importing ``importlib.metadata``."""

from __future__ import annotations

import hashlib
import os
import re
import sys

TYPE_CHECKING = False  # typing is not imported at run time: hook path
if TYPE_CHECKING:
    from typing import Any

    from .model.capture import Environment


__all__ = ["CI_VARIABLES", "LOCKFILE_PATTERNS", "ci_identifiers", "distributions", "environment"]

#: Lock and requirement files whose digests a capture records (root of the commit).
LOCKFILE_PATTERNS = (
    re.compile(r"uv\.lock"),
    re.compile(r"poetry\.lock"),
    re.compile(r"requirements.*\.txt"),
    re.compile(r"environment\.ya?ml"),
    re.compile(r"Pipfile\.lock"),
    re.compile(r"pyproject\.toml"),
    re.compile(r"conda-lock\.ya?ml"),
    re.compile(r"pixi\.lock"),
)

#: The only environment variables a capture ever reads: CI identifiers.
CI_VARIABLES = (
    "CI",
    "GITHUB_ACTIONS", "GITHUB_RUN_ID", "GITHUB_RUN_NUMBER", "GITHUB_RUN_ATTEMPT",
    "GITHUB_WORKFLOW", "GITHUB_JOB", "GITHUB_REPOSITORY", "GITHUB_SHA", "GITHUB_REF",
    "GITLAB_CI", "CI_PIPELINE_ID", "CI_JOB_ID", "CI_PROJECT_PATH", "CI_COMMIT_SHA",
    "CI_COMMIT_REF_NAME",
    "BUILDKITE", "BUILDKITE_BUILD_ID", "BUILDKITE_BUILD_NUMBER", "BUILDKITE_PIPELINE_SLUG",
    "CIRCLECI", "CIRCLE_BUILD_NUM", "CIRCLE_WORKFLOW_ID", "CIRCLE_PROJECT_REPONAME",
    "JENKINS_URL", "BUILD_ID", "BUILD_NUMBER", "JOB_NAME",
    "TF_BUILD", "BUILD_BUILDID", "SYSTEM_TEAMPROJECT",
    "TRAVIS", "TRAVIS_BUILD_ID", "TRAVIS_JOB_ID", "TRAVIS_REPO_SLUG",
    "BITBUCKET_BUILD_NUMBER", "BITBUCKET_REPO_FULL_NAME",
    "DRONE", "DRONE_BUILD_NUMBER",
)

_DIST_RE = re.compile(r"^(?P<name>.+?)-(?P<version>[^-]+?)\.(?:dist-info|egg-info)$")


#: ``(sys.path entries with their directory mtimes, distributions)`` of the last listing
_listed: tuple[tuple[tuple[str, int], ...], list[str]] | None = None


def distributions(paths: list[str] | None = None) -> list[str]:
    """Sorted ``name==version`` of the distributions installed on ``sys.path``.

    For ``sys.path`` the listing is kept for the process while no directory on it
    changes (installing or removing a distribution changes its directory's mtime):
    one ``stat`` per entry instead of listing and matching every name each run."""
    global _listed
    if paths is not None:
        return _list_distributions(paths)
    stamps = []
    for entry in sys.path:
        try:
            stamps.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            stamps.append((entry, -1))
    key = tuple(stamps)
    if _listed is None or _listed[0] != key:
        _listed = (key, _list_distributions(sys.path))
    return list(_listed[1])


def _list_distributions(paths: list[str]) -> list[str]:
    found: set[str] = set()
    for entry in paths:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            m = _DIST_RE.match(name)
            if m:
                norm = re.sub(r"[-_.]+", "-", m.group("name")).lower()
                found.add(f"{norm}=={m.group('version')}")
    return sorted(found)


def ci_identifiers(env: dict[str, str] | None = None) -> dict[str, str]:
    """Allow-listed CI variables that are set, values scrubbed."""
    env = os.environ if env is None else env
    present = [k for k in CI_VARIABLES if env.get(k)]
    if not present:
        return {}  # the common case outside CI: no need to compile scrub's token patterns
    from .scrub import scrub_text

    return {k: scrub_text(env[k])[:200] for k in present}


def environment_fields(lockfiles: dict[str, str] | None = None, dists: list[str] | None = None) -> dict[str, Any]:
    """The fields of an ``Environment`` as plain values (no msgspec: hook path);
    ``dists``: the listing of ``distributions()`` when the caller has it already."""
    dists = distributions() if dists is None else dists
    digest = hashlib.sha256("\n".join(dists).encode()).hexdigest()
    return {
        "python_implementation": sys.implementation.name,
        "python_version": "{}.{}.{}".format(*sys.version_info[:3]),
        "platform": sys.platform,
        "machine": _machine(),
        "distributions_digest": f"sha256:{digest}",
        "distributions_count": len(dists),
        "lockfiles": dict(sorted((lockfiles or {}).items())),
    }


def environment(lockfiles: dict[str, str] | None = None, dists: list[str] | None = None) -> Environment:
    """Fingerprint the running interpreter and its installed distributions."""
    from .model.capture import Environment

    return Environment(**environment_fields(lockfiles, dists))


def _machine() -> str:
    try:
        return os.uname().machine
    except AttributeError:  # Windows
        import platform

        return platform.machine()


def is_lockfile(name: str) -> bool:
    return any(p.fullmatch(name) for p in LOCKFILE_PATTERNS)
