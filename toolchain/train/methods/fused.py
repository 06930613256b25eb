"""The fused TSSL-BP kernel (`kernels/tsslbp.cpp`): the forward recursion and the final-mode
backward in one pass over T, built as `toolchain.native` says; without it (or with
`SNN_DEPLOY_TSSLBP_KERNEL=reference`) training runs the reference in `tsslbp.py`."""

from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType

from toolchain.native import compiled

SOURCE = Path(__file__).with_name("kernels") / "tsslbp.cpp"
KERNEL_ENV = "SNN_DEPLOY_TSSLBP_KERNEL"


@functools.cache
def fused_kernel() -> ModuleType | None:
    """The compiled kernel, or None (the reference is used)."""
    return compiled("snn_deploy_tsslbp", SOURCE, KERNEL_ENV, threaded=True)
