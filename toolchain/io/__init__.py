"""Graph files: one registry that picks the reader by the file's content first, then by its
suffix. To add a format: a module with a reader (path -> Graph) and an entry in `FORMATS`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolchain.errors import UserError
from toolchain.io.onnx_format import OnnxFormatError
from toolchain.io.onnx_read import load_onnx
from toolchain.io.onnx_write import graph_to_onnx, save_onnx
from toolchain.ir import Graph


class GraphFileError(UserError, ValueError):
    """A file cannot be read as a Graph; the message names the file and what is accepted."""


def _from_checkpoint(path: Path) -> Graph:
    from toolchain.train.to_graph import graph_from_checkpoint

    return graph_from_checkpoint(path)


@dataclass(frozen=True)
class Format:
    name: str
    suffixes: tuple[str, ...]
    recognise: Callable[[bytes], bool]  # from the file's first bytes
    read: Callable[[Path], Graph]


def _is_zip(head: bytes) -> bool:  # torch.save writes a zip archive
    return head.startswith(b"PK\x03\x04")


def _is_onnx(head: bytes) -> bool:  # protobuf: field 1 (ir_version, a varint) comes first
    return head.startswith(b"\x08")


def _from_netx(path: Path) -> Graph:
    from toolchain.io.netx_read import read_netx_graph

    return read_netx_graph(path)


def _never(head: bytes) -> bool:  # HDF5's signature does not tell netx from NIR: the suffix does
    return False


FORMATS = (
    Format("training checkpoint", (".pt",), _is_zip, _from_checkpoint),
    Format("ONNX graph", (".onnx",), _is_onnx, load_onnx),
    Format("lava-dl netx", (".net", ".h5"), _never, _from_netx),
)


def read_graph(path: Path | str) -> Graph:
    """The Graph a file holds, by its content, else by its suffix."""
    path = Path(path)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "not found"
        raise GraphFileError(f"{path}: {what}; expected a graph file: {_accepted()}")
    with path.open("rb") as handle:
        head = handle.read(16)
    for fmt in FORMATS:
        if fmt.recognise(head):
            return fmt.read(path)
    for fmt in FORMATS:
        if path.suffix in fmt.suffixes:
            return fmt.read(path)
    raise GraphFileError(f"{path}: not a graph file this toolchain reads; accepted: {_accepted()}")


def _accepted() -> str:
    return ", ".join(f"{fmt.name} ({'/'.join(fmt.suffixes)})" for fmt in FORMATS)


__all__ = [
    "FORMATS",
    "GraphFileError",
    "OnnxFormatError",
    "graph_to_onnx",
    "load_onnx",
    "read_graph",
    "save_onnx",
]
