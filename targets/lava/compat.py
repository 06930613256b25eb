"""Let lava-nc 0.10.0 import on Python 3.11+ without editing site-packages.

``lava/magma/compiler/var_model.py`` declares dataclass fields such as
``x: ByteEncoder = ByteEncoder()``. Since Python 3.11, ``dataclasses`` rejects
any unhashable default (``ByteEncoder`` is itself a non-frozen dataclass), so
importing that module, and with it most of Lava, raises ``ValueError: mutable
default ... use default_factory``.

:func:`install` puts a meta-path finder in front of ``sys.meta_path`` that
handles that one module only: it loads the installed source, rewrites each
``= ByteEncoder()`` default into ``field(default_factory=ByteEncoder)``, and
compiles the result in memory without writing bytecode, so the patched code
never lands in site-packages' ``__pycache__``. Any other source than the one
expected (a different lava-nc version) fails with a clear ``ImportError``.

Call :func:`install` (``import targets.lava`` does) before anything imports
``lava``. Note also that importing Lava calls
``multiprocessing.set_start_method("fork")``, which fails if a start method
was already set: nothing must set a start method before Lava is imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import CodeType, ModuleType

SUPPORTED_LAVA = "lava-nc 0.10.0"
_TARGET = "lava.magma.compiler.var_model"
_OLD = "= ByteEncoder()"
# ``from __future__ import annotations`` must stay first in the module, so the
# replacement cannot rely on a new import statement.
_NEW = '= __import__("dataclasses").field(default_factory=ByteEncoder)'
_EXPECTED_COUNT = 8


def patch_source(source: str, path: str) -> str:
    """Return ``source`` with every ``= ByteEncoder()`` default made a factory."""
    count = source.count(_OLD)
    if count != _EXPECTED_COUNT:
        raise ImportError(
            f"targets.lava.compat: expected {_EXPECTED_COUNT} occurrences of "
            f"{_OLD!r} in {path}, found {count}; only {SUPPORTED_LAVA} is supported",
            name=_TARGET,
            path=path,
        )
    return source.replace(_OLD, _NEW)


class _PatchedVarModelLoader(importlib.machinery.SourceFileLoader):
    """Source loader that patches ``var_model.py`` and never touches bytecode."""

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        source = self.get_data(path).decode("utf-8")
        return compile(patch_source(source, path), path, "exec", dont_inherit=True)


class _VarModelFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that swaps in :class:`_PatchedVarModelLoader`."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            return spec
        spec.loader = _PatchedVarModelLoader(fullname, spec.origin)
        return spec


def install() -> None:
    """Put the patching finder first in ``sys.meta_path`` (idempotent)."""
    if any(isinstance(finder, _VarModelFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _VarModelFinder())
