"""Network and training configuration, read from TOML with the paper's fields.

One small frozen dataclass per part, validated on construction. Errors name the file (when the
config came from one), the key and the accepted values. Example: `examples/digits_mlp.toml`.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from toolchain.data.datasets import DATASET_NAMES, INPUT_SHAPES
from toolchain.errors import UserError
from toolchain.ir.graph import STEPS_MAX
from toolchain.train.methods import METHODS, MODES

SEED_MAX = 2**32 - 1  # numpy's and torch's generators both take it
EPOCHS_MAX = 100_000  # beyond it a run would outlast any machine it runs on


class ConfigError(UserError, ValueError):
    """A configuration value is missing or outside what is accepted."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(key: str, value: Any, low: int, high: int | None = None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    ok = ok and (high is None or value <= high)
    bound = f">= {low}" if high is None else f"in {low} .. {high}"
    _require(ok, f"{key}={value!r}: need an integer {bound}")


def _real(key: str, value: Any, low: float, *, above: bool = False, below: float | None = None):
    """A finite number >= low (> low with `above`), and < below if given."""
    ok = _is_number(value) and math.isfinite(value) and (value > low if above else value >= low)
    ok = ok and (below is None or value < below)
    bound = f"{'>' if above else '>='} {low}" + ("" if below is None else f" and < {below}")
    _require(ok, f"{key}={value!r}: need a finite number {bound}")


def _choice(key: str, value: Any, options: tuple[str, ...]) -> None:
    _require(value in options, f"{key}={value!r}: one of {', '.join(options)}")


@dataclass(frozen=True)
class NeuronConfig:
    """The TSSL-BP neuron shared by all spiking layers. Times are in steps."""

    T: int
    tau_m: float
    tau_s: float
    threshold: float = 1.0

    def __post_init__(self) -> None:
        _integer("T", self.T, 1, STEPS_MAX)
        _real("tau_m", self.tau_m, 1)
        _real("tau_s", self.tau_s, 1)
        _real("threshold", self.threshold, 0, above=True)


@dataclass(frozen=True)
class DenseSpec:
    """Fully connected synapses (no bias) followed by a spiking neuron per output."""

    out: int
    weight_scale: float = 1.0
    type: str = "dense"

    def __post_init__(self) -> None:
        _integer("out", self.out, 1)
        _real("weight_scale", self.weight_scale, 0, above=True)


@dataclass(frozen=True)
class ConvSpec:
    """2-D convolution (stride 1, no bias) followed by a spiking neuron per output position."""

    out: int
    kernel: int
    padding: int = 0
    weight_scale: float = 1.0
    type: str = "conv"

    def __post_init__(self) -> None:
        _integer("out", self.out, 1)
        _integer("kernel", self.kernel, 1)
        _integer("padding", self.padding, 0)
        _real("weight_scale", self.weight_scale, 0, above=True)


@dataclass(frozen=True)
class PoolSpec:
    """2x2 sum-pooling times a fixed weight (the paper's 1.1), stride 2, no neuron after it."""

    weight: float = 1.1
    type: str = "pool"

    def __post_init__(self) -> None:
        _real("weight", self.weight, 0, above=True)


@dataclass(frozen=True)
class DropoutSpec:
    """Dropout with one mask per feature held over all time steps (training only)."""

    p: float
    type: str = "dropout"

    def __post_init__(self) -> None:
        _real("p", self.p, 0, below=1)


LayerSpec = DenseSpec | ConvSpec | PoolSpec | DropoutSpec
LAYER_TYPES: dict[str, type] = {
    "dense": DenseSpec,
    "conv": ConvSpec,
    "pool": PoolSpec,
    "dropout": DropoutSpec,
}


