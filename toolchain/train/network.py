"""The spiking network: thin nn.Module wrappers over the neuron core and a training method.

Tensors are (N, C, H, W, T) for conv layers and (N, F, T) for dense layers, time last. Every
synaptic layer passes PSPs, not spikes: the input current of layer l is W_l a^{l-1}_t.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from toolchain.data.encoding import repeat_over_time
from toolchain.neuron import psp_filter, readout
from toolchain.pooling import sum_pool
from toolchain.train.config import (
    Config,
    ConvSpec,
    DenseSpec,
    LayerSpec,
    NeuronConfig,
    PoolSpec,
    layer_shapes,
)
from toolchain.train.methods import spiking_forward


class SpikingLayer(nn.Module):
    """Synapses (no bias) and a spiking neuron per output; returns (PSP, spikes)."""

    def __init__(self, weight: torch.Tensor, neuron: NeuronConfig, method: str, mode: str):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.neuron = neuron
        self.spiking = spiking_forward(method, mode)

    def synapse(self, psp_in: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, psp_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fire(self.synapse(psp_in))

    def fire(self, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The neurons on their input current (..., T): (PSP, spikes)."""
        n = self.neuron
        return self.spiking(current, tau_m=n.tau_m, tau_s=n.tau_s, threshold=n.threshold)

    def static_input_current(self, image: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
        """The current of an input that is the same image at every step: its PSP is the image
        times the filter's step response (T,), so the synapse runs once, W (r_t x) = r_t (W x)
        (equal up to rounding), where applying it to every step would cost T times as much."""
        once = self.synapse(image.unsqueeze(-1)).movedim(-1, 0)  # (1, N, ...)
        steps = response.reshape(-1, *[1] * (once.ndim - 1)) * once  # time-first storage
        return steps.movedim(0, -1)


class SpikingDense(SpikingLayer):
    """Dense synapses; the input is flattened in (C, H, W) order at every step."""

    def __init__(self, in_features: int, spec: DenseSpec, neuron: NeuronConfig, *method: str):
        weight = torch.empty(spec.out, in_features)
        nn.init.kaiming_normal_(weight)  # N(0, 2 / fan_in), as the authors' linear layers
        super().__init__(weight * spec.weight_scale, neuron, *method)

    def synapse(self, psp_in: torch.Tensor) -> torch.Tensor:
        x = psp_in.movedim(-1, 0).flatten(2)  # (T, N, F): the PSP's own time-first storage
        return F.linear(x, self.weight).movedim(0, -1)


class SpikingConv2d(SpikingLayer):
    """The same 2-D convolution (stride 1) at every time step."""

    def __init__(self, in_channels: int, spec: ConvSpec, neuron: NeuronConfig, *method: str):
        weight = torch.empty(spec.out, in_channels, spec.kernel, spec.kernel)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # torch's default conv init
        super().__init__(weight * spec.weight_scale, neuron, *method)
        self.padding = spec.padding

    def synapse(self, psp_in: torch.Tensor) -> torch.Tensor:
        return _per_step(psp_in, lambda x: F.conv2d(x, self.weight, padding=self.padding))


def _per_step(x: torch.Tensor, op) -> torch.Tensor:
    """A 2-D op on every step of (N, C, H, W, T), as one batch of T*N images in time-first order.

    The layers' tensors are stored time-first, so this reads and saves them without copies.
    """
    steps, batch = x.shape[-1], x.shape[0]
    images = x.movedim(-1, 0).reshape(steps * batch, *x.shape[1:-1])
    out = op(images)
    return out.reshape(steps, batch, *out.shape[1:]).movedim(0, -1)


class SumPool2d(nn.Module):
    """2x2 sum-pooling, stride 2, times a fixed weight; no neuron after it."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, psp_in: torch.Tensor) -> torch.Tensor:
        return _per_step(psp_in, lambda x: sum_pool(x, 2)) * self.weight


class TimeConsistentDropout(nn.Module):
    """Drops whole features: one Bernoulli mask per (sample, feature), the same at every step."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, psp_in: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return psp_in
        keep = torch.full(
            (*psp_in.shape[:-1], 1), 1.0 - self.p, dtype=psp_in.dtype, device=psp_in.device
        )
        return psp_in * torch.bernoulli(keep) / (1.0 - self.p)


class SpikingNetwork(nn.Module):
    """The layers of a Config in order; input is a static image, output the last layer's PSP."""

    def __init__(self, config: Config, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.config = config
        self.input_shape = input_shape
        shapes = layer_shapes(config.layers, input_shape)  # ConfigError names the layer
        inputs = [tuple(input_shape), *shapes[:-1]]
        self.layers = nn.ModuleList(
            _build_layer(spec, shape, config)
            for spec, shape in zip(config.layers, inputs, strict=True)
        )
        self.num_outputs = shapes[-1][0]

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """The images as the first synapse sees them: (x - mean) / std of the config's input."""
        norm = self.config.input
        return images if norm.is_identity else (images - norm.mean) / norm.std

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The analog image, normalised, every step, through the synaptic filter:
        (N, C, H, W, T)."""
        repeated = repeat_over_time(self.normalise(images), self.config.neuron.T)
        return psp_filter(repeated, self.config.neuron.tau_s)

    def step_response(self, like: torch.Tensor) -> torch.Tensor:
        """The synaptic filter's response to 1 at every step, (T,): the encoding's PSP of a
        pixel x is x times it."""
        ones = torch.ones(self.config.neuron.T, dtype=like.dtype, device=like.device)
        return psp_filter(ones, self.config.neuron.tau_s)

    def forward(
        self, images: torch.Tensor, *, return_spikes: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Output PSP (N, classes, T); with `return_spikes` also each spiking layer's spikes."""
        first = self.layers[0]
        if isinstance(first, SpikingLayer):  # its synapse once per batch, not once per step
            current = first.static_input_current(self.normalise(images), self.step_response(images))
            x, s = first.fire(current)
            spikes, rest = [s], self.layers[1:]
        else:
            x, spikes, rest = self.encode(images), [], self.layers
        for layer in rest:
            if isinstance(layer, SpikingLayer):
                x, s = layer(x)
                spikes.append(s)
            else:
                x = layer(x)
        return (x, spikes) if return_spikes else x

    @staticmethod
    def predict(output_psp: torch.Tensor) -> torch.Tensor:
        """The class whose output PSP summed over time is largest."""
        return readout(output_psp)


def _build_layer(spec: LayerSpec, shape: tuple[int, ...], config: Config) -> nn.Module:
    """The module of one layer on its (already validated) input shape."""
    neuron, method = config.neuron, (config.train.method, config.train.mode)
    if isinstance(spec, DenseSpec):
        return SpikingDense(math.prod(shape), spec, neuron, *method)
    if isinstance(spec, ConvSpec):
        return SpikingConv2d(shape[0], spec, neuron, *method)
    if isinstance(spec, PoolSpec):
        return SumPool2d(spec.weight)
    return TimeConsistentDropout(spec.p)
