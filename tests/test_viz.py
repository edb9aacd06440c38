"""minigrad.viz: the autograd graph read off a Tensor, its layout, and both drawings.

The structure tests count nodes and edges that follow from the ops by hand; the drawing tests
count what the matplotlib Figure and the SVG actually contain.
"""
import xml.etree.ElementTree as ET
from collections import Counter

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import minigrad.functional as F  # noqa: E402
from minigrad import Tensor, no_grad, viz  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def leaf(value):
    return Tensor(value, requires_grad=True, dtype=np.float64)


def kinds(g):
    return Counter(n.kind for n in g.nodes)


def ops(g):
    return Counter(n.label for n in g.nodes if n.kind == "op")


def node_of(g, t):
    return next(i for i, n in enumerate(g.nodes) if n.obj is t)


def test_chain_rule_example_structure_and_labels():
    a, b, c = leaf(2.0), leaf(-3.0), leaf(10.0)
    e = a * b
    d = e + c
    L = d ** 2
    g = viz.graph(L, names={"a": a, "b": b, "c": c, "L": L})
    # tensors a, b, c, e, d, L and the ops Mul, Add, Pow
    assert kinds(g) == {"leaf": 3, "tensor": 3, "op": 3}
    assert ops(g) == {"Mul": 1, "Add": 1, "Pow": 1}
    # a->Mul, b->Mul, Mul->e, e->Add, c->Add, Add->d, d->Pow, Pow->L
    assert len(g.edges) == 8
    labels = {g.nodes[i].label.split("\n")[0] for i in range(len(g.nodes))}
    assert {"a", "b", "c", "L"} <= labels
    assert "value 16" in g.nodes[node_of(g, L)].label
    mul = next(i for i, n in enumerate(g.nodes) if n.label == "Mul")
    assert sorted(s for s, d in g.edges if d == mul) == sorted([node_of(g, a), node_of(g, b)])
    assert (mul, node_of(g, e)) in g.edges
    # before backward no box shows a gradient; after it the leaves show theirs
    assert not any("grad" in n.label for n in g.nodes)
    L.backward()
    after = viz.graph(L, names={"a": a, "b": b, "c": c})
    assert "grad -24" in after.nodes[node_of(after, a)].label
    assert "grad 16" in after.nodes[node_of(after, b)].label
    assert "grad 8" in after.nodes[node_of(after, c)].label


def test_reused_tensor_gives_one_edge_per_use():
    a = leaf(np.array([[1.0, 2.0], [3.0, 4.0]]))
    b = a + a
    c = (b * b).sum()
    g = viz.graph(c)
    assert ops(g) == {"Add": 1, "Mul": 1, "Sum": 1}
    ia, ib = node_of(g, a), node_of(g, b)
    add = next(i for i, n in enumerate(g.nodes) if n.label == "Add")
    mul = next(i for i, n in enumerate(g.nodes) if n.label == "Mul")
    assert g.edges.count((ia, add)) == 2 and g.edges.count((ib, mul)) == 2
    assert len(g.edges) == 2 + 1 + 2 + 1 + 1 + 1     # a+a, ->b, b*b, ->b*b, ->Sum, ->c


def test_gradient_norm_and_constants():
    x = leaf(np.array([[3.0, 4.0]]))
    y = (x * 2.0).sum()
    y.backward()
    g = viz.graph(y, names={"x": x})
    assert kinds(g)["const"] == 1
    const = next(n for n in g.nodes if n.kind == "const")
    assert "const" in const.label and "value 2" in const.label
    # dy/dx = 2 everywhere: ||grad|| = sqrt(2^2 + 2^2)
    assert f"||grad|| {np.sqrt(8):.4g}" in g.nodes[node_of(g, x)].label
    assert "shape (1, 2)" in g.nodes[node_of(g, x)].label


def test_batch_norm_composite_shows_every_intermediate():
    rng = np.random.default_rng(0)
    x, gamma, beta = leaf(rng.standard_normal((8, 3))), leaf(np.ones(3)), leaf(np.zeros(3))
    y = F.batch_norm_composite(x, weight=gamma, bias=beta, training=True)
    kept = viz.retain_grads(y)
    y.backward(rng.standard_normal((8, 3)))
    g = viz.graph(y, names={"x": x, "gamma": gamma, "beta": beta})
    # mu, x - mu, (x-mu)^2, var, var + eps, sqrt, xhat, gamma reshaped, gamma*xhat, beta, + beta
    assert ops(g) == {"Mean": 2, "Sub": 1, "Mul": 2, "Add": 2, "Sqrt": 1, "Div": 1, "Reshape": 2}
    assert kinds(g) == {"op": 11, "tensor": 11, "leaf": 3, "const": 1}
    assert len(g.edges) == 11 + (1 + 2 + 2 + 1 + 2 + 1 + 2 + 1 + 2 + 1 + 2)
    assert len(kept) == 11
    # every op output kept its gradient, and its box shows the norm of it
    for t in kept:
        assert t.grad is not None
        norm = np.linalg.norm(t.grad)
        assert f"||grad|| {norm:.4g}" in g.nodes[node_of(g, t)].label


