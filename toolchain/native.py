"""Compiled kernels: C++ sources built with the machine's compiler by `torch.utils.cpp_extension`
(`make install` builds them; otherwise their first use does, once per machine and source). Where
one cannot be built, its caller runs the reference code it mirrors, after one warning; an
environment variable set to `reference` chooses the reference."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import ModuleType

CHOICES = ("fused", "reference")
# Built on and for this machine. No trap handlers and no errno let std::trunc become one vector
# instruction; no contraction into fused multiply-adds keeps every rounding that of the
# reference code, so that the kernels give its results bit for bit.
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off")
# Makes at::parallel_for threaded: without it the pragma in ATen's header is ignored and the loop
# runs on one thread. The library is torch's own libgomp, already loaded under the same name.
OPENMP = "-fopenmp"


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
                return load(
                    name=name,
                    sources=[str(source)],
                    extra_cflags=[*FLAGS, OPENMP],
                    extra_ldflags=[OPENMP],
                )
            except Exception as error:  # a compiler without OpenMP: try it on one thread
                without_openmp = f"{type(error).__name__}: {error}"
        module = load(name=name, sources=[str(source)], extra_cflags=list(FLAGS))
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
