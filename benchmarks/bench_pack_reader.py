"""The CPU of a pull's reader of the arriving pack (issue 15), on a pack file, alone.

    PYTHONPATH=<src> python benchmarks/bench_pack_reader.py <pack file> [--repeat 5]

During a first pull the reader (``exchange/arriving.py``) follows the pack git receives
and, for each blob it can resolve (``store/packstream.scan_blobs``), runs the checks of
its content (``exchange/blob_content.precheck``). Its CPU competes with git's ``index-pack``
for the cores, so it is measured here on its own: the process CPU seconds of reading a
whole pack file (1) resolving its blobs only, (2) resolving and checking them, each with
deltas applied by dulwich's compiled ``apply_delta`` and by the Python loop, interleaved,
``--repeat`` times; prints the least and the median of each, and the blobs resolved and
cleared. A first pull's pack: ``.git/objects/pack/pack-*.pack`` of a clone that pulled
(e.g. ``bench_exchange.py``'s ledgers under its ``--root``). Not a test: nothing asserts
a figure.
"""

from __future__ import annotations

import argparse
import statistics
import time

from gitprov.exchange.arriving import _MAX_SIZE, CACHE_BYTES, FORKED_CACHE_BYTES
from gitprov.exchange.blob_content import precheck
from gitprov.store import packstream


def read_pack(path: str, check: bool) -> tuple[float, int, int]:
    """CPU seconds, blobs resolved and blobs cleared, reading ``path`` as the forked reader does."""
    resolved = cleared = 0
    start = time.process_time()
    with open(path, "rb", buffering=0) as f:
        for _, data in packstream.scan_blobs(f.read, max_size=_MAX_SIZE, cache_bytes=FORKED_CACHE_BYTES):
            resolved += 1
            if check and precheck(data) is not None:
                cleared += 1
    return time.process_time() - start, resolved, cleared


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pack")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    native = packstream.native_apply_delta()
    appliers = {"compiled (dulwich)": native, "Python": None} if native is not None else {"Python": None}
    seconds: dict[tuple[str, bool], list[float]] = {}
    counts: dict[bool, tuple[int, int]] = {}
    real = packstream.native_apply_delta
    try:
        for _ in range(args.repeat):
            for name, applier in appliers.items():
                packstream.native_apply_delta = lambda applier=applier: applier
                for check in (False, True):
                    cpu, resolved, cleared = read_pack(args.pack, check)
                    seconds.setdefault((name, check), []).append(cpu)
                    counts[check] = (resolved, cleared)
    finally:
        packstream.native_apply_delta = real
    print(f"{args.pack}: {counts[True][0]:,} blobs resolved, {counts[True][1]:,} cleared "
          f"(delta-base cache {FORKED_CACHE_BYTES >> 20} MiB as the forked reader; a thread: {CACHE_BYTES >> 20} MiB)")
    print("| deltas applied by | reading | CPU s, least | CPU s, median |")
    print("| --- | --- | ---: | ---: |")
    for (name, check), values in seconds.items():
        what = "resolving and checking" if check else "resolving only"
        print(f"| {name} | {what} | {min(values):.2f} | {statistics.median(values):.2f} |")


if __name__ == "__main__":
    main()
