"""Random generators' seeds: what tells nondeterminism apart from drift on a rerun.

At the start of a run made in the process that trains (not a wrapped ``prov run``
command), the state of each generator whose library is already imported is recorded in
the attribute ``prov.seeds``: Python's ``random`` and NumPy's global generator as a digest
of their state (a seed cannot be read back from them; two runs seeded alike start from
the same state), PyTorch's as ``torch.initial_seed()``; at the end of the run they are
recorded again (``random@end``…: a generator first used during the run, or seeded after
it started, shows there). Nothing is imported here: a library (or NumPy's lazily loaded
``numpy.random``) the process has not imported is not recorded. ``Run.log_seed``
records a seed the script chose itself.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import sys
from typing import Any

__all__ = ["generator_states"]


def _digest(data: bytes) -> str:
    return "state:" + hashlib.sha256(data).hexdigest()[:16]


def generator_states() -> dict[str, Any]:
    """``{"random": "state:…", "numpy.random": "state:…", "torch": seed}`` for the
    libraries already imported (errors of a foreign library only leave it out)."""
    out: dict[str, Any] = {}
    random = sys.modules.get("random")
    if random is not None:
        with contextlib.suppress(Exception):  # a patched module must not break a run
            version, internal, gauss = random.getstate()
            out["random"] = _digest(array.array("Q", internal).tobytes() + repr((version, gauss)).encode())
    numpy = sys.modules.get("numpy")
    if numpy is not None and "numpy.random" in sys.modules:
        with contextlib.suppress(Exception):
            name, keys, pos, *_ = numpy.random.get_state(legacy=True)
            out["numpy.random"] = _digest(name.encode() + keys.tobytes() + int(pos).to_bytes(8, "little"))
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            out["torch"] = int(torch.initial_seed())
    return out
