"""`quantize --auto`: quantise, ask the error budget which sources of error matter, try the
quantiser's options that address them, and keep the best on the calibration set.

The budget runs on the calibration set against the float graph (`quantize.budget`). Per source
that departs from float there, most harmful first, the options tried:
- input: more input levels (twice and four times the chosen ones, up to the 16-bit payload's
  largest, and the data's own);
- overflow: less of the 24-bit range used (half and a quarter of the headroom);
- truncation, threshold, biases: more of it (a larger scale: 0.9 of the range);
- weights and decays: none here (the quantiser cannot make 8-bit weights or 12-bit decays
  exact; fine-tuning, `--finetune`, trains the network for them): reported, not tried.
Each try is quantised from the same calibration ranges and simulated bit-accurately on the
calibration set; the best is the one with the fewest predictions that differ from float, then
the least spike disagreement summed over layers; the starting options win ties, so the result is
never worse than them on the calibration set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from quantize.budget import ADVICE, Budget, FloatSide, error_budget, fixed_tally
from quantize.calibration import calibration_ranges
from quantize.scales import DEFAULT_HEADROOM, QuantReport, quantize_graph
from targets.loihi2.formats import INPUT_MESSAGE_BITS, WEIGHT_EXP_MIN
from toolchain.ir import Graph
from toolchain.ir.float_runner import run_float

BUDGET_SAMPLES = 500  # of the calibration set, for the budget that picks the options to try
MAX_LEVELS = 2**INPUT_MESSAGE_BITS - 1  # the graded input payload's largest
UNTRIED = ("weights", "decays")  # no quantiser option makes them exact


@dataclass(frozen=True)
class Options:
    """The quantiser's choices that `--auto` varies."""

    headroom: float = DEFAULT_HEADROOM
    levels: int | None = None  # None: the quantiser's own choice


DEFAULTS = Options()


@dataclass
class Trial:
    options: Options
    input_levels: int  # what the quantiser used
    changed_predictions: int  # on the calibration set, against float
    spike_disagreement: float  # summed over the compared layers

    @property
    def key(self) -> tuple[int, float]:
        return (self.changed_predictions, self.spike_disagreement)


@dataclass
class AutoReport:
    ranking: list[str]  # the budget's sources that depart from float, most harmful first
    trials: list[Trial] = field(default_factory=list)  # the starting options first
    untried: dict[str, str] = field(default_factory=dict)  # source -> what to do instead

    @property
    def chosen(self) -> Trial:
        return min(self.trials, key=lambda t: t.key)  # the first of equals: the start

    def to_json(self) -> dict[str, object]:
        return {
            "ranking": self.ranking,
            "tried": [asdict(t) for t in self.trials],
            "chosen": asdict(self.chosen.options),
            "not_tried": self.untried,
        }

    def lines(self) -> list[str]:
        lines = [f"--auto: sources departing from float, worst first: {', '.join(self.ranking)}"]
        for trial in self.trials:
            mark = "*" if trial is self.chosen else " "
            lines.append(
                f" {mark} headroom {trial.options.headroom:g}, input levels {trial.input_levels}"
                f": {trial.changed_predictions} calibration predictions differ from float, "
                f"spike disagreement {trial.spike_disagreement:.4f}"
            )
        lines += [f"   not tried for {s}: {what}" for s, what in self.untried.items()]
        return lines


def candidates(budget: Budget, start: Options, levels: int, data_levels: int) -> list[Options]:
    """The options the budget points to, in the order of its ranking, without repeats."""
    found: list[Options] = []
    for source in departing(budget):
        if source == "input":
            more = {min(MAX_LEVELS, levels * k) for k in (2, 4)} | {data_levels}
            found += [Options(start.headroom, n) for n in sorted(more) if n > levels]
        elif source == "overflow":
            found += [Options(start.headroom / k, start.levels) for k in (2, 4)]
        elif source in ("truncation", "threshold", "biases") and start.headroom < 0.9:
            found.append(Options(0.9, start.levels))
    return list(dict.fromkeys(o for o in found if o != start))


def departing(budget: Budget) -> list[str]:
    """The budget's sources whose alone run departs from float at all, worst first."""
    return [
        s
        for s in budget.ranking()
        if budget.tallies[f"{s} alone"].changed or sum(budget.tallies[f"{s} alone"].disagreement())
    ]


def float_side_of(graph: Graph) -> FloatSide:
    """The float graph's (spikes per population, predictions), as the budget takes them."""

    def run(images: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        result = run_float(graph, images)
        return [result.spikes[p.name] for p in graph.populations], result.predictions

    return run


def auto_quantize(
    graph: Graph,
    calibration: np.ndarray,
    *,
    start: Options = DEFAULTS,
    min_weight_exp: int = WEIGHT_EXP_MIN,
    workers: int = 1,
) -> tuple[Graph, QuantReport, AutoReport]:
    """The lowered float graph quantised with the best options tried (see the module)."""
    ranges = calibration_ranges(graph, calibration, workers)
    float_side = float_side_of(graph)

    def quantized(options: Options) -> tuple[Graph, QuantReport]:
        return quantize_graph(
            graph,
            calibration,
            headroom=options.headroom,
            min_weight_exp=min_weight_exp,
            levels=options.levels,
            ranges=ranges,
        )

    results = {start: quantized(start)}
    fixed, report = results[start]
    budget = error_budget(fixed, calibration[:BUDGET_SAMPLES], None, float_side, workers=workers)
    auto = AutoReport(departing(budget))
    auto.untried = {s: ADVICE[s][0] for s in auto.ranking if s in UNTRIED}
    for options in candidates(budget, start, report.input_levels, graph.input.levels):
        results[options] = quantized(options)
    for options, (fixed, report) in results.items():
        tally = fixed_tally(fixed, calibration, float_side)
        disagreement = sum(tally.disagreement())
        auto.trials.append(Trial(options, report.input_levels, tally.changed, disagreement))
    return (*results[auto.chosen.options], auto)
