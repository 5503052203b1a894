"""Lineage: which models, datasets and run artifacts a run consumed and produced.

Record it fluently and additively::

    gitprov.lineage.of(run).with_input_model("bert", "v3").with_output_model("clf", "1").register()

It is stored in the run's ``state`` (``RunState.lineage``), keyed ``model:<name>``,
``run:<run id>`` and ``dataset:<key>``, each mapping to a sorted list of versions, paths
or digests (an empty list: the model or run without a version or path). Registering is
additive and idempotent; on an ended run it is a metadata write, like tags.

``Query`` builds the MongoDB-style dicts ``Repository.find_runs`` takes. ``Inputs``,
``Outputs``, ``Lineage`` (``Lineage.of(run)``: what a run has registered) and ``Query``
are pydantic models, as in mlopus (``model_dump``, ``model_validate``,
``model_json_schema``), so importing this module loads pydantic; ``import gitprov``
does not import it. This module is the public face of ``runs/lineage.py`` (recording)
and ``index/lineage_query.py``.
"""

from __future__ import annotations

from .index.lineage_query import Query
from .runs.lineage import Inputs, Lineage, LineageBuilder, Outputs, inputs_of, of, outputs_of

__all__ = ["Inputs", "Lineage", "LineageBuilder", "Outputs", "Query", "inputs_of", "of", "outputs_of"]
