"""Deploy and verify: run a fixed-point graph on Lava (one runtime, or several in worker
processes), run the reference simulator on the same samples, and compare every output spike.

The one place this flow is written: `snn-deploy deploy`, the demo and the Lava benchmarks call it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from targets.loihi2.simulator import SimulationResult, memory_needed, simulate
from toolchain.io.spikes import output_scale, save_spikes
from toolchain.ir import Graph
from toolchain.resources import require_memory

if TYPE_CHECKING:
    from targets.loihi2.lava.runner import LavaResult


@dataclass(frozen=True)
class Deployment:
    """What Lava gave, what the reference gave, and where they differ."""

    lava: LavaResult
    reference: SimulationResult
    lava_seconds: float
    reference_seconds: float
    differing: np.ndarray  # the samples with at least one different output spike

    @property
    def matches(self) -> bool:
        """Lava's output spikes equal the reference's, every one of every sample."""
        return self.differing.size == 0

    def accuracy(self, labels: np.ndarray) -> float:
        """Lava's accuracy on these labels."""
        return float((self.lava.predictions == labels).mean())


def run_lava(
    graph: Graph,
    images: np.ndarray,
    *,
    target: str = "lava-sim",
    workers: int = 1,
    progress: bool = False,
    shard_size: int | None = None,
    shard_dir: Path | None = None,
) -> LavaResult:
    """The graph on Lava: one streaming runtime, or `workers` of them over shards of the samples
    (resumable from `shard_dir`); the same spikes either way."""
    import targets.loihi2.lava  # noqa: F401  (before anything imports lava)
    from targets.loihi2.lava.runner import run_on_lava
    from targets.loihi2.lava.workers import run_on_lava_workers

    if workers == 1 and shard_dir is None:
        return run_on_lava(graph, images, target=target, progress=progress)
    return run_on_lava_workers(
        graph,
        images,
        workers=workers,
        target=target,
        shard_size=shard_size,
        shard_dir=shard_dir,
        progress=progress,
    )


def deploy_and_verify(
    graph: Graph,
    images: np.ndarray,
    *,
    target: str = "lava-sim",
    workers: int = 1,
    progress: bool = False,
    shard_size: int | None = None,
    shard_dir: Path | None = None,
    save: Path | None = None,
    labels: np.ndarray | None = None,
) -> Deployment:
    """Lava and the reference simulator on the same samples, compared spike for spike; with
    `save`, Lava's output spikes, predictions and the labels written there (`io.spikes`)."""
    needed = memory_needed(graph, len(images), np.ndim(images) == 5)  # both outputs, one size
    require_memory(2 * needed, f"deploying {len(images)} samples of {graph.T} steps")
    began = time.perf_counter()
    lava = run_lava(
        graph,
        images,
        target=target,
        workers=workers,
        progress=progress,
        shard_size=shard_size,
        shard_dir=shard_dir,
    )
    lava_seconds = time.perf_counter() - began
    began = time.perf_counter()
    reference = simulate(graph, images)
    reference_seconds = time.perf_counter() - began
    different = lava.output_spikes != reference.output_window_spikes
    differing = np.flatnonzero(different.reshape(len(images), -1).any(1))
    if save is not None:
        save_spikes(save, lava.output_spikes, lava.predictions, labels, output_scale(graph))
    return Deployment(lava, reference, lava_seconds, reference_seconds, differing)
