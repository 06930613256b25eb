"""The graphs and parameters tests build, in one place: random float and integer weights (the
integer range from the target's formats), populations float and fixed point, fixed-point
synapses, random dense chains, the netx test networks, and lava-dl's tiny network."""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from targets.loihi2.formats import VTH_MAX, WEIGHT_MAX, WEIGHT_MIN
from toolchain.ir import Conv2d, CubaLIF, Dense, Graph, Input, Node

LAVA_DL = Path(__file__).parent / "fixtures" / "lava_dl"


def unpacked(name: str, folder: Path) -> Path:
    """lava-dl's gzipped fixture `name` (without .gz) written into `folder`."""
    path = folder / name
    with gzip.open(LAVA_DL / f"{name}.gz") as packed, open(path, "wb") as out:
        shutil.copyfileobj(packed, out)
    return path


def float_weights(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    """Normal weights times `scale`, float32."""
    return (rng.normal(size=shape) * scale).astype(np.float32)


def weight_ints(rng: np.random.Generator, *shape: int, low: int = WEIGHT_MIN) -> np.ndarray:
    """Integer weights drawn in [low, WEIGHT_MAX], int32."""
    return rng.integers(low, WEIGHT_MAX + 1, size=shape).astype(np.int32)


def float_lif(name: str, threshold: float = 1.0, **fields) -> CubaLIF:
    """The paper's neuron (tau_m 5, tau_s 3) in float."""
    return CubaLIF(name, 5.0, 3.0, threshold, **fields)


def fixed_lif(
    name: str,
    du: int,
    dv: int,
    vth: int,
    *,
    tau_m: float = 2.0,
    tau_s: float = 2.0,
    threshold: float = 1.0,
    scale: float = 1.0,
    **variant,
) -> CubaLIF:
    """A fixed-point population; a `reset_sub` brings its float twin reset_sub / scale."""
    if variant.get("reset_sub") is not None and "reset_subtract" not in variant:
        variant["reset_subtract"] = variant["reset_sub"] / scale
    return CubaLIF(name, tau_m, tau_s, threshold, du=du, dv=dv, vth=vth, scale=scale, **variant)


def fixed_dense(name: str, weight_int, weight_exp: int = 0) -> Dense:
    """A fixed-point Dense whose float weights are its integers."""
    w = np.asarray(weight_int, dtype=np.int32)
    return Dense(name, w.astype(np.float64), w, weight_exp)


def fixed_conv(name: str, weight_int, stride: int | tuple = 1, padding: int | tuple = 0) -> Conv2d:
    """A fixed-point Conv2d whose float weights are its integers."""
    w = np.asarray(weight_int, dtype=np.int32)
    return Conv2d(name, w.astype(np.float64), stride, padding, w)


# ----------------------------------------------------------------- random fixed-point chains


@dataclass(frozen=True)
class Layer:
    """A Dense synapse with weights drawn in [low, 254] and the population it feeds."""

    size: int
    weight_exp: int
    du: int
    dv: int
    vth: int
    low: int = WEIGHT_MIN
    reset_sub: int | None = None  # None: v = 0 on a spike
    bias: tuple[int, int] | None = None  # (largest |bias_mant|, bias_exp), drawn per neuron


def random_graph(
    rng: np.random.Generator, shape: tuple[int, int, int], levels: int, layers: list[Layer], T: int
) -> Graph:
    """Input -> (Dense -> CubaLIF) per layer, fixed point, tau 2 and scale 1."""
    nodes: list[Node] = [Input("in", shape, levels)]
    fan_in = int(np.prod(shape))
    for k, layer in enumerate(layers):
        w = weight_ints(rng, layer.size, fan_in, low=layer.low)
        nodes.append(Dense(f"fc{k}", w.astype(np.float64), w, layer.weight_exp))
        biases = {}
        if layer.bias is not None:
            largest, exp = layer.bias
            mant = rng.integers(-largest, largest + 1, size=layer.size).astype(np.int32)
            biases = {"bias": (mant * 2.0**exp), "bias_mant": mant, "bias_exp": exp}
        nodes.append(
            fixed_lif(f"lif{k}", layer.du, layer.dv, layer.vth, reset_sub=layer.reset_sub, **biases)
        )
        fan_in = layer.size
    return Graph(tuple(nodes), T=T)


# ----------------------------------------------------------------- the netx test networks

_NETX_RNG = np.random.default_rng(7)


def netx_integers(*shape: int) -> np.ndarray:
    """Random weights in the whole range, odd and even, including both extremes."""
    values = weight_ints(_NETX_RNG, *shape)
    values.reshape(-1)[:4] = [WEIGHT_MIN, WEIGHT_MAX, 3, -7]
    return values


def netx_dense(name: str, n_out: int, n_in: int, weight_exp: int = 0, weight_int=None) -> Dense:
    weight_int = netx_integers(n_out, n_in) if weight_int is None else weight_int
    weight = float_weights(_NETX_RNG, n_out, n_in, scale=0.3)
    return Dense(name, weight, weight_int=weight_int, weight_exp=weight_exp)


def netx_conv(
    name: str, out: int, cin: int, k: int, stride: int | tuple, padding: int | tuple
) -> Conv2d:
    weight = float_weights(_NETX_RNG, out, cin, k, k, scale=0.3)
    return Conv2d(name, weight, stride, padding, netx_integers(out, cin, k, k))


def netx_lif(name: str, du: int, dv: int, vth: int) -> CubaLIF:
    return fixed_lif(name, du, dv, vth, tau_m=5.0, tau_s=3.0, threshold=0.3, scale=321.5)


def mlp(weight_exp: int = 0) -> Graph:
    """A fixed dense chain whose first weights are even and within [-128, 126]."""
    nodes = (
        Input("pixels", (1, 4, 5), levels=255),
        netx_dense("fc1", 12, 20, weight_exp=weight_exp, weight_int=netx_integers(12, 20) // 4 * 2),
        netx_lif("lif1", du=1365, dv=819, vth=200),
        netx_dense("fc2", 6, 12),
        netx_lif("lif2", du=4095, dv=0, vth=VTH_MAX),
        netx_dense("fc3", 3, 6),
        netx_lif("out", du=0, dv=4096, vth=1),
    )
    return Graph(nodes, T=9, name="digits-mlp")


def convnet() -> Graph:
    """Three convolutions of several strides and paddings, then a dense layer, fixed point."""
    nodes = (
        Input("image", (2, 9, 8), levels=15),
        netx_conv("conv1", 4, 2, 3, stride=1, padding=1),  # -> (4, 9, 8)
        netx_lif("lif1", du=100, dv=200, vth=64),
        netx_conv("conv2", 5, 4, 3, stride=(2, 1), padding=(1, 0)),  # -> (5, 5, 6)
        netx_lif("lif2", du=2000, dv=3000, vth=500),
        netx_conv("conv3", 3, 5, 2, stride=2, padding=0),  # -> (3, 2, 3)
        netx_lif("lif3", du=7, dv=9, vth=11),
        netx_dense("fc", 10, 18),
        netx_lif("out", du=4000, dv=1, vth=3),
    )
    return Graph(nodes, T=5, name="tiny-conv")


def tiny_sample() -> np.ndarray:
    """lava-dl's tiny.net ground truth's sample: its input neurons' bias (W, H, C) as an image."""
    bias = np.load(LAVA_DL / "tinynet" / "input_bias.npy").transpose(2, 1, 0)
    return (bias / 255.0)[None]


def replace_node(graph: Graph, index: int, node) -> Graph:
    nodes = list(graph.nodes)
    nodes[index] = node
    return Graph(tuple(nodes), T=graph.T, name=graph.name)
