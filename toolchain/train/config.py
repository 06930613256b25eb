"""Network and training configuration, read from TOML with the paper's fields.

One small frozen dataclass per part, validated on construction. Errors name the file (when the
config came from one), the key and the accepted values. Example: `examples/digits_mlp.toml`.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from toolchain.train.methods import METHODS, MODES


class ConfigError(ValueError):
    """A configuration value is missing or outside what is accepted."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class NeuronConfig:
    """The TSSL-BP neuron shared by all spiking layers. Times are in steps."""

    T: int
    tau_m: float
    tau_s: float
    threshold: float = 1.0

    def __post_init__(self) -> None:
        _require(isinstance(self.T, int) and self.T >= 1, f"neuron.T={self.T!r}: need an int >= 1")
        _require(self.tau_m >= 1, f"neuron.tau_m={self.tau_m!r}: need >= 1")
        _require(self.tau_s >= 1, f"neuron.tau_s={self.tau_s!r}: need >= 1")
        _require(self.threshold > 0, f"neuron.threshold={self.threshold!r}: need > 0")


@dataclass(frozen=True)
class DenseSpec:
    """Fully connected synapses (no bias) followed by a spiking neuron per output."""

    out: int
    weight_scale: float = 1.0
    type: str = "dense"

    def __post_init__(self) -> None:
        _require(self.out >= 1, f"dense layer: out={self.out!r} must be >= 1")


@dataclass(frozen=True)
class ConvSpec:
    """2-D convolution (stride 1, no bias) followed by a spiking neuron per output position."""

    out: int
    kernel: int
    padding: int = 0
    weight_scale: float = 1.0
    type: str = "conv"

    def __post_init__(self) -> None:
        _require(self.out >= 1, f"conv layer: out={self.out!r} must be >= 1")
        _require(self.kernel >= 1, f"conv layer: kernel={self.kernel!r} must be >= 1")
        _require(self.padding >= 0, f"conv layer: padding={self.padding!r} must be >= 0")


@dataclass(frozen=True)
class PoolSpec:
    """2x2 sum-pooling times a fixed weight (the paper's 1.1), stride 2, no neuron after it."""

    weight: float = 1.1
    type: str = "pool"


@dataclass(frozen=True)
class DropoutSpec:
    """Dropout with one mask per feature held over all time steps (training only)."""

    p: float
    type: str = "dropout"

    def __post_init__(self) -> None:
        _require(0.0 <= self.p < 1.0, f"dropout layer: p={self.p!r} must be in [0, 1)")


LayerSpec = DenseSpec | ConvSpec | PoolSpec | DropoutSpec
LAYER_TYPES: dict[str, type] = {
    "dense": DenseSpec,
    "conv": ConvSpec,
    "pool": PoolSpec,
    "dropout": DropoutSpec,
}


@dataclass(frozen=True)
class LossConfig:
    """The kernel loss (desired PSP pattern) or the count loss (filtered spike count)."""

    type: str = "kernel"
    desired_pattern: tuple[int, ...] | None = None  # None: the final code's default for T
    target_filter: str = "double"  # the final code filters the desired spikes twice
    desired_count: float = 4.0
    undesired_count: float = 1.0

    def __post_init__(self) -> None:
        _require(self.type in ("kernel", "count"), f"loss.type={self.type!r}: kernel or count")
        _require(
            self.target_filter in ("single", "double"),
            f"loss.target_filter={self.target_filter!r}: single or double",
        )
        if self.desired_pattern is not None:
            _require(
                all(v in (0, 1) for v in self.desired_pattern),
                f"loss.desired_pattern={list(self.desired_pattern)}: entries must be 0 or 1",
            )


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

    def __post_init__(self) -> None:
        _require(self.lr > 0, f"train.lr={self.lr!r}: need > 0")
        _require(self.batch_size >= 1, f"train.batch_size={self.batch_size!r}: need >= 1")
        _require(self.epochs >= 1, f"train.epochs={self.epochs!r}: need >= 1")
        _require(
            self.method in METHODS, f"train.method={self.method!r}: one of {', '.join(METHODS)}"
        )
        _require(self.mode in MODES, f"train.mode={self.mode!r}: one of {', '.join(MODES)}")
        _require(
            self.lr_schedule in LR_SCHEDULES,
            f"train.lr_schedule={self.lr_schedule!r}: one of {', '.join(LR_SCHEDULES)}",
        )
        _require(self.augment_shift >= 0, f"train.augment_shift={self.augment_shift!r}: need >= 0")
        _require(self.validation >= 0, f"train.validation={self.validation!r}: need >= 0")


@dataclass(frozen=True)
class Config:
    """A whole experiment: data set, neuron, layers in order, loss and training."""

    name: str
    dataset: str
    neuron: NeuronConfig
    layers: tuple[LayerSpec, ...]
    train: TrainConfig
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        _require(self.dataset in ("digits", "mnist"), f"dataset={self.dataset!r}: digits or mnist")
        _require(len(self.layers) > 0, "layers: at least one layer is needed")
        _require(
            isinstance(self.layers[-1], DenseSpec),
            f"layers: the last layer must be dense (the classifier), got {self.layers[-1].type}",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_epochs(self, epochs: int) -> Config:
        train = TrainConfig(**{**asdict(self.train), "epochs": epochs})
        return Config(self.name, self.dataset, self.neuron, self.layers, train, self.loss)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        _require(not unknown, f"unknown top-level keys {unknown}; accepted: {sorted(known)}")
        for key in ("name", "dataset", "neuron", "layers", "train"):
            _require(key in data, f"missing key {key!r}")
        return cls(
            name=data["name"],
            dataset=data["dataset"],
            neuron=_build(NeuronConfig, data["neuron"], "neuron"),
            layers=tuple(_layer(spec, i) for i, spec in enumerate(data["layers"])),
            train=_build(TrainConfig, data["train"], "train"),
            loss=_build(LossConfig, _tuple_pattern(data.get("loss", {})), "loss"),
        )


def _tuple_pattern(loss: dict[str, Any]) -> dict[str, Any]:
    pattern = loss.get("desired_pattern")
    return {**loss, "desired_pattern": None if pattern is None else tuple(pattern)}


def _build(kind: type, values: Any, where: str) -> Any:
    _require(isinstance(values, dict), f"{where}: expected a table, got {values!r}")
    accepted = {f.name for f in fields(kind)}
    unknown = sorted(set(values) - accepted)
    _require(not unknown, f"{where}: unknown keys {unknown}; accepted: {sorted(accepted)}")
    try:
        return kind(**values)
    except TypeError as err:  # a required key is missing
        raise ConfigError(f"{where}: {err}; accepted keys: {sorted(accepted)}") from None


def _layer(spec: Any, index: int) -> LayerSpec:
    _require(isinstance(spec, dict) and "type" in spec, f"layers[{index}]: needs a 'type' key")
    kind = LAYER_TYPES.get(spec["type"])
    _require(
        kind is not None, f"layers[{index}]: type={spec['type']!r}; one of {list(LAYER_TYPES)}"
    )
    return _build(kind, spec, f"layers[{index}] ({spec['type']})")


def load_config(path: Path | str) -> Config:
    """Reads a TOML config; every error names the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
        return Config.from_dict(data)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
