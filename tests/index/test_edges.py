"""Lineage read from the index frontier by frontier (``IndexEdges``) is the graph
``load_edges`` materialises: same nodes, labels, edges, distances and cycles."""

from __future__ import annotations

import pytest
from synthetic_ledger import build_ledger  # noqa: E402

import gitprov
import gitprov.lineage as lineage
from gitprov.index.edges import IndexEdges
from gitprov.index.graph import load_edges
from gitprov.index.traversal import build_graph, traverse
from tests.runs.test_lineage import pipeline


def same_graphs(db, roots_list):
    nodes, edges = load_edges(db)
    for roots in roots_list:
        for direction in ("both", "upstream", "downstream"):
            for depth in (None, 0, 1, 2, 5):
                whole = build_graph(nodes, edges, roots, direction, depth)
                lazy = traverse(IndexEdges(db), roots, direction, depth)
                assert lazy.to_json() == whole.to_json(), (roots, direction, depth)
                assert list(lazy.nodes) == list(whole.nodes)
                assert lazy.render("text") == whole.render("text")
    return nodes


def test_every_node_of_a_pipeline_with_cycles_and_dangling_runs(make_repo):
    path = make_repo("sha1").path
    gitprov.init(path, hooks=False)
    repo, ids = pipeline(path)
    with repo.start_run(name="odd", environment=False) as odd:
        # consumes its own artifact, outputs another run's artifact and a model without version
        lineage.of(odd).with_input_artifact(odd.id, "self.bin").with_output_artifact(ids["prep"], "extra.csv") \
            .with_output_model("plain").with_output_artifact("cafe" * 10).register()
    with repo.start_run(name="at", environment=False) as at:
        # "a@b" without a version and "a" version "b" are one node id, as in load_edges
        lineage.of(at).with_input_model("a@b").with_output_model("a", "b").register()
    db = repo.index().connection()
    nodes, _ = load_edges(db)
    same_graphs(db, [[n] for n in sorted(nodes)] + [sorted(nodes)[:3]])
    edges = IndexEdges(db)
    for node in nodes:
        assert node in edges
    assert "model:nope" not in edges and f"run:{'ab' * 20}" not in edges
    assert edges.with_prefix("model:clf") == sorted(n for n in nodes if n.startswith("model:clf"))
    for cut in (0, 1, 5, 6, 40):  # run ids are stored as bytes: odd and even prefixes of them
        prefix = f"artifact:{ids['prep'][:cut]}"
        assert edges.with_prefix(prefix) == sorted(n for n in nodes if n.startswith(prefix))
        assert edges.with_prefix(prefix)
    assert edges.with_prefix("artifact:cafe") == []  # "cafe" * 10 is a run id, with no artifact


def test_synthetic_ledger_sample(repo):
    build_ledger(str(repo.path), 120, seed=5)
    prov = gitprov.Repository(repo.path)
    db = prov.index().connection()
    nodes, _ = load_edges(db)
    sample = sorted(nodes)[::7]
    same_graphs(db, [[n] for n in sample])


@pytest.mark.parametrize("size", [1, 600])  # one chunk of ids, and several
def test_wide_frontiers(repo, size):
    build_ledger(str(repo.path), size, seed=1)
    prov = gitprov.Repository(repo.path)
    db = prov.index().connection()
    nodes, edges = load_edges(db)
    models = sorted(n for n in nodes if n.startswith("model:"))
    for direction in ("downstream", "upstream"):
        assert traverse(IndexEdges(db), models, direction, 3).to_json() == \
            build_graph(nodes, edges, models, direction, 3).to_json()


def test_a_name_prefix_reads_the_nodes_it_finds_not_every_node(make_repo):
    """``prov lineage MODEL`` and ``RUN/PATH`` resolve a prefix through indexes: the
    work does not grow with the other nodes of the history (20,000 of them here)."""
    import os

    from gitprov.index.encoding import NODE_KINDS, node_hash

    path = make_repo("sha1").path
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    with repo.start_run(name="train", environment=False) as run:
        lineage.of(run).with_output_model("classifier", "3").with_output_artifact(run.id, "weights.bin").register()
    db = repo.index().connection()
    prefixes = ["model:class", "model:classifier@3", f"artifact:{run.id[:7]}", f"artifact:{run.id}/w"]

    def steps(prefix):
        count = 0

        def tick():
            nonlocal count
            count += 1
            return 0

        db.set_progress_handler(tick, 1)
        try:
            return IndexEdges(db).with_prefix(prefix), count
        finally:
            db.set_progress_handler(None, 1)

    before = {p: steps(p) for p in prefixes}
    assert [len(found) for found, _ in before.values()] == [1, 1, 1, 1]
    filler = []
    for i in range(10_000):
        other = os.urandom(20)
        filler.append((NODE_KINDS["run"], other, f"out-{i}.bin", node_hash(NODE_KINDS["run"], other)))
        filler.append((NODE_KINDS["model"], f"model-{i}", "1", node_hash(NODE_KINDS["model"], f"model-{i}")))
    db.execute("BEGIN")  # one transaction, not 20,000 flushed ones (the index connection autocommits)
    try:
        db.executemany("INSERT INTO nodes(kind, name, item, hash) VALUES (?, ?, ?, ?)", filler)
        for prefix, (found, work) in before.items():
            again, more = steps(prefix)
            assert again == found
            assert more < work + 500, (prefix, work, more)  # a scan would be ~100,000 steps
    finally:
        db.execute("ROLLBACK")
