"""What a piece of work will take of this machine, checked before it starts.

A number in a file (`T` in a config or a graph's metadata, a layer's `out`, the sample count in a
`.npy` header) or on the command line (`--steps`, `--nproc`) can ask for more than the machine
has. Each stage estimates the memory of its largest allocations from the shapes alone
(`simulator.memory_needed`, `float_runner.memory_needed`, `loop.memory_needed`, the `.npy`
reader) and calls `require_memory` first; a request beyond what the machine has now is refused
with the estimate, instead of a multi-gigabyte allocation, swapping, or the OOM killer.
"""

from __future__ import annotations

import os
from pathlib import Path

from toolchain.errors import ResourceError

MEMORY_ENV = "SNN_DEPLOY_MEMORY_BYTES"  # the memory to assume available (tests, shared hosts)
_MEMINFO = Path("/proc/meminfo")


def available_memory() -> int:
    """Bytes this process can allocate without swapping: MemAvailable, or `MEMORY_ENV`."""
    configured = os.environ.get(MEMORY_ENV, "")
    if configured.isdigit():
        return int(configured)
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def require_memory(needed: int, what: str) -> None:
    """Refuses `what` (a phrase naming the work and its size) if it needs more than is free."""
    free = available_memory()
    if needed > free:
        raise ResourceError(
            f"{what} needs about {size_text(needed)} of memory; this machine has "
            f"{size_text(free)} available"
        )


def require_cores(processes: int, option: str, force: bool) -> None:
    """Refuses more processes than cores unless forced: each would get a share of a core, so
    the work takes longer, not shorter."""
    cores = os.cpu_count() or 1
    if processes > cores and not force:
        raise ResourceError(
            f"{option} {processes}: this machine has {cores} cores, and more processes than "
            "cores only slows the work down; give --force to start them anyway"
        )


def size_text(size: int) -> str:
    """A byte count for people: '3.2 GB', '512 MB'."""
    for unit, factor in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} bytes"
