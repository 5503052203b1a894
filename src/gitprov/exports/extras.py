"""The export's optional libraries: loaded only by the export, and a missing one is one
line naming the ``pip install`` that brings it."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import MissingExtraError

__all__ = ["PACKAGES", "require"]

#: module -> the distribution that provides it
PACKAGES = {
    "prov": "prov",
    "rdflib": "rdflib",
    "openlineage": "openlineage-python",
    "in_toto_attestation": "in-toto-attestation",
}


def require(module: str, purpose: str) -> Any:
    """``module`` imported, or ``MissingExtraError`` naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = PACKAGES.get(module.split(".")[0], module)
        raise MissingExtraError(f"{purpose} needs the {package} package: pip install 'git-prov[export]' "
                                f"(or pip install {package})") from exc
