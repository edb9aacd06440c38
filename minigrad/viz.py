"""Pictures of the autograd graph: which op made which tensor, with shapes and gradient norms.

    g = viz.graph(loss)          # the structure: g.nodes, g.edges; Jupyter shows it as SVG
    fig = viz.draw_graph(loss)   # the same picture as a matplotlib Figure

The graph is read from what `Function.apply` records: `t.grad_fn` names the op that made t and
`t.parents` lists its inputs. The layout (inputs left, output right) and both drawings are done
here, so no graphviz or other system program is needed.
"""
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import numpy as np

from . import backend
from .tensor import Tensor

MAX_NODES = 500      # a drawing with more nodes than this is unreadable anyway

# colours: op nodes, op outputs, leaves that get a gradient, constants (no gradient)
_FILL = {"op": "#cfe2f3", "tensor": "#fff8dc", "leaf": "#d9ead3", "const": "#eeeeee"}
_EDGE = {"op": "#3d85c6", "tensor": "#999999", "leaf": "#6aa84f", "const": "#bbbbbb"}


@dataclass
class Node:
    """One box of the drawing. kind: 'op', 'tensor' (an op's output), 'leaf' or 'const'."""
    kind: str
    label: str
    column: int = 0
    row: float = 0.0
    obj: object = field(default=None, repr=False)     # the Tensor (None for an op node)


@dataclass
class Graph:
    """Nodes and edges (index pairs source -> target) of an autograd graph, laid out in columns.

    Every op output t gives two nodes, the op `t.grad_fn` and the tensor t, joined by an edge;
    each input of the op gives an edge input -> op (twice when the op uses it twice, as in x * x).
    """
    nodes: list
    edges: list
    routes: list = field(default_factory=list)   # per edge: waypoints (column, row) between

    def draw(self, ax=None):
        """Draw with matplotlib into `ax` (a new Figure when None); returns the Figure."""
        return _draw_matplotlib(self, ax)

    def svg(self):
        """The drawing as an SVG document (a string)."""
        return _draw_svg(self)

    def _repr_svg_(self):          # Jupyter displays a Graph as this picture
        return self.svg()

    def __repr__(self):
        ops = sum(n.kind == "op" for n in self.nodes)
        return f"<autograd graph: {len(self.nodes)} nodes ({ops} ops), {len(self.edges)} edges>"


def graph(root, names=None):
    """The autograd graph that produced `root`, as a laid-out Graph.

    root:  a Tensor (or a scalar `Value` of lesson 01: any object with `data`, `grad`, `_op` and
           `_parents`).
    names: {label: tensor} to name tensors in the picture, e.g. dict(model.named_parameters()).
    Tensor boxes show the name, the shape, the value (one-element tensors) and, once backward has
    filled `.grad`, the gradient (one element) or its norm ||grad||. Op outputs keep `.grad` only
    after `retain_grad()`; `retain_grads(root)` does that for the whole graph.
    """
    if not isinstance(root, Tensor) and not _is_value(root):
        raise TypeError(f"graph() draws a minigrad Tensor (or a lesson-01 Value), got "
                        f"{type(root).__name__}")
    label_of = {id(t): name for name, t in (names or {}).items()}
    nodes, edges = [], []
    tensor_node, op_node = {}, {}          # id(tensor) -> index of its node, of its op's node
    order = _walk(root)
    size = len(order) + sum(1 for t in order if _op_and_parents(t)[0])
    if size > MAX_NODES:
        raise ValueError(f"the graph has {size} nodes, too many to draw (limit viz.MAX_NODES = "
                         f"{MAX_NODES}); draw an intermediate tensor instead of the loss")
    for t in order:                         # inputs before the ops that use them
        op, parents = _op_and_parents(t)
        if op:                              # the op first: every node after its inputs
            op_node[id(t)] = len(nodes)
            nodes.append(Node("op", op))
            edges += [(tensor_node[id(p)], op_node[id(t)]) for p in parents]
        kind = "tensor" if op else ("leaf" if _wants_grad(t) else "const")
        tensor_node[id(t)] = len(nodes)
        nodes.append(Node(kind, _tensor_label(t, label_of.get(id(t))), obj=t))
        if op:
            edges.append((op_node[id(t)], tensor_node[id(t)]))
    routes = _layout(nodes, edges)
    return Graph(nodes, edges, routes)


def draw_graph(root, names=None, ax=None):
    """Draw the autograd graph of `root` with matplotlib; returns the Figure (see `graph`)."""
    return graph(root, names).draw(ax)


def retain_grads(root):
    """Call retain_grad() on every op output behind `root`, so that after backward each box
    of the drawing shows its gradient. Returns those tensors, outputs last."""
    kept = [t for t in _walk(root) if isinstance(t, Tensor) and t.grad_fn is not None]
    for t in kept:
        t.retain_grad()
    return kept


# ---- reading the graph ----------------------------------------------------------------------
def _is_value(obj):
    return all(hasattr(obj, a) for a in ("data", "grad", "_op")) and (
        hasattr(obj, "_parents") or hasattr(obj, "_prev"))


