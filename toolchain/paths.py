"""Checks on the files a command will write, made before any work: no command overwrites one
of its own inputs, writes a file where a folder is, or finds out at the end that it cannot
write."""

from __future__ import annotations

import os
from pathlib import Path


class PathError(ValueError):
    """An output path cannot be used; the message names it and says why."""


def _same(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _writable(path: Path) -> None:
    """The nearest existing folder at or above `path` must be a writable folder."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise PathError(f"{path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PathError(f"{path}: cannot write in {existing} (permission denied)")


def output_file(path: Path, *inputs: Path) -> Path:
    """`path` as a file to write: not a folder, not one of `inputs`, in a writable place."""
    if path.is_dir():
        raise PathError(f"{path}: is a folder; --out needs a file path")
    for source in inputs:
        if _same(path, source):
            raise PathError(f"{path}: is the input {source}; write the result to another file")
    _writable(path.parent)
    return path


def output_folder(path: Path) -> Path:
    """`path` as a folder to write into: not a file, in a writable place."""
    if path.exists() and not path.is_dir():
        raise PathError(f"{path}: is a file; --out needs a folder")
    _writable(path)
    return path
