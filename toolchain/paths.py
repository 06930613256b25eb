"""Checks on the files a command reads and writes, made before any work: no command overwrites
one of its own inputs, writes a file where a folder is, replaces a device node or FIFO by
renaming a file over it, reads from something that is not a regular file, or finds out at the
end that it cannot write."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from toolchain.errors import UserError


class PathError(UserError, ValueError):
    """An input or output path cannot be used; the message names it and says why."""


def kind_of(path: Path) -> str:
    """What an existing path is, in words: 'a regular file', 'a FIFO', 'a character device' ..."""
    mode = path.stat().st_mode
    for test, words in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return words
    return "not a regular file"


def _same(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _writable(path: Path, folder: Path) -> None:
    """The nearest existing folder at or above `folder`, where `path` goes, must be a folder
    where files can be made (tried: root passes every permission check, yet cannot create files
    in /proc)."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise PathError(f"{path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PathError(f"{path}: cannot write in {existing} (permission denied)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".snn-deploy-probe-", dir=existing)
    except OSError as error:
        raise PathError(f"{path}: cannot create files in {existing} ({error.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def input_file(path: Path) -> Path:
    """`path` as a file to read: where it exists, a regular file (a FIFO would block, a device
    never end). A missing one is left to its reader, which says what it expected."""
    if path.exists() and not path.is_file():
        raise PathError(f"{path}: is {kind_of(path)}, not a regular file; give a file")
    return path


def output_file(path: Path, *inputs: Path) -> Path:
    """`path` as a file to write: not a folder, a device or a FIFO, not one of `inputs`, in a
    place where files can be made."""
    if path.is_dir():
        raise PathError(f"{path}: is a folder; --out needs a file path")
    if path.exists() and not path.is_file():
        raise PathError(
            f"{path}: is {kind_of(path)}; snn-deploy writes only regular files (it would "
            "replace it)"
        )
    for source in inputs:
        if _same(path, source):
            raise PathError(f"{path}: is the input {source}; write the result to another file")
    _writable(path, path.parent)
    return path


def output_folder(path: Path, *inputs: Path) -> Path:
    """`path` as a folder to write into: not a file, not holding one of `inputs` under a name
    it would write, in a place where files can be made."""
    if path.exists() and not path.is_dir():
        raise PathError(f"{path}: is a file; --out needs a folder")
    _writable(path, path)
    return path