def _op_and_parents(t):
    """(op name or None for a leaf, list of inputs) of a Tensor or a lesson-01 Value."""
    if isinstance(t, Tensor):
        return t.grad_fn, t.parents
    parents = list(getattr(t, "_parents", None) or getattr(t, "_prev", ()))
    return (t._op or "op") if parents else None, parents


def _wants_grad(t):
    return t.requires_grad if isinstance(t, Tensor) else True


def _walk(root):
    """Every tensor behind root, each after all of its inputs (iterative: graphs can be deep)."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        t, inputs_done = stack.pop()
        if inputs_done:
            order.append(t)
        elif id(t) not in seen:
            seen.add(id(t))
            stack.append((t, True))
            for p in reversed(_op_and_parents(t)[1]):
                if id(p) not in seen:
                    stack.append((p, False))
    return order


def _number(v):
    return f"{v:.4g}"


def _tensor_label(t, name):
    lines = [name] if name else []
    if isinstance(t, Tensor):
        if name is None and t.grad_fn is None:
            lines.append("param" if t.requires_grad else "const")
        lines.append(f"shape {tuple(t.shape)}" if t.ndim else "scalar")
        if t.data.size == 1:
            lines.append(f"value {_number(float(backend.to_numpy(t.data).ravel()[0]))}")
        if t.grad is not None:
            g = backend.to_numpy(t.grad).astype(np.float64)
            lines.append(f"grad {_number(float(g.ravel()[0]))}" if g.size == 1
                         else f"||grad|| {_number(float(np.linalg.norm(g)))}")
        return "\n".join(lines)
    if name is None and getattr(t, "label", ""):
        lines.append(t.label)
    lines += [f"data {_number(t.data)}", f"grad {_number(t.grad)}"]
    return "\n".join(lines)


# ---- layout: columns by distance to the output, rows ordered to keep edges short ------------
def _layout(nodes, edges):
    """Set each node's column and row; return, per edge, the waypoints (column, row) it passes.

    Columns count back from the output (a parameter or constant then sits right next to the op
    that uses it). An edge that skips columns gets a chain of virtual points, one per column
    crossed, which take part in the row ordering like nodes do, so no long edge runs through a
    box. Rows come from barycentre sweeps: each column is sorted by the mean row of its
    neighbours on the left, then on the right, which removes most crossings.
    """
    n = len(nodes)
    succs = [[] for _ in range(n)]
    for s, d in edges:
        succs[s].append(d)
    depth = [0] * n
    for i in reversed(range(n)):          # nodes were appended inputs first
        depth[i] = 1 + max((depth[s] for s in succs[i]), default=-1)
    column = [max(depth) - d for d in depth]
    chains = []                           # node, virtual points..., node; one chain per edge
    for s, d in edges:
        chain = [s]
        for c in range(column[s] + 1, column[d]):
            column.append(c)
            chain.append(len(column) - 1)
        chains.append(chain + [d])
    left = [[] for _ in column]
    right = [[] for _ in column]
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            left[b].append(a)
            right[a].append(b)
    columns = {}
    for i, c in enumerate(column):
        columns.setdefault(c, []).append(i)
    row = [0.0] * len(column)
    for members in columns.values():
        for r, i in enumerate(members):
            row[i] = float(r)
    keys = sorted(columns)
    for sweep in range(6):
        near = left if sweep % 2 == 0 else right
        for c in (keys if sweep % 2 == 0 else reversed(keys)):
            members = columns[c]
            centre = {i: np.mean([row[j] for j in near[i]]) if near[i] else row[i]
                      for i in members}
            members.sort(key=lambda i: (centre[i], row[i]))
            for r, i in enumerate(members):
                row[i] = float(r)
    for members in columns.values():      # centre every column on row 0
        for r, i in enumerate(members):
            row[i] = r - (len(members) - 1) / 2
    for i, node in enumerate(nodes):
        node.column, node.row = column[i], row[i]
    return [[(column[v], row[v]) for v in chain[1:-1]] for chain in chains]


def _bends(edges):
    """A curvature per edge: an input used twice by one op (x * x) fans out; others are straight."""
    count, seen, out = {}, {}, []
    for e in edges:
        count[e] = count.get(e, 0) + 1
    for e in edges:
        k = seen.get(e, 0)
        seen[e] = k + 1
        out.append(0.0 if count[e] == 1 else 0.35 * (k - (count[e] - 1) / 2))
    return out


# ---- matplotlib ---------------------------------------------------------------------------------
_DX, _DY = 1.7, 1.15     # data units between columns and between rows


def _draw_matplotlib(g, ax=None):
    if ax is None:
        from matplotlib.figure import Figure      # not pyplot: Jupyter then shows it once
        n_cols = 1 + max((n.column for n in g.nodes), default=0)
        n_rows = max([sum(1 for m in g.nodes if m.column == c) for c in range(n_cols)] + [1])
        fig = Figure(figsize=(max(3.0, 1.25 * n_cols + 0.5), max(2.0, 0.95 * n_rows + 0.6)))
        ax = fig.add_subplot()
    texts = []
    for n in g.nodes:
        style = "ellipse,pad=0.25" if n.kind == "op" else "round,pad=0.35"
        texts.append(ax.text(_DX * n.column, -_DY * n.row, n.label, ha="center", va="center",
                             fontsize=8 if n.kind != "op" else 9, zorder=2,
                             bbox=dict(boxstyle=style, fc=_FILL[n.kind], ec=_EDGE[n.kind])))
    line = dict(color="#555555", lw=1.0, shrinkA=1, shrinkB=1)
    for (s, d), bend, way in zip(g.edges, _bends(g.edges), g.routes or [[]] * len(g.edges)):
        start, end = texts[s].get_position(), texts[d].get_position()
        points = [(_DX * c, -_DY * r) for c, r in way]
        if points:                         # a long edge: along its waypoints, arrow at the end
            ax.annotate("", xy=points[0], xytext=start, zorder=3, arrowprops=dict(
                arrowstyle="-", patchA=texts[s].get_bbox_patch(), **line))
            ax.plot(*zip(*points), color=line["color"], lw=line["lw"], zorder=3)
            start = points[-1]
        ax.annotate("", xy=end, xytext=start, zorder=3, arrowprops=dict(
            arrowstyle="-|>", mutation_scale=10, connectionstyle=f"arc3,rad={bend}",
            patchA=None if points else texts[s].get_bbox_patch(),
            patchB=texts[d].get_bbox_patch(), **line))
    xs = [_DX * n.column for n in g.nodes] or [0.0]
    ys = [-_DY * n.row for n in g.nodes] or [0.0]
    ax.set_xlim(min(xs) - 0.9, max(xs) + 0.9)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.set_axis_off()
    return ax.figure


# ---- SVG ----------------------------------------------------------------------------------------
_CHAR_W, _LINE_H, _PAD = 6.6, 14.0, 8.0      # pixels per character and per line of 11px text


def _box(n):
    lines = n.label.split("\n")
    w = max(len(s) for s in lines) * _CHAR_W + 2 * _PAD
    h = len(lines) * _LINE_H + _PAD
    return (max(w, 38.0) if n.kind == "op" else w), max(h, 24.0)


def _draw_svg(g):
    sizes = [_box(n) for n in g.nodes]
    n_cols = 1 + max((n.column for n in g.nodes), default=0)
    col_w = [max([w for (w, _), n in zip(sizes, g.nodes) if n.column == c] + [30.0])
             for c in range(n_cols)]
    row_h = max([h for _, h in sizes] + [24.0]) + 18.0
    col_x = np.concatenate([[0.0], np.cumsum(np.array(col_w) + 46.0)])  # left edge of each column
    top = min((n.row for n in g.nodes), default=0.0)
    rows = 1 + max((n.row for n in g.nodes), default=0.0) - top
    centre = [(12 + col_x[n.column] + col_w[n.column] / 2, 12 + (n.row - top + 0.5) * row_h)
              for n in g.nodes]
    width, height = 24 + col_x[n_cols] - 46.0, 24 + rows * row_h
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="monospace" font-size="11">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555555"/>'
           '</marker></defs>']
    for (s, d), bend, way in zip(g.edges, _bends(g.edges), g.routes or [[]] * len(g.edges)):
        (x0, y0), (x1, y1) = centre[s], centre[d]
        x0, x1 = x0 + sizes[s][0] / 2, x1 - sizes[d][0] / 2        # right side -> left side
        points = [(12 + col_x[c] + col_w[c] / 2, 12 + (r - top + 0.5) * row_h) for c, r in way]
        if points:
            path = "".join(f" L{x:.1f},{y:.1f}" for x, y in points) + f" L{x1:.1f},{y1:.1f}"
        else:
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2 - bend * 2 * row_h
            path = f" Q{mx:.1f},{my:.1f} {x1:.1f},{y1:.1f}"
        out.append(f'<path class="edge" d="M{x0:.1f},{y0:.1f}{path}" fill="none" '
                   'stroke="#555555" marker-end="url(#arrow)"/>')
    for n, (w, h), (x, y) in zip(g.nodes, sizes, centre):
        if n.kind == "op":
            shape = (f'<ellipse cx="{x:.1f}" cy="{y:.1f}" rx="{w / 2:.1f}" ry="{h / 2:.1f}" '
                     f'fill="{_FILL[n.kind]}" stroke="{_EDGE[n.kind]}"/>')
        else:
            shape = (f'<rect x="{x - w / 2:.1f}" y="{y - h / 2:.1f}" width="{w:.1f}" '
                     f'height="{h:.1f}" rx="5" fill="{_FILL[n.kind]}" stroke="{_EDGE[n.kind]}"/>')
        lines = n.label.split("\n")
        first = y - (len(lines) - 1) * _LINE_H / 2 + 4
        spans = "".join(f'<tspan x="{x:.1f}" y="{first + k * _LINE_H:.1f}">{escape(s)}</tspan>'
                        for k, s in enumerate(lines))
        out.append(f'<g class="node {n.kind}">{shape}<text text-anchor="middle">{spans}</text></g>')
    out.append("</svg>")
    return "\n".join(out)
