"""Run a netx file on Lava with lava-dl 0.6.0 (fixed point) and save every block's spikes and
states, for the interop tests (run by `.venv-lava-dl/bin/python`: lava, lava-dl and numpy only).

    run_netx.py NET OUT.npz --steps S [--network JSON] (--payload X.npy [--into-neurons]
                                                         | --bias B.npy --every T)

`--network` holds `netx.hdf5.Network`'s keyword arguments besides `net_config`. The input is
either graded spikes sent into `net.inp` (or with --into-neurons the input neurons' `a_in`, as
lava-dl's pilotnet test feeds them) by a RingBuffer, X of shape (*net.inp.shape, S), or
input neurons driven through their bias, B of shape (N, *in_layer.shape), sample n written into
`net.in_layer.neuron.bias_mant` for steps n*T + 1 .. n*T + T (0 after the last sample).
OUT holds, for each Lava block j (net.layers[j]), `spikes_j`, `u_j` and `v_j` of shape
(*block.shape, S) in Lava's (W, H, C) layout, column k = Lava step k + 1.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
from lava.lib.dl import netx
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc import io
from lava.proc.monitor.process import Monitor

RUN_CONFIG = Loihi2SimCfg(select_tag="fixed_pt")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("net")
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--network", type=json.loads, default={})
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--payload")
    source.add_argument("--bias")
    parser.add_argument("--every", type=int, help="steps per sample of --bias")
    parser.add_argument(
        "--into-neurons", action="store_true", help="--payload into the input neurons' a_in"
    )
    return parser.parse_args(argv)


class Recorder:
    """A sink for each block's spikes and a Monitor for each block's u and v."""

    def __init__(self, net: netx.hdf5.Network, steps: int) -> None:
        self.sinks = []
        self.monitors: list[tuple[Monitor, Monitor]] = []
        for block in net.layers:
            sink = io.sink.RingBuffer(shape=block.out.shape, buffer=steps)
            block.out.connect(sink.a_in)
            self.sinks.append(sink)
            self.monitors.append(
                (self._probe(block.neuron.u, steps), self._probe(block.neuron.v, steps))
            )

    @staticmethod
    def _probe(var: Any, steps: int) -> Monitor:
        monitor = Monitor()
        monitor.probe(var, steps)
        return monitor

    @staticmethod
    def _states(monitor: Monitor) -> np.ndarray:
        (data,) = monitor.get_data().values()
        (values,) = data.values()
        return np.moveaxis(np.asarray(values), 0, -1).astype(np.int64)

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for j, (sink, (u, v)) in enumerate(zip(self.sinks, self.monitors, strict=True)):
            out[f"spikes_{j}"] = sink.data.get().astype(np.uint8)
            out[f"u_{j}"], out[f"v_{j}"] = self._states(u), self._states(v)
        return out


def run_payload(net: netx.hdf5.Network, payload: np.ndarray, steps: int, neurons: bool) -> None:
    source = io.source.RingBuffer(data=payload.astype(np.int32))
    source.s_out.connect(net.in_layer.neuron.a_in if neurons else net.inp)
    net.run(condition=RunSteps(num_steps=steps), run_cfg=RUN_CONFIG)


def run_bias(net: netx.hdf5.Network, biases: np.ndarray, every: int, steps: int) -> None:
    bias = net.in_layer.neuron.bias_mant
    for index, sample in enumerate(biases):
        if index == 0:
            bias.init = sample.astype(np.int32)
        else:
            bias.set(sample.astype(np.int32))
        net.run(condition=RunSteps(num_steps=every), run_cfg=RUN_CONFIG)
    bias.set(np.zeros(biases.shape[1:], dtype=np.int32))
    net.run(condition=RunSteps(num_steps=steps - every * len(biases)), run_cfg=RUN_CONFIG)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    net = netx.hdf5.Network(net_config=args.net, **args.network)
    recorder = Recorder(net, args.steps)
    try:
        if args.payload:
            run_payload(net, np.load(args.payload), args.steps, args.into_neurons)
        else:
            run_bias(net, np.load(args.bias), args.every, args.steps)
        np.savez(args.out, **recorder.arrays())
    finally:
        net.stop()


if __name__ == "__main__":
    main()
