"""Compiled kernels: C++ sources built with the machine's compiler by `torch.utils.cpp_extension`
(`make install` builds them; otherwise their first use does, once per checkout and source). Where
one cannot be built, its caller runs the reference code it mirrors, after one warning; an
environment variable set to `reference` chooses the reference.

Builds go to a folder of this checkout, `build/kernels/<name>-<key>` (the key hashes the source,
the flags, torch and Python), never to torch's cache that every checkout on the machine shares.
One process builds a folder at a time, under an advisory lock that the system drops when its
holder dies: a build killed half-way leaves no lock that makes the next run wait forever, and a
run that must wait for another's build says so on stderr, and gives up after BUILD_WAIT_S.
"""

from __future__ import annotations

import fcntl
import hashlib
import multiprocessing as mp
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from toolchain.lifetime import die_with_parent, end_descendants

CHOICES = ("fused", "reference")
# Built on and for this machine. No trap handlers and no errno let std::trunc become one vector
# instruction; no contraction into fused multiply-adds keeps every rounding that of the
# reference code, so that the kernels give its results bit for bit.
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off")
# Makes at::parallel_for threaded: without it the pragma in ATen's header is ignored and the loop
# runs on one thread. The library is torch's own libgomp, already loaded under the same name.
OPENMP = "-fopenmp"
BUILD_DIR_ENV = "SNN_DEPLOY_KERNEL_DIR"  # another folder for the builds (tests use a tmp one)
BUILD_WAIT_ENV = "SNN_DEPLOY_KERNEL_WAIT_S"
BUILD_WAIT_S = 900.0  # a first build takes about a minute on 2 cores
_POLL_S = 0.5


def compiled(name: str, source: Path, env: str, *, threaded: bool = False) -> ModuleType | None:
    """The extension module `name` built from `source`, or None: `env` says `reference`, or
    the build failed (warned once per call; callers cache the result). `threaded`: its
    at::parallel_for loops run on torch's threads."""
    choice = os.environ.get(env, "fused")
    if choice not in CHOICES:
        raise ValueError(f"{env}={choice!r}: one of {', '.join(CHOICES)}")
    if choice == "reference":
        return None
    without_openmp = None  # why the threaded build failed, where it did
    try:
        from torch.utils.cpp_extension import load

        if threaded:
            try:
                return _built(load, name, source, [*FLAGS, OPENMP], [OPENMP])
            except Exception as error:  # a compiler without OpenMP: try it on one thread
                without_openmp = f"{type(error).__name__}: {error}"
        module = _built(load, name, source, list(FLAGS), [])
    except Exception as error:  # no compiler, no ninja, a failed build: all mean the reference
        warnings.warn(
            f"the {name} kernel could not be built ({type(error).__name__}: {error}); the "
            "reference implementation runs instead",
            stacklevel=3,
        )
        return None
    if without_openmp is not None:
        warnings.warn(
            f"the {name} kernel could not be built with OpenMP ({without_openmp}); it runs on "
            "one thread",
            stacklevel=3,
        )
    return module


def build_root() -> Path:
    """Where this checkout's kernels are built."""
    configured = os.environ.get(BUILD_DIR_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[1] / "build/kernels"


def _built(load, name: str, source: Path, cflags: list[str], ldflags: list[str]) -> ModuleType:
    """`load` of the source into its own build folder, under that folder's lock."""
    key = hashlib.sha256(
        "\0".join([source.read_text(), *cflags, *ldflags, _torch_version(), sys.version]).encode()
    ).hexdigest()[:16]
    folder = build_root() / f"{name}-{key}"
    options = {"extra_ldflags": ldflags} if ldflags else {}
    options.update(name=name, sources=[str(source)], extra_cflags=cflags)
    options["build_directory"] = str(folder)
    with _build_lock(folder, name):
        if not (folder / f"{name}.so").exists():
            print(
                f"snn-deploy: compiling the {name} kernel for this machine in {folder} "
                "(once per source; about a minute)",
                file=sys.stderr,
                flush=True,
            )
            _compile_in_child(load, options)
        return load(**options)  # built: only loads


def _compile_in_child(load, options: dict) -> None:
    """Builds in a forked child that watches this process: if this process dies (even with its
    whole process group, which the child has left), the child ends the compilers it started and
    itself, instead of leaving them to run on. Raises RuntimeError with the build's own error."""
    context = mp.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(target=_compile, args=(load, options, writer, os.getpid()))
    child.start()
    writer.close()
    try:
        error = reader.recv()
    except EOFError:
        error = "the build process ended without a word"
    finally:
        child.join()
    if error is not None:
        raise RuntimeError(error)


def _compile(load, options: dict, report, parent: int) -> None:
    """The child of `_compile_in_child`: load (which compiles) and report None or the error."""
    die_with_parent(parent, 0)  # not killed with the parent: it has compilers to end first
    os.setsid()  # nor with the parent's process group
    threading.Thread(target=_end_build_when_orphaned, args=(parent,), daemon=True).start()
    try:
        load(**options)
    except Exception as error:  # noqa: BLE001  (sent to the parent, which raises it)
        report.send(f"{type(error).__name__}: {error}")
    else:
        report.send(None)


def _end_build_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_POLL_S)
    end_descendants()
    os._exit(1)


def _torch_version() -> str:
    import torch

    return torch.__version__


@contextmanager
def _build_lock(folder: Path, name: str) -> Iterator[None]:
    """Holds `folder`'s build lock (waiting, with a word on stderr, for another holder)."""
    folder.mkdir(parents=True, exist_ok=True)
    wait_s = float(os.environ.get(BUILD_WAIT_ENV, BUILD_WAIT_S))
    with open(folder / "build.lock", "a+") as handle:
        deadline, told = time.monotonic() + wait_s, False
        while not _try_lock(handle):
            if not told:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                print(
                    f"snn-deploy: waiting for process {holder} to finish building the {name} "
                    f"kernel in {folder} (at most {wait_s:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                told = True
            if time.monotonic() > deadline:
                raise TimeoutError(f"{folder} was still being built after {wait_s:.0f} s")
            time.sleep(_POLL_S)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            # torch's own lock file, left by a build that was killed: nobody else builds here now
            (folder / "lock").unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_lock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
