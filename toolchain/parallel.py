"""Work over many samples, split into consecutive shards across forked worker processes.

Simulating or calibrating a large test set is the same work for every sample, so it splits into
shards of consecutive samples with nothing shared. Each worker is a fork of this process (it
inherits the graph and the images without copying them) that runs one thread, and the shards'
results come back in sample order. On the 2-core machine of benchmarks/core_scaling.py, two
single-threaded processes get more done than one process with two threads.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Callable, Iterator
from typing import Any

from tqdm import tqdm

Task = Callable[[int, int], Any]  # (first, stop) -> the result of samples first .. stop - 1

_task: Task | None = None  # set before the fork: a closure cannot be pickled to the workers


def shard_bounds(samples: int, shards: int) -> list[tuple[int, int]]:
    """(first, stop) of `shards` consecutive shards of as equal sizes as possible."""
    shards = max(1, min(shards, samples))
    edges = [samples * k // shards for k in range(shards + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def over_shards(task: Task, samples: int, workers: int, *, per_worker: int = 4) -> list[Any]:
    """The results of `in_shards`, in sample order."""
    return [result for _, _, result in in_shards(task, samples, workers, per_worker=per_worker)]


def in_shards(
    task: Task,
    samples: int,
    workers: int,
    *,
    per_worker: int = 4,
    progress: bool = False,
    desc: str = "",
) -> Iterator[tuple[int, int, Any]]:
    """(first, stop, task(first, stop)) over consecutive shards covering all samples, in order:
    in this process for workers <= 1 (one shard), else in `workers` forked single-threaded
    processes, each taking `per_worker` shards in turn (so that progress moves and slow shards
    even out). Results are yielded as they arrive, so the caller can fold them in and let go."""
    global _task
    if workers <= 1 or samples < 2:
        yield 0, samples, task(0, samples)
        return
    bounds = shard_bounds(samples, workers * per_worker)
    _task = task
    try:
        context = mp.get_context("fork")
        with context.Pool(min(workers, len(bounds)), initializer=_one_thread) as pool:
            with tqdm(total=samples, desc=desc, unit="sample", disable=not progress) as bar:
                for (first, stop), result in zip(bounds, pool.imap(_run, bounds), strict=True):
                    bar.update(stop - first)
                    yield first, stop, result
    finally:
        _task = None


def _one_thread() -> None:
    """A worker's set-up: one thread, and Ctrl-C left to the parent, which ends the pool."""
    import torch
    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    threadpool_limits(1)


def _run(bounds: tuple[int, int]) -> Any:
    assert _task is not None  # set by in_shards before the fork
    return _task(*bounds)
