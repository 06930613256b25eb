"""Artifacts are written to a temporary file beside the target, then renamed over it.

A crash or an error while writing leaves the previous file (if any) intact and no partial file.
A target that exists but is not a regular file (a device node, a FIFO) is refused, never
replaced.
The temporary name carries the writer's process id, so that a later write of the same target
removes what a killed writer left behind (and nothing of a writer still running).
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from toolchain.lifetime import alive
from toolchain.paths import PathError, kind_of


def _file_mode() -> int:
    """What open() would give a new file under the process umask (mkstemp gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yields a temporary path to write; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    if path.exists() and not path.is_file():  # renaming over a device or FIFO replaces it
        raise PathError(f"{path}: is {kind_of(path)}; only a regular file is replaced")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(path)
        prefix = f".{path.name}.{os.getpid()}."
        fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise PathError(f"{path}: cannot write there ({error.strerror})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_stale(path: Path) -> None:
    """Temporary files of `path` whose writer process is gone."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".")[0]
        if not (pid.isdigit() and alive(int(pid))):
            tmp.unlink(missing_ok=True)


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
