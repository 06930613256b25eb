"""Runs killed outright (kill -9 of the main process, or of its whole process group, as
`timeout -s KILL` and the OOM killer do) at each stage that starts other processes: a kernel
build, `deploy --workers 2`, `train --nproc 2`. Afterwards no process of the run is alive within
10 s, the next run succeeds (bounded by a timeout: a hang fails), and once it has run no
shared-memory entry of the killed run's processes is left in /dev/shm (`toolchain.lifetime`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_runs import DIGITS
from conftest import ROOT

from toolchain.lifetime import ORPHAN_NAMES

SHM = Path("/dev/shm")


MARK = "SNN_DEPLOY_FAULT_TEST"  # in the environment of a run and every process it starts


def start(argv: list, env: dict | None = None) -> subprocess.Popen:
    """A run in a process group of its own, marked so that all its processes can be found."""
    mark = str(time.monotonic_ns())
    process = subprocess.Popen(
        [sys.executable, *map(str, argv)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {}), MARK: mark},
        start_new_session=True,
    )
    process.mark = mark
    return process


def processes_of(run: subprocess.Popen) -> list[int]:
    """The pids of the live (not zombie) processes that inherited the run's mark."""
    mark = f"{MARK}={run.mark}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if state != "Z" and mark in environ.split(b"\0"):
            found.append(int(proc.name))
    return found


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s} s for {what}")
        time.sleep(0.2)


def kill(run: subprocess.Popen, whole_group: bool) -> set[int]:
    """kill -9 of the main process, or of its process group; the run is reaped. Returns the
    pids its processes had."""
    pids = {run.pid, *processes_of(run)}
    if whole_group:
        os.killpg(run.pid, signal.SIGKILL)
    else:
        run.kill()
    run.wait()
    wait_for(lambda: not processes_of(run), 10, f"the processes of run {run.pid} to end")
    return pids


def left_by(pids: set[int]) -> list[str]:
    """The shared-memory entries owned by these processes (`lifetime.ORPHAN_NAMES`)."""
    found = []
    for entry in SHM.iterdir():
        match = ORPHAN_NAMES.match(entry.name)
        if match and int(match.group(1) or match.group(2)) in pids:
            found.append(entry.name)
    return found


def segments_of(pid: int) -> set[str]:
    return {p.name for p in SHM.glob(f"snn_deploy_{pid}_*")}


def finish(argv: list, env: dict | None = None, timeout_s: float = 300) -> None:
    done = subprocess.run(
        [sys.executable, *map(str, argv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stderr[-3000:]


BUILD = ["-c", "from targets.loihi2.simulator import population_kernel as k; assert k()"]


@pytest.mark.parametrize("whole_group", [False, True])
def test_a_killed_kernel_build_leaves_no_lock_and_no_compiler(tmp_path, whole_group):
    env = {"SNN_DEPLOY_KERNEL_DIR": str(tmp_path)}
    build = start(BUILD, env)
    wait_for(lambda: any(tmp_path.glob("*/build.ninja")), 120, "the build to start")
    time.sleep(1.0)  # the compiler is running
    kill(build, whole_group)
    assert not any(tmp_path.glob("*/*.so"))
    finish(BUILD, env)  # builds again instead of waiting for the dead build's lock


def deploy_args(workspace: Path, limit: int, out: Path) -> list:
    fixed = workspace / "fixed.onnx"
    return [
        "-m",
        "toolchain.cli",
        "deploy",
        fixed,
        "--dataset",
        "digits",
        "--limit",
        limit,
        "--workers",
        "2",
        "--out",
        out,
        "--quiet",
    ]


@pytest.mark.parametrize("whole_group", [False, True])
def test_a_killed_deploy_with_two_workers_leaves_nothing_behind(workspace, tmp_path, whole_group):
    deploy = start(deploy_args(workspace, 450, tmp_path / "a.npz"))
    wait_for(lambda: len(segments_of(deploy.pid)) > 10, 120, "Lava's segments")
    pids = kill(deploy, whole_group)
    finish(deploy_args(workspace, 4, tmp_path / "b.npz"))
    assert not left_by(pids)


@pytest.mark.parametrize("whole_group", [False, True])
def test_a_killed_training_in_two_processes_leaves_nothing_behind(tmp_path, whole_group):
    train = ["-m", "toolchain.cli", "train", "--config", DIGITS, "--out", tmp_path, "--nproc", "2"]
    run = start([*train, "--epochs", "500", "--quiet"])
    wait_for(lambda: len(processes_of(run)) >= 4, 120, "the training processes")
    wait_for(lambda: left_by(set(processes_of(run))), 60, "the workers' semaphores")
    pids = kill(run, whole_group)
    finish([*train, "--epochs", "1", "--overwrite", "--quiet"])
    assert not left_by(pids)


def test_a_build_held_by_another_process_is_waited_for_aloud_then_given_up(tmp_path):
    """Another live process holds the build folder: the wait is said on stderr, with its pid,
    and ends after SNN_DEPLOY_KERNEL_WAIT_S with the reference code instead of a hang."""
    import fcntl

    from toolchain import native

    folder = tmp_path / "kernel-0"
    folder.mkdir()
    with open(folder / "build.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("424242")
        held.flush()
        holder = subprocess.run(  # a separate process: flock is per open file, not per process
            [sys.executable, "-c", BUILD_LOCK_PROBE, str(folder)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, native.BUILD_WAIT_ENV: "1"},
        )
    assert holder.returncode == 0, holder.stderr
    assert "waiting for process 424242 to finish building the kernel" in holder.stderr
    assert "TimeoutError" in holder.stdout


BUILD_LOCK_PROBE = """
import sys
from pathlib import Path
from toolchain.native import _build_lock
try:
    with _build_lock(Path(sys.argv[1]), "kernel"):
        print("got the lock")
except TimeoutError as error:
    print("TimeoutError", error)
"""
