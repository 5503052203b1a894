"""Format 4's ledger kept as a log (``docs/design/data-model.md``, "The proposal: a
ledger kept as a log"). Read and written through ``store.ledger.Ledger`` when a
ledger's tip is of this layout: what a new ledger gets, and what a format-3 ledger is
upgraded to by its first write.

Each commit's tree holds what its transaction wrote, at the root beside ``format`` and
the constant ``runs/`` sentinel::

    <id>^<commit>               the run blob (record, state, artifacts up to ``INLINE_LIMIT``)
                                of a run made at ``<commit>``
    <id>                        the run blob of a run made at no commit
    <id>=<key>=<writer>-<seq>   a metric chunk        (and ``!`` observations, ``+`` summaries,
    <id>@<key>                  an artifact            ``#patch`` the code patch)

The ledger at a commit is the **fold** of the commits reachable from it: walking them
newest first in topological order (a commit after all its children), the first
version met of each entry is its current one. That is well defined because a merge
commit holds the resolution of every entry both of its sides wrote, with different
contents, since their merge base: an entry only one side wrote has its older versions
at or below the base, which the walk meets after both sides. A **checkpoint** commit
holds every entry of the ledger at that commit, sharded (``<xx>/<name>``); the fold
takes it whole and reads nothing below it (the walk still passes through, for the
order: a commit below a checkpoint can be reached around it too). A commit of another
format (format 3, before the upgrade) is not read: its runs are in the checkpoint or
merge that replaced it.

Bytes and git objects only: which of two versions wins is decided above this layer
(``exchange``), and given here as resolutions.

The package, by concept: ``names`` (entry names and the run blob), ``history`` (the
commits written and the fold), ``entries`` (what a transaction or checkpoint holds),
``fold_cache`` and ``view``.
"""

from __future__ import annotations

from .entries import checkpoint_names, log_entries, stored_checkpoint
from .fold_cache import FoldCache
from .history import (
                      changed_since,
                      checkpoint,
                      checkpoint_tree,
                      fold,
                      fold_since,
                      fold_with_git,
                      is_ancestor,
                      log_tree,
                      merge,
                      merge_base,
                      merge_bases,
                      resolutions,
                      run_blobs_since,
                      transaction,
                      walk,
)
from .names import (
                      CHECKPOINT_MARKER,
                      INLINE_LIMIT,
                      LOG_MARKER,
                      SENTINEL,
                      decode_run_blob,
                      encode_run_blob,
                      entry_name,
                      file_of,
                      is_run_blob,
                      link_of,
                      record_commit,
                      run_blob_name,
                      run_blob_parts,
                      run_of,
)
from .view import LogView

__all__ = ["CHECKPOINT_MARKER", "INLINE_LIMIT", "LOG_MARKER", "SENTINEL", "FoldCache", "LogView", "changed_since",
           "checkpoint", "checkpoint_names", "checkpoint_tree", "decode_run_blob", "encode_run_blob", "entry_name",
           "file_of", "fold", "fold_since", "fold_with_git", "is_ancestor", "is_run_blob", "link_of", "log_entries",
           "log_tree", "merge", "merge_base", "merge_bases", "record_commit", "resolutions", "run_blob_name",
           "run_blob_parts", "run_blobs_since", "run_of", "stored_checkpoint", "transaction", "walk"]