def test_layout_flows_left_to_right_and_rows_do_not_collide():
    rng = np.random.default_rng(1)
    x, gamma, beta = leaf(rng.standard_normal((4, 2))), leaf(np.ones(2)), leaf(np.zeros(2))
    g = viz.graph(F.batch_norm_composite(x, weight=gamma, bias=beta, training=True))
    assert all(g.nodes[s].column < g.nodes[d].column for s, d in g.edges)
    spots = [(n.column, n.row) for n in g.nodes]
    assert len(spots) == len(set(spots)), "two nodes were placed on the same spot"
    # waypoints of long edges: one per column crossed, never on a node's spot
    for (s, d), way in zip(g.edges, g.routes):
        assert [c for c, _ in way] == list(range(g.nodes[s].column + 1, g.nodes[d].column))
        assert not set(way) & set(spots)
    # the output is the rightmost node; each parameter sits just left of its Reshape
    out = max(g.nodes, key=lambda n: n.column)
    assert out.obj is not None and out.obj.grad_fn == "Add"
    ig = node_of(g, gamma)
    reshape = next(d for s, d in g.edges if s == ig)
    assert g.nodes[reshape].column == g.nodes[ig].column + 1


def test_matplotlib_figure_has_one_text_per_node_and_one_arrow_per_edge():
    a, b = leaf(1.5), leaf(-2.0)
    L = (a * b + a).tanh()
    g = viz.graph(L)
    fig = viz.draw_graph(L)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    node_texts = [t for t in ax.texts if not isinstance(t, Annotation)]
    arrows = [t for t in ax.texts if isinstance(t, Annotation)]
    assert len(node_texts) == len(g.nodes)
    assert len(arrows) == len(g.edges) + sum(1 for way in g.routes if way)
    assert sorted(t.get_text() for t in node_texts) == sorted(n.label for n in g.nodes)
    fig.canvas.draw()                          # renders without error


def test_draw_into_given_axes():
    from matplotlib.figure import Figure as Fig
    fig = Fig()
    ax = fig.add_subplot()
    a = leaf(2.0)
    assert viz.draw_graph(a * a, ax=ax) is fig
    assert len([t for t in ax.texts if not isinstance(t, Annotation)]) == 3


def test_svg_counts_and_text():
    a, b, c = leaf(2.0), leaf(-3.0), leaf(10.0)
    L = (a * b + c) ** 2
    L.backward()
    g = viz.graph(L, names={"a": a, "b": b, "c": c})
    svg = g._repr_svg_()
    assert svg == g.svg()
    assert repr(g) == "<autograd graph: 9 nodes (3 ops), 8 edges>"
    root = ET.fromstring(svg)                  # well-formed XML
    groups = [e for e in root.iter(f"{SVG}g") if "node" in e.get("class", "")]
    paths = [e for e in root.iter(f"{SVG}path") if e.get("class") == "edge"]
    assert len(groups) == len(g.nodes) == 9 and len(paths) == len(g.edges) == 8
    assert Counter(e.get("class").split()[1] for e in groups) == {"leaf": 3, "tensor": 3, "op": 3}
    texts = ["".join(e.itertext()) for e in groups]
    assert "Pow" in texts and any(t.startswith("a") and "grad -24" in t for t in texts)
    assert len(list(root.iter(f"{SVG}ellipse"))) == 3 and len(list(root.iter(f"{SVG}rect"))) == 6


def test_svg_escapes_markup_in_names():
    a = leaf(1.0)
    svg = viz.graph(a * 2.0, names={"<x & y>": a}).svg()
    ET.fromstring(svg)
    assert "&lt;x &amp; y&gt;" in svg


def test_lesson_01_value_objects():
    class Value:                                 # the scalar engine of lesson 01, reduced
        def __init__(self, data, parents=(), op="", label=""):
            self.data, self.grad, self._parents, self._op = data, 0.0, parents, op
            self.label = label

        def __mul__(self, other):
            return Value(self.data * other.data, (self, other), "*")

    a = Value(3.0, label="a")
    b = a * a
    b.grad, a.grad = 1.0, 6.0
    g = viz.graph(b)
    assert kinds(g) == {"leaf": 1, "tensor": 1, "op": 1} and ops(g) == {"*": 1}
    assert g.edges.count((node_of(g, a), 1)) == 2
    assert g.nodes[node_of(g, a)].label == "a\ndata 3\ngrad 6"


def test_leaf_and_no_grad_results_are_single_nodes():
    a = leaf(np.ones((2, 2)))
    assert len(viz.graph(a).nodes) == 1 and viz.graph(a).edges == []
    with no_grad():
        y = a * 3.0
    g = viz.graph(y)
    assert len(g.nodes) == 1 and g.nodes[0].kind == "const"


def test_bad_input_and_huge_graphs_are_refused():
    with pytest.raises(TypeError, match="got ndarray"):
        viz.graph(np.ones(3))
    t = leaf(1.0)
    for _ in range(viz.MAX_NODES):
        t = t * 1.0
    with pytest.raises(ValueError, match="too many to draw"):
        viz.graph(t)


def test_deep_chain_does_not_recurse(monkeypatch):
    monkeypatch.setattr(viz, "MAX_NODES", 10_000)
    t = leaf(1.0)
    for _ in range(1500):                      # deeper than Python's default recursion limit
        t = t + 1.0
    g = viz.graph(t)
    assert ops(g) == {"Add": 1500} and kinds(g) == {"op": 1500, "tensor": 1500, "const": 1500,
                                                     "leaf": 1}
    assert len(g.edges) == 3 * 1500
