"""HDF5 files (NIR, lava-dl netx) are read only when everything in them is in them.

HDF5 can make a dataset's bytes come from elsewhere: an external link to a node of another file,
a virtual dataset assembled from other files, raw external storage, or a soft link to a path that
is not in the file. Reading such a file would silently take another file's data (or, pointed at
/etc/passwd, fail deep inside h5py). As ONNX external data is, each is refused, naming the node.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from toolchain.errors import UserError

# What numpy and h5py raise on a field of a type or shape the format never stores: a damaged or
# foreign file, reported as such by the readers, naming the node or layer where they can.
READ_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


class Hdf5LinkError(UserError, ValueError):
    """A node of an HDF5 file whose data lives outside the file; the message names it."""


def check_self_contained(path: Path) -> None:
    """Raises Hdf5LinkError naming the first node that reads from outside `path`; a file that
    is not HDF5 at all is left for its reader to refuse."""
    try:
        handle = h5py.File(path, "r")
    except OSError:
        return
    with handle:
        # the visit stops at the first callback that returns something (an exception raised
        # inside it would cross h5py's C code)
        problem = handle.visititems_links(lambda name, link: _problem(handle, name, link))
    if problem:
        raise Hdf5LinkError(f"{path}: {problem}; accepted: data stored in the file itself")


def _problem(file: h5py.File, name: str, link: object) -> str | None:
    """What is wrong with one link, or None."""
    if isinstance(link, h5py.ExternalLink):
        return f"/{name} is a link into {link.filename}"
    if isinstance(link, h5py.SoftLink) and link.path not in file:
        return f"/{name} links to {link.path}, which the file lacks"
    node = file.get(name)
    if isinstance(node, h5py.Dataset) and node.is_virtual:
        return f"/{name} is a virtual dataset"
    if isinstance(node, h5py.Dataset) and node.external:
        return f"/{name} is stored in external files"
    return None
