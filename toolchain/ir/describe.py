"""A Graph in words: the metadata every file format records, and a readable node table."""

from __future__ import annotations

import importlib.metadata

from toolchain.data.encoding import ENCODING
from toolchain.ir.graph import Graph
from toolchain.ir.nodes import Conv2d, CubaLIF, Dense, Input, Node, SumPool2d


def version() -> str:
    try:
        return importlib.metadata.version("snn-deploy")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def graph_metadata(graph: Graph) -> dict[str, str]:
    """What a file of `graph` records about it besides the nodes (ONNX `metadata_props`)."""
    return {
        "time_steps": str(graph.T),
        "encoding": ENCODING,
        "producer": "snn-deploy",
        "version": version(),
        "graph_name": graph.name,
        "fixed_point": str(graph.is_fixed).lower(),
    }


def _weights(node: Dense | Conv2d) -> str:
    text = f"weight [{node.weight.min():.4g}, {node.weight.max():.4g}]"
    if node.weight_int is not None:
        text += f", weight_int [{node.weight_int.min()}, {node.weight_int.max()}]"
    return text


def _parameters(node: Node) -> str:
    match node:
        case Input() if node.constant_plane:
            return f"levels {node.levels}, last channel a constant plane (1 every step)"
        case Input():
            return f"levels {node.levels}"
        case Dense() if node.weight_int is not None:
            return f"{_weights(node)}, weight_exp {node.weight_exp}"
        case Dense():
            return _weights(node)
        case Conv2d():
            (sh, sw), (ph, pw) = node.stride, node.padding
            return f"{_weights(node)}, stride {sh}x{sw}, padding {ph}x{pw}"
        case SumPool2d():
            return f"size {node.size}, weight {node.weight:.4g}"
        case CubaLIF() if node.is_fixed:
            fixed = f"du {node.du}, dv {node.dv}, vth {node.vth}, scale {node.scale:.6g}"
            if node.reset_sub is not None:
                fixed += f", reset_sub {node.reset_sub}"
            if node.bias_mant is not None:
                fixed += f", bias_mant in [{node.bias_mant.min()}, {node.bias_mant.max()}]"
                fixed += f" << {node.bias_exp}"
            return f"{_neuron(node)}, {fixed}"
        case CubaLIF():
            return _neuron(node)
        case _:
            return ""


def _neuron(node: CubaLIF) -> str:
    text = f"tau_m {node.tau_m:.4g}, tau_s {node.tau_s:.4g}, threshold {node.threshold:.4g}"
    if node.reset_subtract is not None:
        text += f", reset by subtracting {node.reset_subtract:.4g}"
    if node.bias is not None:
        text += f", bias in [{node.bias.min():.4g}, {node.bias.max():.4g}]"
    if node.synaptic_bias is not None:
        low, high = node.synaptic_bias.min(), node.synaptic_bias.max()
        text += f", synaptic bias in [{low:.4g}, {high:.4g}]"
    if node.max_spikes > 1:
        text += f", spike counts up to {node.max_spikes}"
    if node.refractory:
        text += ", held at 0 the step after a spike"
    if node.readout:
        text += ", readout (no spikes: its membrane is the output)"
    return text


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
