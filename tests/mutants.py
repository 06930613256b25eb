"""Plants known single-line bugs, one at a time, and checks that the default tests catch each.

    python tests/mutants.py            # every mutant, each against its test files (12 min)
    python tests/mutants.py decay      # only those whose name holds "decay"
    python tests/mutants.py --list     # what they are

Each mutant is a real bug a developer could write (issue 7's mutation audit). The tree is copied
beside the checkout (so `../shared` still resolves), the line is changed there, and the named
test files run with pytest's default options; a mutant that no test kills is a gap to close.
When a module moves, update its path here: a mutant whose line is not found is an error.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    line: str
    replacement: str
    tests: tuple[str, ...]


MUTANTS = (
    Mutant(
        "threshold mantissa floors instead of rounding",
        "targets/loihi2/formats.py",
        "np.rint(scale * np.asarray(threshold) / 2**ACT_SHIFT)",
        "np.floor(scale * np.asarray(threshold) / 2**ACT_SHIFT)",
        ("tests/quantize/test_quantize.py",),
    ),
    Mutant(
        "the Graph's pooling ignores the module's weight",
        "toolchain/train/to_graph.py",
        'SumPool2d(f"pool{index}", 2, layer.weight)',
        'SumPool2d(f"pool{index}", 2, 1.0)',
        ("tests/ir/test_graph.py",),
    ),
    Mutant(
        "the config's default pooling weight is 1.0",
        "toolchain/train/config.py",
        "    weight: float = 1.1\n",
        "    weight: float = 1.0\n",
        ("tests/train/test_paper_constants.py", "tests/train/test_config.py"),
    ),
    Mutant(
        "the simulator floors the decays instead of truncating toward zero",
        "targets/loihi2/simulator.py",
        "np.trunc(x * (factor / DECAY_UNITY))",
        "np.floor(x * (factor / DECAY_UNITY))",
        # the compiled update runs by default; its test holds it to these numpy passes
        ("tests/targets/test_reference_sim.py", "tests/targets/test_population_kernel.py"),
    ),
    Mutant(
        "fine-tuning sees the voltage after the reset where a neuron spiked",
        "targets/loihi2/simulator.py",
        "int(np.count_nonzero(fired))\n    if record:\n        state.v_crossing[fired]",
        "int(np.count_nonzero(fired))\n    if record:\n        _ignored",
        ("tests/quantize/test_quantize.py", "tests/targets/test_population_kernel.py"),
    ),
    Mutant(
        "compare counts the fixed accuracy from the float predictions",
        "toolchain/report/compare.py",
        "result.fixed_correct += int((fixed_pred == labels).sum())",
        "result.fixed_correct += int((float_pred == labels).sum())",
        ("tests/report/test_compare.py",),
    ),
    Mutant(
        "the report swaps calibration current and voltage",
        "quantize/scales.py",
        "current, voltage = ranges[report.population]",
        "voltage, current = ranges[report.population]",
        ("tests/quantize/test_quantize.py",),
    ),
    Mutant(
        "training no longer clamps the weights",
        "toolchain/train/loop.py",
        "param.clamp_(-t.weight_clamp, t.weight_clamp)",
        "param.clamp(-t.weight_clamp, t.weight_clamp)",
        ("tests/train/test_train.py",),
    ),
    Mutant(
        "the simulator subtracts one reset per step, whatever the spike count",
        "targets/loihi2/simulator.py",
        "v -= counts * population.reset_sub",
        "v -= (counts > 0) * population.reset_sub",
        ("tests/targets/test_reference_sim.py",),
    ),
    Mutant(
        "the float neuron forgets its refractory step",
        "toolchain/neuron.py",
        "        held = refractory_mask(s, firing)\n",
        "        held = None\n",
        ("tests/ir/test_neuron_variants.py",),
    ),
    Mutant(
        "a synaptic bias bypasses the synaptic filter",
        "toolchain/ir/float_runner.py",
        'psp_filter(x + _per_channel(node.synaptic_bias, x), neuron["tau_s"])',
        'psp_filter(x, neuron["tau_s"]) + _per_channel(node.synaptic_bias, x)',
        ("tests/ir/test_neuron_variants.py",),
    ),
    # issue 21's mutation audit: seven survivors, and two that only Lava's tests caught
    Mutant(
        "a NIR stride or padding is read as (w, h)",
        "toolchain/io/nir_read.py",
        "return (int(values[0]), int(values[-1]))",
        "return (int(values[-1]), int(values[0]))",
        ("tests/io/test_nir_import.py",),
    ),
    Mutant(
        "a recurrent synapse's exponent rounds down, clipping its largest weights",
        "quantize/scales.py",
        "math.ceil(math.log2(largest / WEIGHT_MAX))",
        "math.floor(math.log2(largest / WEIGHT_MAX))",
        ("tests/quantize/test_quantize.py",),
    ),
    Mutant(
        "the current decay floors 4096 / tau_s",
        "targets/loihi2/formats.py",
        "np.rint(DECAY_UNITY / np.asarray(tau_s)) - DU_OFFSET",
        "np.floor(DECAY_UNITY / np.asarray(tau_s)) - DU_OFFSET",
        ("tests/quantize/test_quantize.py", "tests/io/test_netx.py"),
    ),
    Mutant(
        "calibration ignores negative membrane potentials",
        "quantize/calibration.py",
        "run.potential.abs().max()",
        "run.potential.max()",
        ("tests/quantize/test_quantize.py",),
    ),
    Mutant(
        "compare counts a step's shared spike counts as one spike",
        "toolchain/report/compare.py",
        "np.minimum(f, q).sum()",
        "(np.minimum(f, q) > 0).sum()",
        ("tests/report/test_compare.py",),
    ),
    Mutant(
        "the float spike count is not strict at exact multiples of the threshold",
        "toolchain/neuron.py",
        "(torch.ceil(u / threshold) - 1)",
        "torch.floor(u / threshold)",
        ("tests/ir/test_neuron_variants.py",),
    ),
    Mutant(
        "the default target pattern switches one step late",
        "toolchain/train/losses.py",
        "if steps < 10 else",
        "if steps <= 10 else",
        ("tests/train/test_network.py",),
    ),
    Mutant(
        "the simulator forgets the refractory hold",
        "targets/loihi2/simulator.py",
        "np.copyto(v, 0, where=state.spikes > 0)",
        "np.copyto(v, v, where=state.spikes > 0)",
        ("tests/targets/test_reference_sim.py",),  # no Lava: the loop model checks it
    ),
    Mutant(
        "the simulator reads per-step inputs one step early",
        "targets/loihi2/simulator.py",
        "synapse.drive(payload[..., t]) for t in range(T)",
        "synapse.drive(payload[..., min(t + 1, T - 1)]) for t in range(T)",
        ("tests/targets/test_reference_sim.py",),  # no Lava: the loop model checks it
    ),
    # issue 25: per-neuron parameters and delays
    Mutant(
        "the threshold mantissa takes the population's largest threshold for every neuron",
        "targets/loihi2/formats.py",
        "np.rint(scale * np.asarray(threshold) / 2**ACT_SHIFT)",
        "np.rint(scale * np.max(threshold) / 2**ACT_SHIFT)",
        ("tests/quantize/test_quantize.py",),
    ),
    Mutant(
        "the simulator keeps delayed spikes from before the sample",
        "targets/loihi2/simulator.py",
        "self.pending = [None] * len(self.pending)",
        "self.pending = self.pending",
        ("tests/targets/test_delays.py",),
    ),
)


def killer(mutant: Mutant) -> str | None:
    """The first test that fails with the mutant's line changed (in a copy of the tree)."""
    with tempfile.TemporaryDirectory(prefix=".mutant-", dir=ROOT.parent) as tmp:
        copy = Path(tmp)  # a sibling of the checkout: ../shared resolves the same
        ignore = shutil.ignore_patterns(".venv*", ".git", "runs", ".gpu")
        shutil.copytree(ROOT, copy, ignore=ignore, dirs_exist_ok=True)
        target = copy / mutant.path
        text = target.read_text()
        if text.count(mutant.line) != 1:
            raise SystemExit(f"{mutant.path}: the line of {mutant.name!r} is not there once")
        target.write_text(text.replace(mutant.line, mutant.replacement))
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *mutant.tests],
            cwd=copy,
            capture_output=True,
            text=True,
        )
        if run.returncode == 0:
            return None
        failed = [line for line in run.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        if not failed or failed[0].startswith("ERROR"):
            raise SystemExit(f"{mutant.name}: the tests did not run:\n{run.stdout[-3000:]}")
        return failed[0].removeprefix("FAILED ").split(" - ")[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("only", nargs="?", default="", help="run those whose name holds this")
    args = parser.parse_args()
    chosen = [mutant for mutant in MUTANTS if args.only in mutant.name]
    survivors = []
    for mutant in chosen:
        if args.list:
            print(f"{mutant.path}: {mutant.name}")
            continue
        test = killer(mutant)
        verdict = "SURVIVED" if test is None else f"killed by {test}"
        print(f"{mutant.path}: {mutant.name}: {verdict}", flush=True)
        survivors += [mutant] if test is None else []
    if not args.list:
        killed = len(chosen) - len(survivors)
        print(f"{len(chosen)} mutants run: {killed} killed, {len(survivors)} survived")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