def layer_shapes(
    layers: tuple[LayerSpec, ...], input_shape: tuple[int, ...]
) -> list[tuple[int, ...]]:
    """The output shape of every layer for an input (C, H, W); ConfigError names the layer."""
    shapes, shape = [], tuple(input_shape)
    for index, spec in enumerate(layers):
        where = f"layers[{index}] ({spec.type})"
        if isinstance(spec, DenseSpec):
            shape = (spec.out,)
        elif not isinstance(spec, DropoutSpec):
            _require(
                len(shape) == 3,
                f"{where}: needs a (C, H, W) input, gets {shape}; conv and pool come before dense",
            )
            channels, height, width = shape
            if isinstance(spec, ConvSpec):
                height, width = (n + 2 * spec.padding - spec.kernel + 1 for n in (height, width))
                _require(
                    height >= 1 and width >= 1,
                    f"{where}: kernel {spec.kernel} with padding {spec.padding} does not fit its "
                    f"input {shape}",
                )
                shape = (spec.out, height, width)
            else:
                _require(
                    height % 2 == 0 and width % 2 == 0,
                    f"{where}: 2x2 pooling needs an even height and width, its input is {shape}",
                )
                shape = (channels, height // 2, width // 2)
        shapes.append(shape)
    return shapes


@dataclass(frozen=True)
class LossConfig:
    """The kernel loss (desired PSP pattern) or the count loss (filtered spike count)."""

    type: str = "kernel"
    desired_pattern: tuple[int, ...] | None = None  # None: the final code's default for T
    target_filter: str = "double"  # the final code filters the desired spikes twice
    desired_count: float = 4.0
    undesired_count: float = 1.0

    def __post_init__(self) -> None:
        _choice("type", self.type, ("kernel", "count"))
        _choice("target_filter", self.target_filter, ("single", "double"))
        if self.desired_pattern is not None:
            _require(
                all(v in (0, 1) and not isinstance(v, float) for v in self.desired_pattern),
                f"desired_pattern={list(self.desired_pattern)}: entries must be 0 or 1",
            )
        _real("desired_count", self.desired_count, 0)
        _real("undesired_count", self.undesired_count, 0)


@dataclass(frozen=True)
class InputConfig:
    """The images' normalisation before the first layer, (x - mean) / std (the paper's MNIST
    code uses 0.1307 and 0.3081). On the chip the offset becomes a constant input plane."""

    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        _real("mean", self.mean, 0)
        _real("std", self.std, 0, above=True)

    @property
    def has_offset(self) -> bool:
        """Whether the deployed graph needs a constant input plane for the mean."""
        return self.mean != 0

    @property
    def is_identity(self) -> bool:
        return not self.has_offset and self.std == 1


LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """The paper's optimiser: AdamW, gradient-norm clipping and a weight clamp after each step."""

    lr: float
    batch_size: int
    epochs: int
    seed: int = 3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    weight_clamp: float = 4.0
    method: str = "tsslbp"  # or "bptt" (toolchain.train.methods)
    mode: str = "final"  # TSSL-BP's backward variant, for ablations
    lr_schedule: str = "constant"  # the paper's; "cosine" anneals to 0 over all epochs
    augment_shift: int = 0  # random translation of training images by up to this many pixels
    validation: int = 0  # training samples held out to choose the best epoch (best.pt)
    average_epochs: int = 0  # epochs after the schedule whose weights are averaged (average.pt)
    average_lr_scale: float = 0.1  # their constant learning rate, as a fraction of lr

    def __post_init__(self) -> None:
        _real("lr", self.lr, 0, above=True)
        _integer("batch_size", self.batch_size, 1)
        _integer("epochs", self.epochs, 1, EPOCHS_MAX)
        _integer("seed", self.seed, 0, SEED_MAX)
        _real("weight_decay", self.weight_decay, 0)
        _real("grad_clip", self.grad_clip, 0, above=True)
        _real("weight_clamp", self.weight_clamp, 0, above=True)
        _choice("method", self.method, METHODS)
        _choice("mode", self.mode, MODES)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _integer("augment_shift", self.augment_shift, 0)
        _integer("validation", self.validation, 0)
        _integer("average_epochs", self.average_epochs, 0, EPOCHS_MAX)
        _real("average_lr_scale", self.average_lr_scale, 0, above=True)

    @property
    def total_epochs(self) -> int:
        """The schedule's epochs and the averaged ones after it."""
        return self.epochs + self.average_epochs


@dataclass(frozen=True)
class Config:
    """A whole experiment: data set, neuron, layers in order, loss and training."""

    name: str
    dataset: str
    neuron: NeuronConfig
    layers: tuple[LayerSpec, ...]
    train: TrainConfig
    loss: LossConfig = field(default_factory=LossConfig)
    input: InputConfig = field(default_factory=InputConfig)

    def __post_init__(self) -> None:
        _require(isinstance(self.name, str) and self.name, f"name={self.name!r}: need a text")
        _choice("dataset", self.dataset, DATASET_NAMES)
        _require(len(self.layers) > 0, "layers: at least one layer is needed")
        _require(
            isinstance(self.layers[-1], DenseSpec),
            f"layers: the last layer must be dense (the classifier), got {self.layers[-1].type}",
        )
        layer_shapes(self.layers, INPUT_SHAPES[self.dataset])
        first = next(spec for spec in self.layers if not isinstance(spec, DropoutSpec))
        _require(
            not self.input.has_offset or isinstance(first, ConvSpec | DenseSpec),
            f"input.mean={self.input.mean}: an offset is carried into the first synapse, so the "
            f"first layer (after dropout) must be conv or dense, not {first.type}",
        )
        pattern = self.loss.desired_pattern
        _require(
            pattern is None or len(pattern) == self.neuron.T,
            f"loss.desired_pattern has {len(pattern or ())} steps; need neuron.T={self.neuron.T}",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_epochs(self, epochs: int, average_epochs: int | None = None) -> Config:
        average = self.train.average_epochs if average_epochs is None else average_epochs
        return replace(self, train=replace(self.train, epochs=epochs, average_epochs=average))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        _require(not unknown, f"unknown top-level keys {unknown}; accepted: {sorted(known)}")
        for key in ("name", "dataset", "neuron", "layers", "train"):
            _require(key in data, f"missing key {key!r}")
        _require(
            isinstance(data["layers"], list | tuple), "layers: need an array of tables [[layers]]"
        )
        return cls(
            name=data["name"],
            dataset=data["dataset"],
            neuron=_build(NeuronConfig, data["neuron"], "neuron"),
            layers=tuple(_layer(spec, i) for i, spec in enumerate(data["layers"])),
            train=_build(TrainConfig, data["train"], "train"),
            loss=_build(LossConfig, _tuple_pattern(data.get("loss", {})), "loss"),
            input=_build(InputConfig, data.get("input", {}), "input"),
        )


def _tuple_pattern(loss: Any) -> Any:
    if not isinstance(loss, dict) or loss.get("desired_pattern") is None:
        return loss
    pattern = loss["desired_pattern"]
    _require(
        isinstance(pattern, list | tuple),
        f"loss.desired_pattern={pattern!r}: need a list of 0 and 1",
    )
    return {**loss, "desired_pattern": tuple(pattern)}


def _build(kind: type, values: Any, where: str) -> Any:
    _require(isinstance(values, dict), f"{where}: expected a table, got {values!r}")
    accepted = [f.name for f in fields(kind)]
    unknown = sorted(set(values) - set(accepted))
    _require(not unknown, f"{where}: unknown keys {unknown}; accepted: {accepted}")
    try:
        return kind(**values)
    except TypeError:  # a required key is missing
        missing = [f.name for f in fields(kind) if f.name not in values and _required(f)]
        raise ConfigError(f"{where}: missing keys {missing}; accepted: {accepted}") from None
    except ConfigError as err:  # "table.key=..." or "layers[i] (type): key=..."
        joint = ": " if where.startswith("layers") else "."
        raise ConfigError(f"{where}{joint}{err}") from None


def _required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _layer(spec: Any, index: int) -> LayerSpec:
    _require(isinstance(spec, dict) and "type" in spec, f"layers[{index}]: needs a 'type' key")
    kind = LAYER_TYPES.get(spec["type"]) if isinstance(spec["type"], str) else None
    _require(
        kind is not None, f"layers[{index}]: type={spec['type']!r}; one of {list(LAYER_TYPES)}"
    )
    return _build(kind, spec, f"layers[{index}] ({spec['type']})")


def load_config(path: Path | str) -> Config:
    """Reads a TOML config; every error names the file."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "not found"
        raise ConfigError(f"{path}: config file {what}; expected a TOML file (see examples/)")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
        return Config.from_dict(data)
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
