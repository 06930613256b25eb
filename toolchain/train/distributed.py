"""Training over several processes with torch.distributed: every process draws the same global
batch (same seed, same generator), takes its contiguous part, and the summed gradients of all
parts are the gradient of the whole batch, exactly as one process computes it (TSSL-BP's loss is
a sum over the batch, tsslbp.md 2.2). Rank 0 evaluates and writes; gloo on CPU, nccl on GPUs.

`snn-deploy train --nproc N` starts N processes on this machine; `torchrun` starts them on one
or several machines (`torchrun --nnodes M --nproc-per-node N --rdzv-endpoint HOST:PORT
-m toolchain.cli train ...`), and each process then reads its rank from the environment.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from toolchain.errors import UserError
from toolchain.lifetime import die_with_parent


@dataclass(frozen=True)
class Group:
    """This process's place among `world` training processes."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def part(self, size: int) -> slice:
        """This rank's contiguous share of a global batch of `size` samples."""
        return slice(size * self.rank // self.world, size * (self.rank + 1) // self.world)

    def total(self, values: torch.Tensor) -> torch.Tensor:
        """`values` summed over all processes (in place)."""
        if self.world > 1:
            dist.all_reduce(values)
        return values

    def sum_gradients(self, model: torch.nn.Module) -> None:
        """Every parameter's gradient replaced by its sum over all processes."""
        if self.world == 1:
            return
        grads = [p.grad for p in model.parameters()]
        flat = self.total(torch.cat([g.reshape(-1) for g in grads]))
        for grad, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            grad.copy_(part.view_as(grad))

    def wait(self) -> None:
        """Until every process arrives here (rank 0 writes while the others wait)."""
        if self.world > 1:
            dist.barrier()


SINGLE = Group()


def backend(device: str) -> str:
    return "nccl" if device == "cuda" else "gloo"


def device_of_rank(device: str, group: Group) -> str:
    """One GPU per process on a machine (LOCAL_RANK under torchrun); the CPU is shared."""
    if device != "cuda":
        return device
    return f"cuda:{int(os.environ.get('LOCAL_RANK', group.rank))}"


def join_from_environment(device: str) -> Group:
    """This process's group when torchrun (or any launcher setting WORLD_SIZE) started it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return SINGLE
    if not dist.is_initialized():
        dist.init_process_group(backend(device))
    return Group(dist.get_rank(), dist.get_world_size())


class ProcessFailed(UserError, RuntimeError):
    """A training process stopped with an error; the message is its last line."""


def run_local(nproc: int, device: str, work: Callable[..., Any], *args: Any) -> None:
    """`work(group, *args)` in `nproc` new processes on this machine, joined in one group."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        mp.spawn(_joined, args=(nproc, port, device, os.getpid(), work, args), nprocs=nproc)
    except mp.ProcessRaisedException as err:
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        raise ProcessFailed(lines[-1].split(": ", 1)[-1]) from None


def _joined(
    rank: int,
    world: int,
    port: int,
    device: str,
    parent: int,
    work: Callable[..., Any],
    args: tuple,
) -> None:
    die_with_parent(parent)  # spawned, not forked: no fork hook asked for it
    dist.init_process_group(
        backend(device), init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    try:
        work(Group(rank, world), *args)
    finally:
        dist.destroy_process_group()
