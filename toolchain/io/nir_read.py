"""Reading NIR files (the Neuromorphic Intermediate Representation, package `nir`) as a float
Graph whose float simulation gives the exporting library's own spikes.

NIR states continuous-time neurons; each library discretises them its own way and writes its
own reading of tau, r and w_in (see docs/nir.md for the table and the evidence). A
`Convention` turns a node's parameters and the step dt into that library's per-step factors:

    synaptic current  i_t = alpha i_{t-1} + g_syn x_t      (LIF and IF: no synapse, i_t = x_t)
    membrane          v_t = beta v_{t-1} + g_mem i_t,  a spike where v_t > threshold, then reset

Our CubaLIF is the same recurrence with a normalised filter, i_t = (1 - 1/tau_s) i_{t-1} +
x_t / tau_s and gain 1 into v, so tau_s = 1 / (1 - alpha), tau_m = 1 / (1 - beta) (infinite for
IF) and the neuron's input gain k = g_mem g_syn / (1 - alpha) is folded into the weights of the
synapse that feeds it (row by row; a convolution's per output channel). Per-neuron thresholds
that differ are folded the same way (v / threshold has threshold 1, exactly, whichever reset).

Supported: Input, Output, Affine and Linear, Conv2d (groups 1, dilation 1), with their biases
(into LIF and IF neurons a constant input to the membrane; into a CubaLIF's synaptic filter a
`synaptic_bias`; folded like the weights),
SumPool2d and AvgPool2d (kernel = stride, no padding; right after a Conv2d, as snnTorch's
tutorials write conv -> pool -> neurons, folded into the convolution), Flatten, LIF, CubaLIF
and IF with v_leak = v_reset = 0, reset to zero or by subtracting the threshold (at once, or
one step late as snnTorch does), in a feed-forward chain. Everything else is refused with the
node's name and type. A neuron that reads its own spikes through a Linear
(snnTorch's recurrent layers) imports as a self-recurrent population. Sinabs' and Rockpool's
neurons emit spike counts (`max_spikes`); snnTorch's Synaptic neurons resetting to zero hold
the membrane at 0 the step after a spike (`refractory`). Nested subgraphs are inlined. Other
cycles are not supported yet.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from targets.loihi2.formats import DELAY_MAX, INT32_LIMIT
from toolchain.errors import UserError
from toolchain.io.hdf5 import READ_ERRORS, check_self_contained
from toolchain.ir import Conv2d, CubaLIF, Dense, Flatten, Graph, GraphError, Input, Node, SumPool2d
from toolchain.ir.graph import chain_edges
from toolchain.ir.lowering import pooled_conv
from toolchain.ir.provenance import (
    DEFAULT_LEVELS,
    INPUT_LEVELS,
    NIR_DEFAULT_STEPS,
    PREDICTION,
    TIME_STEPS,
    library_prediction,
    written_here,
)


class NirImportError(UserError, ValueError):
    """A NIR file cannot be imported; the message names the file, the node and what is accepted."""


Factors = tuple[np.ndarray, np.ndarray]  # (decay per step, input gain), per neuron
UNBOUNDED = INT32_LIMIT - 1  # Sinabs' MultiSpike: as many spikes as thresholds crossed


def _membrane_euler(node: Any, dt: float) -> Factors:
    """NIR's forward Euler: beta = 1 - dt/tau, gain dt r / tau; IF: beta = 1, gain dt r."""
    if type(node).__name__ == "IF":
        return np.ones_like(node.r, dtype=np.float64), dt * np.asarray(node.r, np.float64)
    tau = np.asarray(getattr(node, "tau", getattr(node, "tau_mem", None)), np.float64)
    return 1.0 - dt / tau, dt * np.asarray(node.r, np.float64) / tau


def _synapse_euler(node: Any, dt: float) -> Factors:
    tau_syn = np.asarray(node.tau_syn, np.float64)
    return 1.0 - dt / tau_syn, dt * np.asarray(node.w_in, np.float64) / tau_syn


