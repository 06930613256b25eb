"""A Graph in words: the metadata every file format records, and a readable node table."""

from __future__ import annotations

import numpy as np

from toolchain.ir.fields import set_fields
from toolchain.ir.graph import Graph
from toolchain.ir.nodes import Node
from toolchain.ir.provenance import graph_metadata


def _parameters(node: Node) -> str:
    """Every set field of the node (`ir.fields`): numbers, flags, shapes, arrays as ranges."""
    return ", ".join(
        _shown(name, kind, value) for name, kind, value in set_fields(node, shown=True)
    )


def _shown(name: str, kind: str, value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{name} [{value.min():.4g}, {value.max():.4g}]"
    if kind == "tuple":
        return f"{name} {'x'.join(map(str, value))}"
    if kind == "bool":
        return name
    if kind == "float":
        return f"{name} {value:.6g}"
    return f"{name} {value}"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """Columns padded to their widest cell; the last column is left ragged."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    padded = ([cell.ljust(width) for cell, width in zip(row, widths, strict=False)] for row in rows)
    return ["  ".join([*cells, row[-1]]).rstrip() for cells, row in zip(padded, rows, strict=True)]


def describe(graph: Graph) -> str:
    """A header line (name, T, float or fixed point, lowering, metadata) over a node table;
    the edges follow where the graph is not a chain."""
    kind = "fixed point" if graph.is_fixed else "float"
    lowered = "lowered" if graph.is_lowered else "not lowered"
    meta = ", ".join(f"{key}={value}" for key, value in graph_metadata(graph).items())
    header = f"graph {graph.name!r}: T={graph.T}, {kind}, {lowered}; metadata: {meta}"
    rows = [("name", "type", "output shape", "parameters")]
    for node, shape in zip(graph.nodes, graph.shapes(), strict=True):
        rows.append((node.name, type(node).__name__, "x".join(map(str, shape)), _parameters(node)))
    lines = [header, *_table(rows)]
    if not graph.is_chain:
        edges = (
            f"{a} -> {b}" + (" (previous step)" if graph.is_recurrent(a, b) else "")
            for a, b in graph.edges
        )
        lines.append(f"edges: {', '.join(edges)}")
    return "\n".join(lines)
