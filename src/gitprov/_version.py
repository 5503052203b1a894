"""Versions: of the tool, and of the record format it writes (no imports: hot path)."""

__version__ = "0.4.0"

#: The record format this git-prov writes and the newest it reads.
FORMAT_VERSION = 4
#: The first release that writes each format, so a reader too old for some data can
#: name the release to install (docs/design/data-model.md#format-versions).
FORMAT_RELEASES = {1: "0.1.0", 2: "0.2.0", 3: "0.3.0", 4: "0.4.0"}


def upgrade_command(requires: object = None) -> str:
    """The pip command that installs a git-prov able to read newer data: the release the
    data names (the ledger's ``format`` marker says ``requires``), else the newest."""
    if isinstance(requires, str) and requires.startswith("git-prov>=") and len(requires) < 40 \
            and requires[10:].replace(".", "").isdigit():
        return f"pip install -U '{requires}'"
    return "pip install -U git-prov"