def _membrane_norse(node: Any, dt: float) -> Factors:
    """Norse writes tau = dt / tau_mem_inv, and integrates v += dt tau_mem_inv (r i - v)."""
    if type(node).__name__ == "IF":
        return np.ones_like(node.r, dtype=np.float64), np.asarray(node.r, np.float64)
    tau = np.asarray(getattr(node, "tau", getattr(node, "tau_mem", None)), np.float64)
    rate = dt * (dt / tau)
    return 1.0 - rate, rate * np.asarray(node.r, np.float64)


def _synapse_norse(node: Any, dt: float) -> Factors:
    """Norse adds the input to the current unscaled, then decays it by dt tau_syn_inv."""
    tau_syn = np.asarray(node.tau_syn, np.float64)
    return 1.0 - dt * (dt / tau_syn), np.asarray(node.w_in, np.float64)


def _membrane_sinabs(node: Any, dt: float) -> Factors:
    """Sinabs: beta = exp(-dt/tau) with tau in steps, its LIF's input normalised by 1 - beta
    (`norm_input`, on by default there); its IAF (NIR's IF) and ExpLeak (NIR's LI, `norm_input`
    off by default) add the input unscaled."""
    r = np.asarray(node.r, np.float64)
    kind = type(node).__name__
    if kind == "IF":
        return np.ones_like(r), r
    beta = np.exp(-dt / np.asarray(node.tau, np.float64))
    return beta, r if kind == "LI" else (1.0 - beta) * r


def _membrane_rockpool(node: Any, dt: float) -> Factors:
    """Rockpool: beta = exp(-dt/tau_mem), the synaptic current added unscaled (its `r` is
    tau exp(-dt/tau) / dt, which its own neurons do not use)."""
    tau = np.asarray(getattr(node, "tau", getattr(node, "tau_mem", None)), np.float64)
    return np.exp(-dt / tau), np.ones_like(tau)


def _synapse_rockpool(node: Any, dt: float) -> Factors:
    """Rockpool decays the current after adding the input: i_t = alpha (i_{t-1} + x_t)."""
    alpha = np.exp(-dt / np.asarray(node.tau_syn, np.float64))
    return alpha, alpha * np.asarray(node.w_in, np.float64)


@dataclass(frozen=True)
class Convention:
    """How one exporter's files are read: the step its exporter assumed, its neurons' reset,
    and its discretisation."""

    name: str
    dt: float | None  # None: the file's own reading needs --dt
    reset: str  # "zero" or "subtract" (the threshold, from v, on a spike)
    membrane: Callable[[Any, float], Factors] = _membrane_euler
    synapse: Callable[[Any, float], Factors] = _synapse_euler
    late: bool = False  # the subtraction lands one step after the spike (snnTorch)
    max_spikes: int = 1  # > 1: spike counts, as many thresholds subtracted (Sinabs, Rockpool)


CONVENTIONS = {
    c.name: c
    for c in (
        Convention("nir", None, "zero"),
        Convention("snntorch", 1e-4, "subtract", late=True),
        Convention("norse", 1e-3, "zero", _membrane_norse, _synapse_norse),
        Convention("spikingjelly", 1e-4, "zero"),
        Convention("sinabs", 1.0, "subtract", _membrane_sinabs, max_spikes=UNBOUNDED),
        Convention(
            "rockpool", 1e-3, "subtract", _membrane_rockpool, _synapse_rockpool, max_spikes=2**16
        ),
    )
}
SUPPORTED = (
    "Input, Output, Affine, Linear, Conv2d, SumPool2d, AvgPool2d, Scale, Flatten, LIF, CubaLIF, "
    "IF, LI (the last layer), Delay (before a Linear or Affine)"
)


