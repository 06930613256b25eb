"""The quantisation error budget: which source of error makes the fixed-point network leave the
float one, per layer and per changed prediction, and what to try about it.

Each source (`targets.loihi2.relaxed.SOURCES`: input levels, weights, decays, truncation,
overflow, biases, threshold) is measured two ways against the float network, on the same samples:
- alone: every other source put back to exact, this one quantised: the divergence it causes
  by itself (spike disagreement per layer, changed predictions, accuracy);
- put back: this one exact, every other quantised: how much of the fixed-point network's
  divergence goes away without it ("accounts for", per layer).
The fixed-point run (nothing exact, the bit-accurate simulator's integers) and the all-exact run
(the float network in float64: a residual there is the float side's own rounding) frame them.
A layer's dominant source is the one whose alone run disagrees most there; a changed
prediction's, the one whose alone run changes it, else disagrees most on that sample's spikes,
else moves its output most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from targets.loihi2.relaxed import SOURCES, simulate_relaxed, sources_of
from targets.loihi2.simulator import simulate
from targets.loihi2.timing import population_window
from toolchain.ir import Graph
from toolchain.parallel import over_shards

# A float side: the float network's (spikes per layer, predictions) of some images.
FloatSide = Callable[[np.ndarray], tuple[list[np.ndarray], np.ndarray]]

BATCH = 250  # samples per relaxed run

AUTO = "snn-deploy quantize SOURCE --out FIXED.onnx --auto"
FINETUNE = "snn-deploy quantize CHECKPOINT --out FIXED.onnx --finetune 2"
# Per source: what to try, and the command that tries it (`--auto` tries the quantiser's
# options that address it on the calibration set, `quantize.auto`).
ADVICE = {
    "input": (
        "more input levels (--levels N; a convolution's first weights then get fewer bits, "
        "so --auto measures the trade)",
        AUTO,
    ),
    "weights": (
        "fine-tune on the integer forward pass, so that training sees the 8-bit weights (a "
        "network trained here; an imported one: quantisation-aware training in its library)",
        FINETUNE,
    ),
    "decays": (
        "time constants whose decays 4096 / tau are whole numbers, or fine-tuning",
        FINETUNE,
    ),
    "truncation": (
        "a larger voltage scale (--headroom up to 1), so that truncation loses less",
        AUTO,
    ),
    "overflow": ("a smaller voltage scale (--headroom 0.25), so that states keep to 24 bits", AUTO),
    "biases": ("a larger voltage scale (--headroom up to 1), so that biases round less", AUTO),
    "threshold": (
        "a larger voltage scale (--headroom up to 1), so that the threshold rounds less",
        AUTO,
    ),
}


@dataclass
class Tally:
    """How one run departs from the float network over some samples."""

    layers: int
    samples: int = 0
    labelled: int = 0  # samples whose labels were given
    correct: int = 0
    changed: int = 0  # predictions that differ from the float network's
    float_spikes: list[int] = field(default_factory=list)
    run_spikes: list[int] = field(default_factory=list)
    matching: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for counts in (self.float_spikes, self.run_spikes, self.matching):
            counts.extend([0] * (self.layers - len(counts)))

    def add(
        self,
        float_run: tuple[list[np.ndarray], np.ndarray],
        run: tuple[list[np.ndarray], np.ndarray],
        labels: np.ndarray | None,
        compared: list[bool],
    ) -> None:
        """One batch: the float network's (spikes per layer, predictions) and the run's."""
        (float_spikes, float_predictions), (spikes, predictions) = float_run, run
        self.samples += len(predictions)
        if labels is not None:
            self.labelled += len(labels)
            self.correct += int((predictions == labels).sum())
        self.changed += int((predictions != float_predictions).sum())
        for layer, (f, q) in enumerate(zip(float_spikes, spikes, strict=True)):
            if compared[layer]:
                f, q = f.astype(np.int64), q.astype(np.int64)
                self.float_spikes[layer] += int(f.sum())
                self.run_spikes[layer] += int(q.sum())
                self.matching[layer] += int(np.minimum(f, q).sum())

    def merge(self, other: Tally) -> None:
        self.samples += other.samples
        self.labelled += other.labelled
        self.correct += other.correct
        self.changed += other.changed
        for mine, theirs in (
            (self.float_spikes, other.float_spikes),
            (self.run_spikes, other.run_spikes),
            (self.matching, other.matching),
        ):
            for layer, count in enumerate(theirs):
                mine[layer] += count

    def disagreement(self) -> list[float]:
        """Per layer, 1 - agreement (agreement as `compare` defines it)."""
        return [
            0.0 if f + q == 0 else 1.0 - 2 * m / (f + q)
            for f, q, m in zip(self.float_spikes, self.run_spikes, self.matching, strict=True)
        ]

    def to_json(self) -> dict[str, object]:
        return {
            "accuracy": self.correct / self.labelled if self.labelled else None,
            "changed_predictions": self.changed,
            "spike_disagreement": self.disagreement(),
        }


def variants(sources: list[str]) -> dict[str, frozenset[str]]:
    """The runs of a budget and the sources each puts back to exact."""
    everything = frozenset(sources)
    runs = {"fixed": frozenset(), "all exact": everything}
    for source in sources:
        runs[f"{source} alone"] = everything - {source}
        runs[f"{source} put back"] = frozenset({source})
    return runs


@dataclass
class SampleBlame:
    """One changed prediction: per source, what its alone run does to that sample."""

    index: int
    changes_prediction: dict[str, bool]
    differing_spikes: dict[str, int]
    output_distance: dict[str, float]

    @property
    def dominant(self) -> str:
        return max(
            self.changes_prediction,
            key=lambda s: (
                self.changes_prediction[s],
                self.differing_spikes[s],
                self.output_distance[s],
            ),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "dominant": self.dominant,
            "changes_prediction_alone": [s for s, c in self.changes_prediction.items() if c],
            "differing_spikes_alone": self.differing_spikes,
        }


@dataclass
class Budget:
    layers: list[str]
    compared: list[bool]  # a read-out's membrane has no spikes to agree on
    sources: list[str]
    tallies: dict[str, Tally]
    blamed: list[SampleBlame] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return self.tallies["fixed"].samples

    def accounts_for(self, source: str) -> list[float | None]:
        """Per layer, the share of the fixed-point disagreement that goes once `source` is put
        back to exact (negative: putting it back alone makes that layer disagree more)."""
        fixed = self.tallies["fixed"].disagreement()
        put_back = self.tallies[f"{source} put back"].disagreement()
        return [None if d == 0 else (d - p) / d for d, p in zip(fixed, put_back, strict=True)]

    def dominant(self) -> dict[str, str | None]:
        """Per compared layer, the source whose alone run disagrees most there (None where the
        fixed-point network agrees with float)."""
        fixed = self.tallies["fixed"].disagreement()
        found: dict[str, str | None] = {}
        for layer, name in enumerate(self.layers):
            if not self.compared[layer]:
                continue
            alone = {s: self.tallies[f"{s} alone"].disagreement()[layer] for s in self.sources}
            found[name] = max(alone, key=alone.get) if fixed[layer] > 0 else None
        return found

    def ranking(self) -> list[str]:
        """Sources, the most harmful first: by changed predictions alone, then by disagreement
        summed over layers alone."""
        return sorted(
            self.sources,
            key=lambda s: (
                -self.tallies[f"{s} alone"].changed,
                -sum(self.tallies[f"{s} alone"].disagreement()),
            ),
        )

    def advice(self) -> list[dict[str, object]]:
        """What to try about each source that is dominant somewhere or changes predictions."""
        dominant = self.dominant()
        named = [
            s
            for s in self.ranking()
            if s in dominant.values() or self.tallies[f"{s} alone"].changed
        ]
        out = []
        for source in named:
            text, command = ADVICE[source]
            out.append(
                {
                    "source": source,
                    "layers": [layer for layer, s in dominant.items() if s == source],
                    "changed_predictions_alone": self.tallies[f"{source} alone"].changed,
                    "try": text,
                    "command": command,
                }
            )
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "sources": {s: SOURCES[s] for s in self.sources},
            "layers": self.layers,
            "fixed": self.tallies["fixed"].to_json(),
            "all_exact": self.tallies["all exact"].to_json(),
            "per_source": [
                {
                    "source": s,
                    "alone": self.tallies[f"{s} alone"].to_json(),
                    "put_back": self.tallies[f"{s} put back"].to_json(),
                    "accounts_for": self.accounts_for(s),
                }
                for s in self.sources
            ],
            "ranking": self.ranking(),
            "dominant": self.dominant(),
            "changed_predictions": [b.to_json() for b in self.blamed],
            "advice": self.advice(),
        }

    def lines(self) -> list[str]:
        """For the text table: per source, its alone disagreement per layer and what it changes."""
        shown = [name for name, c in zip(self.layers, self.compared, strict=True) if c]
        header = "".join(f"{name:>10}" for name in shown)
        lines = [
            f"error budget ({self.samples} samples): spike disagreement per layer with only one "
            "source quantised; predictions changed with it alone / with it put back",
            f"{'source':<14}{header}{'alone':>8}{'put back':>10}",
        ]

        def row(label: str, tally: Tally, put_back: Tally | None) -> str:
            cells = "".join(
                f"{d:>10.4f}" for d, c in zip(tally.disagreement(), self.compared, strict=True) if c
            )
            back = "" if put_back is None else f"{put_back.changed:>10}"
            return f"{label:<14}{cells}{tally.changed:>8}{back}"

        lines.append(row("fixed point", self.tallies["fixed"], None))
        for source in self.ranking():
            tallies = self.tallies
            lines.append(row(source, tallies[f"{source} alone"], tallies[f"{source} put back"]))
        lines.append(row("all exact", self.tallies["all exact"], None))
        dominant = ", ".join(f"{layer} {s}" for layer, s in self.dominant().items() if s)
        if dominant:
            lines.append(f"dominant source per layer: {dominant}")
        for item in self.advice():
            lines.append(f"  {item['source']}: {item['try']}: {item['command']}")
        return lines


def fixed_tally(graph: Graph, images: np.ndarray, float_side: FloatSide) -> Tally:
    """How the fixed-point graph (the bit-exact simulator) departs from float on images."""
    compared = [not p.readout for p in graph.populations]
    tally = Tally(len(compared))
    for start in range(0, len(images), BATCH):
        x = images[start : start + BATCH]
        fixed = simulate(graph, x, record=True)
        spikes = [
            fixed.spikes[p.name][..., population_window(graph, i)]
            for i, p in enumerate(graph.populations)
        ]
        tally.add(float_side(x), (spikes, fixed.predictions), None, compared)
    return tally


def error_budget(
    graph: Graph,
    images: np.ndarray,
    labels: np.ndarray | None,
    float_side: FloatSide,
    *,
    workers: int = 1,
) -> Budget:
    """The budget of a fixed-point graph over `images` (with their labels, or None: no
    accuracies), against the float network `float_side` runs, in `workers` processes."""
    names = [p.name for p in graph.populations]
    compared = [not p.readout for p in graph.populations]
    sources = sources_of(graph)
    runs = variants(sources)

    def shard(first: int, stop: int) -> dict[str, Tally]:
        tallies = {name: Tally(len(names)) for name in runs}
        for start in range(first, stop, BATCH):
            x = images[start : min(start + BATCH, stop)]
            y = None if labels is None else labels[start : start + len(x)]
            floating = float_side(x)
            for name, exact in runs.items():
                run = simulate_relaxed(graph, x, exact)
                tallies[name].add(floating, (run.spikes, run.predictions), y, compared)
        return tallies

    tallies = {name: Tally(len(names)) for name in runs}
    for part in over_shards(shard, len(images), workers):
        for name, tally in part.items():
            tallies[name].merge(tally)
    return Budget(names, compared, sources, tallies)


def blame(
    graph: Graph, images: np.ndarray, indices: list[int], float_side: FloatSide
) -> list[SampleBlame]:
    """Per sample (images, their indices in the compared set), what each source's alone run
    does to it, BATCH samples at a time."""
    return [
        sample
        for start in range(0, len(images), BATCH)
        for sample in _blame_batch(
            graph, images[start : start + BATCH], indices[start : start + BATCH], float_side
        )
    ]


def _blame_batch(
    graph: Graph, images: np.ndarray, indices: list[int], float_side: FloatSide
) -> list[SampleBlame]:
    sources = sources_of(graph)
    compared = [not p.readout for p in graph.populations]
    float_spikes, float_predictions = float_side(images)
    everything = frozenset(sources)
    blamed = [SampleBlame(int(i), {}, {}, {}) for i in indices]
    scale = graph.populations[-1].scale
    for source in sources:
        run = simulate_relaxed(graph, images, everything - {source})
        differing = sum(
            (f.astype(np.int64) != q.astype(np.int64)).reshape(len(images), -1).sum(axis=1)
            for f, q, c in zip(float_spikes, run.spikes, compared, strict=True)
            if c
        )
        f, q = float_spikes[-1].astype(np.float64), run.spikes[-1].astype(np.float64)
        if not compared[-1]:
            q = q / scale  # a read-out's membrane, in float units as the float side's
        distance = np.abs(f - q).reshape(len(images), -1).sum(axis=1)
        for n, sample in enumerate(blamed):
            sample.changes_prediction[source] = bool(run.predictions[n] != float_predictions[n])
            sample.differing_spikes[source] = int(differing[n]) if np.ndim(differing) else 0
            sample.output_distance[source] = float(distance[n])
    return blamed
