"""The one exception tree of git-prov.

Every error a user can cause is a ``ProvError``; the CLI prints its message on one
line and exits with its ``exit_code``. Foreign exceptions (OS, dulwich, msgspec) are
translated at the boundary with ``raise ... from exc``::

    ProvError (1)
    ├── UsageError (2)                 bad arguments or values given by the caller
    │   └── QueryError                 a run query or filter string cannot be used
    │       └── UnknownFieldError      it names a field (or key) no run has
    ├── RepositoryError (3)
    │   ├── NotARepositoryError        no git repository at or above the path
    │   ├── BareRepositoryError        prov needs a work tree
    │   └── EmptyRepositoryError       HEAD points at no commit yet
    ├── RevisionError (4)              also a ValueError (the Python API's convention)
    │   ├── UnknownRevisionError
    │   └── AmbiguousRevisionError
    ├── DataError (5)                  corrupt or foreign data under the prov refs
    │   ├── FormatVersionError (6)     written by a newer git-prov: upgrade
    │   ├── MissingObjectError         an object a ref or tree names is not in the repository
    │   ├── RemoteDataError            a remote's provenance failed validation
    │   └── PackStreamError            a pack read as it arrives is not one prov follows (caught: checked the usual way)
    ├── WriteError (7)
    │   ├── ReadOnlyRepositoryError    no permission to write objects or refs
    │   └── ConcurrentUpdateError      a ref kept moving; retries exhausted
    ├── VerificationError (8)          ``prov verify`` found problems
    ├── ConfigError (9)                invalid ``.provenance.toml`` or git config
    ├── SyncError (10)                 a tracker (MLflow, W&B) is missing or failed a sync
    │   └── MissingExtraError          its library (a tracker's, export's or ui's) is not installed (also an ImportError)
    ├── RemoteError (11)               a git remote is unreachable or refused a fetch/push
    ├── DriftError (12)                ``prov rerun``: an input changed, or ``--check`` found drift
    ├── RerunError (13)                ``prov rerun``: the run cannot be rebuilt or executed again
    └── BuildChildError                a cold index build's decoding process failed (caught: built in-process)
"""

from __future__ import annotations

__all__ = [
    "AmbiguousRevisionError",
    "BareRepositoryError",
    "BuildChildError",
    "ConcurrentUpdateError",
    "ConfigError",
    "DataError",
    "DriftError",
    "EmptyRepositoryError",
    "FormatVersionError",
    "MissingExtraError",
    "MissingObjectError",
    "NotARepositoryError",
    "PackStreamError",
    "ProvError",
    "QueryError",
    "ReadOnlyRepositoryError",
    "RemoteDataError",
    "RemoteError",
    "RepositoryError",
    "RerunError",
    "RevisionError",
    "SyncError",
    "UnknownFieldError",
    "UnknownRevisionError",
    "UsageError",
    "VerificationError",
    "WriteError",
]


class ProvError(Exception):
    """Base of every error git-prov raises on purpose."""

    exit_code = 1


class UsageError(ProvError):
    """The caller passed an argument or value that cannot be used."""

    exit_code = 2


class QueryError(UsageError):
    """A run query or filter string cannot be used (operator, type, syntax)."""


class UnknownFieldError(QueryError):
    """A query names a field (or a param, metric or attribute key) no run has."""


class RepositoryError(ProvError):
    """The path is not a repository prov can work in."""

    exit_code = 3


class NotARepositoryError(RepositoryError):
    """No git repository at or above the path."""


class BareRepositoryError(RepositoryError):
    """The repository has no work tree."""


class EmptyRepositoryError(RepositoryError):
    """The repository has no commit yet."""


class RevisionError(ProvError, ValueError):
    """A revision could not be resolved to one commit (a ``ValueError`` too, so Python
    callers can catch it the usual way)."""

    exit_code = 4


class UnknownRevisionError(RevisionError):
    """Nothing matches the revision."""


class AmbiguousRevisionError(RevisionError):
    """A short id matches more than one object."""


class DataError(ProvError):
    """Data under the prov refs is corrupt or was not written by git-prov."""

    exit_code = 5


class FormatVersionError(DataError):
    """A record carries a format version this git-prov does not know."""

    exit_code = 6


class MissingObjectError(DataError):
    """An object that a ref or tree names is not in the repository."""


class WriteError(ProvError):
    """Writing objects or refs failed."""

    exit_code = 7


class ReadOnlyRepositoryError(WriteError):
    """The repository cannot be written to."""


class ConcurrentUpdateError(WriteError):
    """A ref kept changing under us; every retry lost the race."""


class VerificationError(ProvError):
    """``prov verify`` found problems."""

    exit_code = 8


class ConfigError(ProvError):
    """Configuration (``.provenance.toml`` or git config) is invalid."""

    exit_code = 9


class SyncError(ProvError):
    """Syncing to an external tracker failed: its extra is not installed, it cannot be
    reached, or it refused the data (``prov sync``)."""

    exit_code = 10


class MissingExtraError(SyncError, ImportError):
    """The library of an optional extra (a tracker's, ``prov export``'s or ``prov ui``'s)
    is not installed; the message names the ``pip install`` command (an ``ImportError`` too)."""


class RemoteError(ProvError):
    """A git remote could not be reached, or refused a fetch or push (``prov fetch``,
    ``prov pull``, ``prov push``)."""

    exit_code = 11


class RemoteDataError(DataError):
    """Provenance fetched from a remote failed validation; nothing was merged."""


class PackStreamError(DataError):
    """A pack read while git receives it (``store/packstream.py``) is malformed or cut
    short. Internal: ``prov pull`` catches it and checks every blob the usual way."""


class DriftError(ProvError):
    """``prov rerun``: an input of the run changed (without ``--allow-drift``), or with
    ``--check`` the rerun's results drifted from the run's."""

    exit_code = 12


class RerunError(ProvError):
    """``prov rerun``: the run cannot be rebuilt or executed again (its commit is not in
    this clone, its patch no longer applies, it recorded no command)."""

    exit_code = 13


class BuildChildError(ProvError):
    """A cold index build's decoding process (``index/build_process.py``) did not deliver
    every run: it could not start, could not read a run, or died. Internal: the build
    rolls back what it sent and runs in-process."""