def read_nir(
    path: Path | str,
    *,
    convention: str = "nir",
    dt: float | None = None,
    reset: str | None = None,
    max_spikes: int | None = None,
    steps: int | None = None,
    levels: int | None = None,
) -> Graph:
    """The float Graph of a NIR file, read with an exporter's conventions (module docstring).
    A file written by snn-deploy (`toolchain.io.nir_write`) supplies its own dt, reset, steps
    and levels where they are not given."""
    import nir

    path = Path(path)
    model = _read(path, nir)
    recorded = model.metadata if written_here(model.metadata) else {}
    rules = CONVENTIONS[convention]
    step = dt if dt is not None else _recorded(path, recorded, "dt", rules.dt, float)
    if step is None:
        raise NirImportError(f"{path}: NIR files do not record their time step; give --dt")
    reset = reset or recorded.get("reset") or rules.reset
    if reset not in ("zero", "subtract"):
        raise NirImportError(f"{path}: metadata reset={reset!r}; accepted: zero, subtract")
    steps = steps or _recorded(path, recorded, TIME_STEPS, NIR_DEFAULT_STEPS, int)
    levels = levels or _recorded(path, recorded, INPUT_LEVELS, DEFAULT_LEVELS, int)
    max_spikes = max_spikes or rules.max_spikes
    try:
        model = _flattened(model)
        rule = recorded.get(PREDICTION)  # a file of ours; else the library's own rule
        importer = _Importer(
            model, rules, step, convention, reset, max_spikes, None if rule is None else str(rule)
        )
        return importer.graph(path.stem, steps, levels)
    except (NirImportError, GraphError) as error:
        raise NirImportError(f"{path}: {error}") from None
    except READ_ERRORS as error:
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        raise NirImportError(f"{path}: cannot be read as a NIR graph ({reason})") from None


def _recorded(path: Path, metadata: dict, key: str, default: Any, kind: type) -> Any:
    """A number snn-deploy recorded in the file's metadata (> 0, of `kind`), or `default`."""
    value = metadata.get(key, default)
    if value is default:
        return value
    if isinstance(value, np.generic | np.ndarray) and np.size(value) == 1:
        value = np.asarray(value).item()  # h5py hands numbers back as numpy scalars
    number = isinstance(value, int | float) and not isinstance(value, bool)
    whole = kind is float or (number and value == int(value))
    if not (number and math.isfinite(value) and value > 0 and whole):
        wanted = "a number" if kind is float else "a whole number"
        raise NirImportError(f"{path}: metadata {key}={value!r}; need {wanted} > 0")
    return kind(value)


def _read(path: Path, nir: Any) -> Any:
    check_self_contained(path)
    try:
        try:
            return nir.read(path)
        except Exception:  # noqa: BLE001  (many exporters need the lenient reading)
            return nir.read(path, type_check=False)
    except Exception as error:  # noqa: BLE001  (h5py, KeyError, ...: a damaged or foreign file)
        raise NirImportError(f"{path}: not a readable NIR file ({error})") from None


