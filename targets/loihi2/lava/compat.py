"""Let lava-nc 0.10.0 import on Python 3.11+, and beside other users of multiprocessing.

Two of Lava's modules are rewritten as they are imported, never on disk:
- ``lava/magma/compiler/var_model.py`` declares dataclass fields such as
  ``x: ByteEncoder = ByteEncoder()``. Since Python 3.11, ``dataclasses`` rejects any unhashable
  default (``ByteEncoder`` is a non-frozen dataclass), so importing it, and with it most of Lava,
  raises ``ValueError: mutable default ... use default_factory``. Each such default becomes
  ``field(default_factory=ByteEncoder)``.
- ``lava/magma/runtime/message_infrastructure/multiprocessing.py`` calls
  ``multiprocessing.set_start_method("fork")`` at import, which raises "context has already
  been set" once anything has fixed the default context, even to fork (tqdm does, by creating
  a multiprocessing lock). The call is skipped when the start method already is fork; any
  other method set before Lava is imported still fails, as Lava needs fork.

:func:`install` puts a meta-path finder in front of ``sys.meta_path`` that handles these two
modules only: it loads the installed source, applies the rewrite, and compiles the result in
memory without writing bytecode, so the patched code never lands in site-packages'
``__pycache__``. Any other source than the one expected (a different lava-nc version) fails
with a clear ``ImportError``. Call :func:`install` (``import targets.loihi2.lava`` does) before
anything imports ``lava``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import CodeType, ModuleType

SUPPORTED_LAVA = "lava-nc 0.10.0"


@dataclass(frozen=True)
class _Rewrite:
    old: str
    new: str
    count: int  # occurrences expected in the supported version


_REWRITES = {
    "lava.magma.compiler.var_model": _Rewrite(
        "= ByteEncoder()",
        # ``from __future__ import annotations`` must stay first: no new import statement.
        '= __import__("dataclasses").field(default_factory=ByteEncoder)',
        8,
    ),
    "lava.magma.runtime.message_infrastructure.multiprocessing": _Rewrite(
        "mp.set_start_method('fork')",
        "mp.get_start_method(allow_none=True) == 'fork' or mp.set_start_method('fork')",
        1,
    ),
}


def patch_source(source: str, path: str, module: str = "lava.magma.compiler.var_model") -> str:
    """Return ``source`` of ``module`` with its rewrite applied."""
    rewrite = _REWRITES[module]
    found = source.count(rewrite.old)
    if found != rewrite.count:
        raise ImportError(
            f"targets.loihi2.lava.compat: expected {rewrite.count} occurrences of "
            f"{rewrite.old!r} in {path}, found {found}; only {SUPPORTED_LAVA} is supported",
            name=module,
            path=path,
        )
    return source.replace(rewrite.old, rewrite.new)


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    """Source loader that applies the module's rewrite and never touches bytecode."""

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        source = self.get_data(path).decode("utf-8")
        return compile(patch_source(source, path, fullname), path, "exec", dont_inherit=True)


class _LavaFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that swaps in :class:`_PatchingLoader` for the rewritten modules."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _REWRITES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            return spec
        spec.loader = _PatchingLoader(fullname, spec.origin)
        return spec


def install() -> None:
    """Put the patching finder first in ``sys.meta_path`` (idempotent)."""
    if any(isinstance(finder, _LavaFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _LavaFinder())
