"""Every process a run starts dies with the process that started it, and what a killed run
leaves in shared memory is removed by the next.

A run forks workers (simulation shards, Lava workers), Lava forks its runtime's processes and a
shared-memory manager, `train --nproc` spawns training processes. Killed with kill -9 (or by the
OOM killer, or `timeout -s KILL`), a parent cannot end its children, and they would run on. So
each child asks the kernel for SIGKILL when its parent dies (Linux's PR_SET_PDEATHSIG), the whole
tree comes down from the top, and it checks that its parent did not die before it asked.
`bind_children()` (the command line calls it first) does this for every fork of this process and
its descendants; a spawned child (a fresh interpreter, which runs no fork hooks) calls
`die_with_parent` itself.

Shared memory outlives a killed process group (Python's resource tracker dies with it). Segments
made by this process tree are named `/dev/shm/snn_deploy_<run>_<hex>` (`name_segments`), `<run>`
the pid of the run's main process, which every descendant reads from `RUN_ENV`; loky's
semaphores (training workers) carry their creator's pid. `remove_orphans`, at every command's
start, unlinks those whose process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import signal
import sys
from multiprocessing import shared_memory
from pathlib import Path

RUN_ENV = "SNN_DEPLOY_RUN"  # the pid of the run's main process, inherited by its descendants
SHM = Path("/dev/shm")
SEGMENT_PREFIX = "snn_deploy_"
# names in SHM whose first number is the pid of the process that owns them
ORPHAN_NAMES = re.compile(rf"^(?:{SEGMENT_PREFIX}(\d+)_[0-9a-f]+|sem\.loky-(\d+)-\w+)$")
_PR_SET_PDEATHSIG = 1
_forking_pid = os.getpid()  # read in a fresh child: the process that forked it
_bound = False


def run_owner() -> int:
    """The pid of the main process of this run (this process, outside a run)."""
    owner = os.environ.get(RUN_ENV, "")
    return int(owner) if owner.isdigit() else os.getpid()


def bind_children() -> None:
    """From now on, every process forked by this one (or by its descendants) dies with its
    parent, and their shared memory is named after this run. Idempotent."""
    global _bound
    os.environ[RUN_ENV] = str(os.getpid())
    name_segments()
    if _bound or not sys.platform.startswith("linux"):
        return
    os.register_at_fork(before=_remember_parent, after_in_child=_child_of)
    _bound = True


def die_with_parent(parent: int, signal_number: int = signal.SIGKILL) -> None:
    """Have this process sent `signal_number` when its parent dies (0: nothing); exit now if
    `parent` is already gone."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal_number, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request: nobody will signal
        os._exit(1)


def name_segments() -> None:
    """New shared-memory segments of this process and the processes it forks carry the run's
    pid (Lava's manager makes them with SharedMemory(create=True), which reads this name)."""
    shared_memory._make_filename = _segment_name


def _segment_name() -> str:
    return f"/{SEGMENT_PREFIX}{run_owner()}_{secrets.token_hex(6)}"


def remove_orphans(folder: Path = SHM) -> list[str]:
    """Unlinks the segments and semaphores of processes that are gone; returns their names."""
    removed = []
    for entry in folder.iterdir() if folder.is_dir() else ():
        match = ORPHAN_NAMES.match(entry.name)
        if match and not alive(int(match.group(1) or match.group(2))):
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def alive(pid: int) -> bool:
    """Whether a process with this pid runs (perhaps another user's); a zombie, dead but not yet
    reaped (as where a container's init reaps nobody), does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def end_descendants() -> None:
    """SIGKILL every process descended from this one (those that made process groups of their
    own too, as ninja does for each compiler), from the leaves up."""
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat_file.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat_file.parent.name))
    found, todo = [], [os.getpid()]
    while todo:
        found += (kids := children.get(todo.pop(), []))
        todo += kids
    for pid in reversed(found):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _remember_parent() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _child_of() -> None:
    while True:
        try:
            die_with_parent(_forking_pid)
            return
        except KeyboardInterrupt:  # Ctrl-C reached the child as it was forked: the parent's
            continue  # to handle; this child still asks to die with it
