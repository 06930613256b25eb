"""What each `snn-deploy` command does, once its arguments are parsed (`toolchain.cli`), by what
the user does: `convert` (export, import, inspect, quantize), `run` (simulate, deploy, compare),
`planning` (plan: Loihi 2 cores, chips and cost), `train` (train, demo).

Every command checks its inputs and the places it will write before doing any work
(`arguments`), and returns the object that `--json` prints; human-readable lines go through `say`.
"""

from toolchain.commands.arguments import check_arguments
from toolchain.commands.convert import export, import_nir, inspect, quantize
from toolchain.commands.planning import plan
from toolchain.commands.run import compare, deploy, simulate
from toolchain.commands.train import demo, train

__all__ = [
    "check_arguments",
    "compare",
    "demo",
    "deploy",
    "export",
    "import_nir",
    "inspect",
    "plan",
    "quantize",
    "simulate",
    "train",
]