class _Importer:
    def __init__(
        self,
        model: Any,
        rules: Convention,
        dt: float,
        convention: str,
        reset: str,
        max_spikes: int,
        prediction: str | None = None,
    ) -> None:
        self.model, self.rules, self.dt, self.convention = model, rules, dt, convention
        self.reset, self.max_spikes, self.prediction = reset, max_spikes, prediction
        self.order, self.loops = _chain(model)  # loops: population -> its recurrent synapse
        self.nodes: list[Node] = []
        self.bias: np.ndarray | None = None  # of the synapse just read, for its neurons
        self.delay: np.ndarray | None = None  # steps of a Delay just read, per output before it

    def graph(self, name: str, steps: int, levels: int) -> Graph:
        for key in self.order:
            node = self.model.nodes[key]
            kind = type(node).__name__
            reader = getattr(self, f"_{kind.lower()}", None)
            if reader is None:
                raise NirImportError(
                    f"node {key!r} ({kind}) is not supported; accepted: {SUPPORTED}"
                )
            try:
                reader(key, node, levels)
            except (NirImportError, GraphError):
                raise
            except READ_ERRORS as error:
                # a field of a type or shape NIR does not define: damaged or foreign
                reason = f"{type(error).__name__}: {error}".splitlines()[0]
                message = f"node {key!r} ({kind}): a field cannot be read ({reason})"
                raise NirImportError(message) from None
        plain = tuple(n for n in self.nodes if n.name not in self.loops.values())
        edges = list(chain_edges(plain))
        for population, synapse in self.loops.items():
            edges += [(synapse, population), (population, synapse)]
        readout = self.nodes[-1].readout if isinstance(self.nodes[-1], CubaLIF) else False
        rule = self.prediction or library_prediction(readout)
        return Graph(tuple(self.nodes), T=steps, name=name, edges=tuple(edges), prediction=rule)

    def _input(self, key: str, node: Any, levels: int) -> None:
        shape = [int(n) for n in np.asarray(next(iter(node.input_type.values())))]
        while len(shape) > 4 and shape[0] == 1:
            shape = shape[1:]
        if len(shape) in (2, 4):  # a batch or time dimension (Rockpool, Sinabs) before the shape
            shape = shape[1:]
        if len(shape) == 1:
            shape = [shape[0], 1, 1]
        if len(shape) != 3:
            raise NirImportError(f"node {key!r}: input shape {shape}; accepted: (n,) or (C, H, W)")
        self.nodes.append(Input(key, tuple(shape), levels))

    def _output(self, key: str, node: Any, levels: int) -> None:
        pass

    def _affine(self, key: str, node: Any, levels: int) -> None:
        self._linear(key, node, levels)
        self.bias = _bias(node.bias)

    def _linear(self, key: str, node: Any, levels: int) -> None:
        weight = np.asarray(node.weight, np.float64)
        delay = None
        if self.delay is not None:  # per input: each column of the weights
            delay = np.broadcast_to(self.delay.reshape(1, -1), weight.shape).astype(np.int32)
            self.delay = None
        self.nodes.append(Dense(key, weight, delay=delay))
        self.bias = None

    def _delay(self, key: str, node: Any, levels: int) -> None:
        """Axonal delays of the outputs before it, in steps of dt, held for the next Linear or
        Affine (a Dense's delays per input)."""
        steps = np.asarray(node.delay, np.float64).reshape(-1) / self.dt
        whole = np.rint(steps)
        if np.any(np.abs(steps - whole) > 1e-6) or whole.min() < 0 or whole.max() > DELAY_MAX:
            raise NirImportError(
                f"node {key!r}: delays of {_span(steps)} steps of dt={self.dt}; accepted: whole "
                f"steps 0 .. {DELAY_MAX}"
            )
        position = self.order.index(key) + 1
        following = self.order[position] if position < len(self.order) else None
        kind = "nothing" if following is None else type(self.model.nodes[following]).__name__
        if kind not in ("Linear", "Affine"):
            raise NirImportError(
                f"node {key!r}: a Delay before a {kind}; accepted: before a Linear or Affine"
            )
        self.delay = whole

    def _conv2d(self, key: str, node: Any, levels: int) -> None:
        self.bias = _bias(node.bias)
        stride, padding = _pair(key, "stride", node.stride), _pair(key, "padding", node.padding)
        if _square(key, "dilation", node.dilation) != 1 or node.groups != 1:
            raise NirImportError(f"node {key!r}: dilation and groups must be 1")
        self.nodes.append(Conv2d(key, np.asarray(node.weight, np.float64), stride, padding))

    def _sumpool2d(self, key: str, node: Any, levels: int, average: bool = False) -> None:
        size = _square(key, "kernel_size", node.kernel_size)
        if _square(key, "stride", node.stride) != size or _square(key, "padding", node.padding):
            raise NirImportError(f"node {key!r}: pooling needs stride = kernel size, no padding")
        pool = SumPool2d(key, size, 1.0 / size**2 if average else 1.0)
        last = self.nodes[-1] if self.nodes else None
        if isinstance(last, Conv2d):  # snnTorch's tutorials: conv -> pool -> neurons
            self.nodes[-1] = pooled_conv(last, pool)
            if self.bias is not None:  # each pooled output sums size^2 biased positions
                self.bias = self.bias * size**2 * pool.weight
            return
        self.nodes.append(pool)

    def _avgpool2d(self, key: str, node: Any, levels: int) -> None:
        self._sumpool2d(key, node, levels, average=True)

    def _flatten(self, key: str, node: Any, levels: int) -> None:
        self.nodes.append(Flatten(key))

    def _scale(self, key: str, node: Any, levels: int) -> None:
        """A uniform scale after pooling or a synapse, folded into it."""
        factor = _uniform(key, "scale", np.asarray(node.scale, np.float64))
        last = self.nodes[-1] if self.nodes else None
        if isinstance(last, SumPool2d):
            self.nodes[-1] = SumPool2d(last.name, last.size, last.weight * factor)
        elif isinstance(last, Dense | Conv2d):
            self.nodes[-1] = type(last)(**{**_fields(last), "weight": last.weight * factor})
            self.bias = None if self.bias is None else self.bias * factor
        else:
            raise NirImportError(f"node {key!r}: a Scale must follow pooling or a synapse")

    def _lif(self, key: str, node: Any, levels: int) -> None:
        self._population(key, node, (np.zeros(1), np.ones(1)))

    def _if(self, key: str, node: Any, levels: int) -> None:
        self._population(key, node, (np.zeros(1), np.ones(1)))

    def _li(self, key: str, node: Any, levels: int) -> None:
        """A leaky integrator: never spikes, its membrane is the output (the last layer)."""
        self._population(key, node, (np.zeros(1), np.ones(1)), readout=True)

    def _cubalif(self, key: str, node: Any, levels: int) -> None:
        # snnTorch's Synaptic neuron, resetting to zero, zeroes the whole next step's membrane
        refractory = int(self.convention == "snntorch" and self.reset == "zero")
        self._population(key, node, self.rules.synapse(node, self.dt), refractory)

    def _population(
        self,
        key: str,
        node: Any,
        synapse: Factors,
        refractory: int = 0,
        readout: bool = False,
    ) -> None:
        for field in ("v_leak", "v_reset"):
            value = getattr(node, field, None)
            if value is not None and np.any(np.asarray(value) != 0):
                raise NirImportError(f"node {key!r}: {field} must be 0, found {np.unique(value)}")
        alpha, g_syn = synapse
        try:
            beta, g_mem = self.rules.membrane(node, self.dt)
        except AttributeError as error:  # a neuron the exporter never writes
            kind = type(node).__name__
            raise NirImportError(
                f"node {key!r} ({kind}) has no {error.name}: {self.convention} does not write "
                f"{kind} nodes; import the file --from the library that wrote it"
            ) from None
        each_alpha = np.asarray(alpha, np.float64)  # per element, as the gains are
        alpha = self._per_output(key, "synaptic decay", alpha)
        beta = self._per_output(key, "membrane decay", beta)
        if not (np.all((alpha >= 0) & (alpha < 1)) and np.all((beta >= 0) & (beta <= 1))):
            raise NirImportError(
                f"node {key!r}: per-step decays alpha={_span(alpha)}, beta={_span(beta)} are "
                f"outside [0, 1) and [0, 1]: is dt={self.dt} the exporter's step?"
            )
        threshold = np.asarray(getattr(node, "v_threshold", 1.0), np.float64)
        if not np.all(np.isfinite(threshold) & (threshold > 0)):
            raise NirImportError(
                f"node {key!r}: v_threshold {np.unique(threshold).tolist()}; need finite "
                "numbers > 0"
            )
        gain = g_mem * g_syn / (1.0 - each_alpha) / threshold
        rows = self._fold_into_synapse(key, gain)
        with np.errstate(divide="ignore"):
            tau_m = np.where(beta == 1, math.inf, 1.0 / (1.0 - beta))
        subtract = None if readout else self._reset_subtract(key, beta)
        bias = self.bias
        if key in self.loops:  # its recurrent synapse, placed before it (a recurrent edge)
            recurrent, recurrent_bias = self._recurrent(key, rows)
            self.nodes.append(recurrent)
            if recurrent_bias is not None:
                bias = recurrent_bias if bias is None else bias + recurrent_bias
        if bias is not None:
            bias = np.broadcast_to(bias * rows, rows.shape).astype(np.float64)
        synaptic = np.any(alpha != 0)  # a bias enters the synaptic filter; without one, v's
        self.nodes.append(
            CubaLIF(
                key,
                tau_m,
                1.0 / (1.0 - alpha),
                1.0,
                reset_subtract=subtract,
                bias=None if synaptic else bias,
                max_spikes=1 if readout else self.max_spikes,
                synaptic_bias=bias if synaptic else None,
                refractory=refractory,
                readout=readout,
            )
        )

    def _recurrent(self, key: str, rows: np.ndarray) -> tuple[Dense, np.ndarray | None]:
        """The Linear or Affine that feeds population `key` its own spikes, with the same gain
        per neuron as its other synapse, and its bias (unscaled), which joins the population's."""
        name = self.loops[key]
        node = self.model.nodes[name]
        if type(node).__name__ not in ("Linear", "Affine"):
            raise NirImportError(f"node {name!r}: a recurrent synapse must be Linear or Affine")
        weight = np.asarray(node.weight, np.float64) * rows.reshape(-1, 1)
        return Dense(name, weight), _bias(getattr(node, "bias", None))

    def _reset_subtract(self, key: str, beta: np.ndarray) -> float | np.ndarray | None:
        """What a spike subtracts from v / threshold at once: 1, or 1 / beta for a subtraction
        that lands a step late (beta (v - 1/beta) = beta v - 1); None: reset to 0."""
        if self.reset == "zero":
            return None
        if not self.rules.late:
            return 1.0
        if np.any(beta == 0):
            raise NirImportError(
                f"node {key!r}: a late subtraction with no memory (beta = 0) cannot be moved to "
                "the step of the spike"
            )
        return 1.0 / beta

    def _per_output(self, key: str, what: str, values: np.ndarray) -> np.ndarray:
        """A neuron parameter of population `key`, one per output row (neuron) of the synapse
        before it, or per channel where that is a convolution."""
        synapse = self.nodes[-1] if self.nodes else None
        if not isinstance(synapse, Dense | Conv2d):
            raise NirImportError(f"node {key!r}: a neuron must follow a weighted synapse")
        out = synapse.weight.shape[0]
        values = np.asarray(values, np.float64).reshape(-1)
        if values.size == 1:
            return np.full(out, values[0])
        if isinstance(synapse, Dense):
            return values
        per_channel = values.reshape(out, -1)
        if np.any(per_channel != per_channel[:, :1]):
            raise NirImportError(
                f"node {key!r}: the {what} varies within a channel ({_span(values)}); after a "
                "convolution a population takes one value per channel"
            )
        return per_channel[:, 0]

    def _fold_into_synapse(self, key: str, gain: np.ndarray) -> np.ndarray:
        """Multiplies the weights of the synapse before `key` by each neuron's input gain (per
        output row, or channel); returns those factors, which its bias takes too."""
        rows = self._per_output(key, "input gain", gain)
        synapse = self.nodes[-1]
        scale = rows.reshape(-1, *([1] * (synapse.weight.ndim - 1)))
        self.nodes[-1] = type(synapse)(**{**_fields(synapse), "weight": synapse.weight * scale})
        return rows


