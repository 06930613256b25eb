"""Where a graph file comes from and what a reader assumes where a file is silent: each fact in
this module and nowhere else.

Every file snn-deploy writes (ONNX `metadata_props`, NIR metadata, netx root attributes)
records the producer, its version, the graph's name, its time steps and its input levels, under
the keys below; a reader trusts the recorded values only in a file whose producer is this one.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING

from toolchain.data.encoding import ENCODING

if TYPE_CHECKING:
    from toolchain.ir.graph import Graph

PRODUCER = "snn-deploy"
DEFAULT_LEVELS = 255  # input levels where nothing says otherwise: 8-bit images, round(255 x)
NIR_DEFAULT_STEPS = 10  # a NIR file records no T
NETX_DEFAULT_STEPS = 16  # netx files record no T; lava-dl's own examples use tSample = 16
DEFAULT_PREDICTION = "psp"  # trained here: TSSL-BP's rule (`toolchain.neuron.PREDICTIONS`)


def library_prediction(readout: bool) -> str:
    """The rule an imported network's own library predicts by: the spike count (snnTorch's,
    SLAYER's `Rate`, Sinabs', SpikingJelly's), or a read-out membrane's peak over time (Norse's
    tutorials)."""
    return "max" if readout else "count"


# the keys every writer records
TIME_STEPS, INPUT_LEVELS, GRAPH_NAME = "time_steps", "input_levels", "graph_name"
PREDICTION = "prediction"
PRODUCER_KEY, VERSION_KEY, ENCODING_KEY = "producer", "version", "encoding"


def version() -> str:
    """This package's version, or "unknown" from a source tree that is not installed."""
    try:
        return importlib.metadata.version(PRODUCER)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def graph_metadata(graph: Graph) -> dict[str, str]:
    """What a file of `graph` records about it besides the nodes (ONNX `metadata_props`)."""
    return {
        TIME_STEPS: str(graph.T),
        ENCODING_KEY: ENCODING,
        PRODUCER_KEY: PRODUCER,
        VERSION_KEY: version(),
        GRAPH_NAME: graph.name,
        PREDICTION: graph.prediction,
        "fixed_point": str(graph.is_fixed).lower(),
    }


def written_here(metadata: dict | None) -> bool:
    """Whether a file's metadata says snn-deploy wrote it (so its recorded values hold)."""
    return bool(metadata) and metadata.get(PRODUCER_KEY) == PRODUCER
