"""Where fixed point first leaves float: for every sample, the first (step, layer) at which a
population's fixed-point spikes differ from the float ones, on the float time axis (the timing
model's alignment, `toolchain.report.compare`), and the neurons that differ there.

"First" is causal order: a layer's step j is computed from the layer before at the same step
j (the float model has no delay between layers), so divergences are ordered by step, then by
layer; everything before it agrees on both sides. A read-out's membrane is not compared (float
and integer membranes never match exactly); a sample whose spikes agree everywhere has none.
Per layer, a histogram of the steps at which samples first diverge there; per changed
prediction, its first divergence (the list is ordered earliest first: the worst samples).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

SHOWN_NEURONS = 8  # neurons listed per divergence


@dataclass(frozen=True)
class FirstDivergence:
    sample: int
    layer: int  # population index
    step: int  # on the float time axis, 0-based
    neurons: tuple[int, ...]  # flat indices in the population's (C, H, W) order, the first few
    differing: int  # how many neurons differ at that step


def first_divergences(
    float_spikes: list[np.ndarray], fixed_spikes: list[np.ndarray], compared: list[bool]
) -> list[FirstDivergence | None]:
    """Per sample of a batch (spikes per layer, (N, *shape, T)), its first divergence."""
    samples = len(float_spikes[0])
    found: list[FirstDivergence | None] = [None] * samples
    for layer, (f, q) in enumerate(zip(float_spikes, fixed_spikes, strict=True)):
        if not compared[layer]:
            continue
        differ = (f != q).reshape(samples, -1, f.shape[-1])  # (N, neurons, T)
        steps_differing = differ.any(axis=1)
        for n in np.flatnonzero(steps_differing.any(axis=1)):
            step = int(steps_differing[n].argmax())
            current = found[n]
            if current is not None and (current.step, current.layer) <= (step, layer):
                continue
            neurons = np.flatnonzero(differ[n, :, step])
            shown = tuple(int(i) for i in neurons[:SHOWN_NEURONS])
            found[n] = FirstDivergence(int(n), layer, step, shown, len(neurons))
    return found


@dataclass
class Divergences:
    """First divergences over a comparison's samples."""

    layers: list[str]
    steps: int
    diverging: int = 0  # samples with any divergence
    histogram: list[list[int]] = field(default_factory=list)  # per layer, per step
    changed: list[FirstDivergence] = field(default_factory=list)  # of changed predictions

    def __post_init__(self) -> None:
        self.histogram = self.histogram or [[0] * self.steps for _ in self.layers]

    def add(self, batch: list[FirstDivergence | None], changed: np.ndarray, offset: int) -> None:
        """One batch's divergences (samples offset ..); `changed` marks changed predictions."""
        for divergence in batch:
            if divergence is None:
                continue
            self.diverging += 1
            self.histogram[divergence.layer][divergence.step] += 1
            if changed[divergence.sample]:
                self.changed.append(replace(divergence, sample=offset + divergence.sample))

    def worst(self) -> list[FirstDivergence]:
        """Changed predictions, those diverging earliest first."""
        return sorted(self.changed, key=lambda d: (d.step, d.layer, d.sample))

    def to_json(self) -> dict[str, object]:
        return {
            "samples_diverging": self.diverging,
            "per_layer": [
                {"layer": name, "first_divergence_steps": counts}
                for name, counts in zip(self.layers, self.histogram, strict=True)
            ],
            "changed_predictions": [
                {
                    "index": d.sample,
                    "layer": self.layers[d.layer],
                    "step": d.step,
                    "neurons": list(d.neurons),
                    "differing_neurons": d.differing,
                }
                for d in self.worst()
            ],
        }

    def lines(self, shown: int = 5) -> list[str]:
        """For the text table: where samples first diverge, and the earliest changed ones."""
        where = ", ".join(
            f"{name} {sum(counts)}"
            for name, counts in zip(self.layers, self.histogram, strict=True)
        )
        lines = [f"first divergence (samples): {where}; {self.diverging} diverge in all"]
        for d in self.worst()[:shown]:
            lines.append(
                f"  changed sample {d.sample}: {self.layers[d.layer]} step {d.step}, "
                f"{d.differing} neurons (first {list(d.neurons)})"
            )
        return lines