def _fields(node: Node) -> dict[str, Any]:
    return {name: getattr(node, name) for name in node.__dataclass_fields__}


def _uniform(key: str, what: str, values: np.ndarray) -> float:
    flat = np.unique(np.asarray(values, np.float64))
    if flat.size != 1:
        raise NirImportError(
            f"node {key!r}: the {what} differs between neurons ({flat.min():.6g} to "
            f"{flat.max():.6g}); a population has one"
        )
    return float(flat[0])


def _span(values: np.ndarray) -> str:
    """One value, or the range of several, for messages."""
    low, high = float(np.min(values)), float(np.max(values))
    return f"{low:.6g}" if low == high else f"{low:.6g} to {high:.6g}"


def _square(key: str, what: str, value: Any) -> int:
    values = np.unique(np.asarray(value).reshape(-1))
    if values.size != 1 or not float(values[0]).is_integer():
        raise NirImportError(f"node {key!r}: {what}={np.asarray(value).tolist()} must be square")
    return int(values[0])


def _pair(key: str, what: str, value: Any) -> tuple[int, int]:
    """An (h, w) stride or padding; one value stands for both."""
    values = np.asarray(value).reshape(-1)
    if values.size not in (1, 2) or not all(float(v).is_integer() for v in values):
        raise NirImportError(f"node {key!r}: {what}={values.tolist()} must be integers (h, w)")
    return (int(values[0]), int(values[-1]))


