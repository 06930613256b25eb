"""Many samples over several independent Lava runtimes, one per worker process.

The samples are cut into shards of consecutive samples; `workers` processes (forked from this
one) take shards from a queue, stream each through their own compiled copy of the network
(`run_on_lava`) and write its output spikes to `shard_dir/shard-<first>-<stop>.npz` (atomically)
before taking the next. The parent shows progress as shards finish and merges them in sample
order. Every sample starts from the zero state, so the spikes are exactly those of one runtime.

With a `shard_dir` that already holds finished shards of the same run, those are read instead of
run again: an interrupted hour-long run resumes. A shard file records the graph's name and the
sample range; a mismatching file is an error, not a silent reuse.

Ctrl-C (to the whole process group, as a terminal sends it) interrupts every worker, which stops
its Lava runtime; a worker's error is raised in the parent with the shard it happened in.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from targets.loihi2.lava.runner import LavaResult, run_on_lava
from targets.loihi2.lava.session import STOP_GRACE_S
from toolchain.atomic import atomic_path
from toolchain.ir import Graph

_POLL_S = 0.2
_JOIN_S = STOP_GRACE_S + 5.0  # an interrupted worker stops its runtime, then ends
_TERMINATE_S = 2.0


def shards(samples: int, size: int) -> list[tuple[int, int]]:
    """(first, stop) of consecutive shards of at most `size` samples."""
    return [(first, min(first + size, samples)) for first in range(0, samples, size)]


def _shard_path(shard_dir: Path, first: int, stop: int) -> Path:
    return shard_dir / f"shard-{first:06d}-{stop:06d}.npz"


def _load_shard(path: Path, graph: Graph, first: int, stop: int) -> np.ndarray:
    with np.load(path) as saved:
        if str(saved["graph"]) != graph.name or saved["output_spikes"].shape[0] != stop - first:
            raise ValueError(
                f"{path}: holds samples of another run (graph {str(saved['graph'])!r}); "
                "remove it or use another shard folder"
            )
        return saved["output_spikes"]


def _save_shard(path: Path, graph: Graph, spikes: np.ndarray) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez_compressed(handle, output_spikes=spikes, graph=np.array(graph.name))


def _worker(graph: Graph, images: np.ndarray, target: str, todo, done, shard_dir: Path) -> None:
    """Runs shards from `todo` until its end marker (None); reports each, or an error, on
    `done`."""
    try:
        while (shard := todo.get()) is not None:
            first, stop = shard
            try:
                result = run_on_lava(graph, images[first:stop], target=target)
            except Exception as error:  # noqa: BLE001  (reported to the parent, which raises)
                reason = str(error).splitlines()[0] if str(error) else ""
                done.put(("error", (first, stop), f"{type(error).__name__}: {reason}"))
                return
            _save_shard(_shard_path(shard_dir, first, stop), graph, result.output_spikes)
            done.put(("done", (first, stop), result.steps))
    except KeyboardInterrupt:
        return
    finally:
        _end_children()


def _end_children() -> None:
    """Ends the processes this worker started. An interrupt that lands while a Lava runtime
    shuts down leaves its processes running, and the worker's exit would wait for them forever.
    Children still exiting get _TERMINATE_S to finish: terminated mid-exit, Lava's shared-memory
    manager leaves its segments behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _join_children(_TERMINATE_S)
    for child in mp.active_children():
        child.terminate()
    _join_children(_TERMINATE_S)
    for child in mp.active_children():
        child.kill()


def _join_children(timeout_s: float) -> None:
    """Waits up to timeout_s in all for the children to exit."""
    deadline = time.monotonic() + timeout_s
    for child in mp.active_children():
        # Lava's SystemProcess.join takes no timeout: the base class's does.
        mp.Process.join(child, max(0.0, deadline - time.monotonic()))


def run_on_lava_workers(
    graph: Graph,
    images: np.ndarray,
    *,
    workers: int,
    target: str = "lava-sim",
    shard_size: int | None = None,
    shard_dir: Path | None = None,
    progress: bool = False,
) -> LavaResult:
    """`run_on_lava` over `workers` runtimes in parallel processes; the same spikes."""
    if workers < 1 or not len(images):
        raise ValueError(f"need workers >= 1 and images, got {workers} and {len(images)}")
    size = shard_size or max(1, -(-len(images) // workers))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lava-shards-") as scratch:
        folder = Path(shard_dir) if shard_dir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        all_shards = shards(len(images), size)
        finished = {s for s in all_shards if _shard_path(folder, *s).is_file()}
        steps = _run_missing(graph, images, target, workers, folder, all_shards, finished, progress)
        parts = [_load_shard(_shard_path(folder, *s), graph, *s) for s in all_shards]
    output = np.concatenate(parts)
    return LavaResult(
        output_spikes=output,
        predictions=graph.predict(output),
        steps=steps,
        seconds=time.perf_counter() - started,
        probes={},
    )


def _run_missing(
    graph: Graph,
    images: np.ndarray,
    target: str,
    workers: int,
    folder: Path,
    all_shards: Sequence[tuple[int, int]],
    finished: set[tuple[int, int]],
    progress: bool,
) -> int:
    """Runs the shards not yet in `folder`; returns the Lava steps they took."""
    missing = [s for s in all_shards if s not in finished]
    context = mp.get_context("fork")  # the workers share the graph and images without copies
    todo, done = context.Queue(), context.Queue()
    processes = [
        context.Process(target=_worker, args=(graph, images, target, todo, done, folder))
        for _ in range(min(workers, len(missing)))
    ]
    for shard in [*missing, *[None] * len(processes)]:
        todo.put(shard)
    resumed = sum(stop - first for first, stop in finished)
    steps = 0
    with tqdm(
        total=len(images), initial=resumed, unit="sample", desc="lava", disable=not progress
    ) as bar:
        for process in processes:
            process.start()
        try:
            for _ in missing:
                status, (first, stop), detail = _next_report(done, processes)
                if status == "error":
                    raise RuntimeError(f"Lava worker, samples {first}..{stop - 1}: {detail}")
                steps += detail
                bar.update(stop - first)
        finally:
            for process in processes:
                if process.is_alive() and not bar.n == len(images):
                    os.kill(process.pid, signal.SIGINT)  # stops its Lava runtime and ends it
                process.join(_JOIN_S)
                if process.is_alive():
                    process.kill()
                    process.join()
    return steps


def _next_report(done, processes) -> tuple:
    """The next worker report; an error if every worker ended without one."""
    while True:
        try:
            return done.get(timeout=_POLL_S)
        except queue.Empty:
            if not any(process.is_alive() for process in processes):
                raise RuntimeError("the Lava workers ended before finishing their shards") from None
