"""The fused TSSL-BP kernel (`kernels/tsslbp.cpp`): the forward recursion and the final-mode
backward in one pass over T, compiled with the machine's C++ compiler by
`torch.utils.cpp_extension` (`make install` builds it; otherwise the first training step does,
once per machine). Where it cannot be built, training runs the reference implementation in
`tsslbp.py` after one warning. `SNN_DEPLOY_TSSLBP_KERNEL=reference` chooses the reference.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).with_name("kernels") / "tsslbp.cpp"
KERNEL_ENV = "SNN_DEPLOY_TSSLBP_KERNEL"
KERNELS = ("fused", "reference")


@functools.cache
def fused_kernel() -> ModuleType | None:
    """The compiled kernel, or None (the reference is used) where it is off or cannot be built."""
    choice = os.environ.get(KERNEL_ENV, "fused")
    if choice not in KERNELS:
        raise ValueError(f"{KERNEL_ENV}={choice!r}: one of {', '.join(KERNELS)}")
    if choice == "reference":
        return None
    try:
        from torch.utils.cpp_extension import load

        return load(name="snn_deploy_tsslbp", sources=[str(SOURCE)], extra_cflags=["-O3"])
    except Exception as error:  # no compiler, no ninja, a failed build: all mean the reference
        warnings.warn(
            f"the fused TSSL-BP kernel could not be built ({type(error).__name__}: {error}); "
            "training runs the reference implementation",
            stacklevel=2,
        )
        return None