def _bias(bias: Any) -> np.ndarray | None:
    """A synapse's bias as a float array, or None where it is absent or zero."""
    if bias is None or not np.any(np.asarray(bias) != 0):
        return None
    return np.asarray(bias, np.float64).reshape(-1)


@dataclass(frozen=True)
class _Flat:
    """A NIR graph's nodes and edges with every subgraph inlined."""

    nodes: dict[str, Any]
    edges: list[tuple[str, str]]


def _flattened(model: Any) -> _Flat:
    """Inlines nested subgraphs (a NIRGraph as a node): their nodes become `<graph>.<node>`,
    an edge into the subgraph goes to what its Input feeds, one out of it leaves from what feeds
    its Output (an edge may also name the port, `<graph>.<input or output>`)."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entries: dict[str, list[str]] = {}  # a subgraph, or one of its ports -> inner targets
    exits: dict[str, list[str]] = {}
    for key, node in model.nodes.items():
        if not hasattr(node, "nodes"):
            nodes[key] = node
            continue
        inner = _flattened(node)
        kinds = {name: type(n).__name__ for name, n in inner.nodes.items()}
        for name, child in inner.nodes.items():
            if kinds[name] not in ("Input", "Output"):
                nodes[f"{key}.{name}"] = child
        for a, b in inner.edges:
            if kinds[a] == "Input":
                for port in (key, f"{key}.{a}"):
                    entries.setdefault(port, []).append(f"{key}.{b}")
            elif kinds[b] == "Output":
                for port in (key, f"{key}.{b}"):
                    exits.setdefault(port, []).append(f"{key}.{a}")
            else:
                edges.append((f"{key}.{a}", f"{key}.{b}"))
    for a, b in model.edges:
        edges += [(s, t) for s in exits.get(a, [a]) for t in entries.get(b, [b])]
    return _Flat(nodes, edges)


def _chain(model: Any) -> tuple[list[str], dict[str, str]]:
    """Node names from the input along the edges, and the self-loops set aside (a neuron ->
    a synapse -> the same neuron, as snnTorch writes recurrent layers: population -> synapse);
    refuses branches and other cycles."""
    for source, target in model.edges:
        for end in (source, target):
            if end not in model.nodes:
                raise NirImportError(f"edge {source!r} -> {target!r}: the file has no node {end!r}")
    loops = _self_loops(model)
    inside = set(loops.values())
    successors: dict[str, list[str]] = {}
    for source, target in model.edges:
        if source not in inside and target not in inside:
            successors.setdefault(source, []).append(target)
    cycle = _cycle(successors)
    if cycle:
        raise NirImportError(
            f"a cycle through {cycle!r} (recurrence): only feed-forward chains import so far"
        )
    starts = [k for k, n in model.nodes.items() if type(n).__name__ == "Input"]
    if len(starts) != 1:
        raise NirImportError(f"needs exactly one Input node, found {starts}")
    order, seen = [starts[0]], {starts[0]}
    while successors.get(order[-1]):
        following = successors[order[-1]]
        if len(following) != 1:
            raise NirImportError(
                f"node {order[-1]!r} starts a branch: only feed-forward chains import so far"
            )
        order.append(following[0])
        seen.add(following[0])
    missing = sorted(set(model.nodes) - seen - inside)
    if missing:
        raise NirImportError(f"nodes {missing} are not on the chain from the input")
    return order, loops


def _self_loops(model: Any) -> dict[str, str]:
    """Neuron -> synapse for every synapse whose only input and only output is one neuron."""
    sources: dict[str, list[str]] = {}
    targets: dict[str, list[str]] = {}
    for source, target in model.edges:
        targets.setdefault(source, []).append(target)
        sources.setdefault(target, []).append(source)
    neurons = ("LIF", "CubaLIF", "IF")
    loops = {}
    for key, node in model.nodes.items():
        ins, outs = sources.get(key, []), targets.get(key, [])
        if type(node).__name__ in ("Linear", "Affine") and len(ins) == 1 and ins == outs:
            if type(model.nodes[ins[0]]).__name__ in neurons:
                loops[ins[0]] = key
    return loops


def _cycle(successors: dict[str, list[str]]) -> str | None:
    """A node on a cycle of the edges, if there is one (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str) -> str | None:
        state[node] = 1
        for after in successors.get(node, []):
            if state.get(after) == 1:
                return after
            if after not in state and (found := visit(after)):
                return found
        state[node] = 2
        return None

    for node in list(successors):
        if node not in state and (found := visit(node)):
            return found
    return None
