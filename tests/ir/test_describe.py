"""`describe`: every node's type, output shape and the fields it sets, the header, and the
edges of a graph that is not a chain."""

import numpy as np

from toolchain.ir import CubaLIF, Dense, Graph, Input
from toolchain.ir.describe import describe


def test_the_table_shows_what_each_node_sets_and_nothing_at_its_default():
    w = np.array([[1, -2], [3, 4]], np.int32)
    nodes = (
        Input("in", (2, 1, 1), levels=16),
        Dense("fc", w.astype(np.float64), w, weight_exp=-1),
        CubaLIF("out", 5.0, 3.0, 1.0, du=1364, dv=819, vth=40, scale=2560.0, max_spikes=3),
    )
    lines = describe(Graph(nodes, T=5, name="tiny")).splitlines()
    assert lines[0].startswith("graph 'tiny': T=5, fixed point, lowered; metadata: time_steps=5")
    rows = {line.split()[0]: line for line in lines[2:]}
    assert rows["in"].split()[1:3] == ["Input", "2x1x1"] and "levels 16" in rows["in"]
    assert "weight_int [-2, 4], weight_exp -1" in rows["fc"]
    assert "du 1364, dv 819, vth 40, scale 2560, max_spikes 3" in rows["out"]
    assert "refractory" not in rows["out"] and "readout" not in rows["out"]  # at their defaults


def test_a_recurrent_graph_lists_its_edges():
    nodes = (
        Input("in", (1, 1, 2)),
        Dense("ff", np.ones((3, 2))),
        Dense("rec", np.eye(3)),
        CubaLIF("pop", 5.0, 3.0, 1.0),
    )
    edges = (("in", "ff"), ("pop", "rec"), ("ff", "pop"), ("rec", "pop"))
    text = describe(Graph(nodes, T=2, edges=edges))
    assert "float" in text.splitlines()[0]
    assert text.splitlines()[-1] == (
        "edges: in -> ff, pop -> rec (previous step), ff -> pop, rec -> pop"
    )
