"""Graph files: one registry of formats (their `--format` key, suffixes, how their content looks,
a reader and a writer) that picks the reader by the file's content first, then by its suffix.
`inspect`, `simulate`, `deploy`, `compare` and `quantize` read graph files through it, `import`
and `export` choose the format through it. To add a format: a module with a reader (path ->
Graph) and a writer, and an entry in `FORMATS`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolchain.errors import UserError
from toolchain.io.onnx_format import OnnxFormatError
from toolchain.io.onnx_read import load_onnx
from toolchain.io.onnx_write import graph_to_onnx, save_onnx
from toolchain.ir import Graph
from toolchain.paths import PathError


class GraphFileError(UserError, ValueError):
    """A file cannot be read as a Graph; the message names the file and what is accepted."""


def _from_checkpoint(path: Path) -> Graph:
    from toolchain.train.to_graph import graph_from_checkpoint

    return graph_from_checkpoint(path)


def _from_netx(path: Path) -> Graph:
    from toolchain.io.netx_read import read_netx_graph

    return read_netx_graph(path)


def _from_nir(path: Path) -> Graph:
    from toolchain.io.nir_read import read_nir

    return read_nir(path)


def _to_netx(graph: Graph, path: Path) -> None:
    from toolchain.io.netx_write import save_netx

    save_netx(graph, path)


def _to_nir(graph: Graph, path: Path) -> None:
    from toolchain.io.nir_write import save_nir

    save_nir(graph, path)


@dataclass(frozen=True)
class Format:
    key: str  # as `export --format` names it
    name: str
    suffixes: tuple[str, ...]
    recognise: Callable[[Path, bytes], bool]  # from the file (its first bytes given)
    read: Callable[[Path], Graph]
    write: Callable[[Graph, Path], object] | None = None
    graph_file: bool = True  # read by every command that takes a graph file (NIR: `import`)


def _is_zip(path: Path, head: bytes) -> bool:  # torch.save writes a zip archive
    return head.startswith(b"PK\x03\x04")


def _is_onnx(path: Path, head: bytes) -> bool:  # protobuf: field 1 (ir_version, a varint) first
    return head.startswith(b"\x08")


def _hdf5_holding(group: str) -> Callable[[Path, bytes], bool]:
    """HDF5 files whose root holds `group`: netx keeps "layer", NIR "node"."""

    def recognise(path: Path, head: bytes) -> bool:
        if not head.startswith(b"\x89HDF\r\n\x1a\n"):
            return False
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                return group in handle
        except OSError:
            return False

    return recognise


FORMATS = (
    Format("checkpoint", "training checkpoint", (".pt",), _is_zip, _from_checkpoint),
    Format("onnx", "ONNX graph", (".onnx",), _is_onnx, load_onnx, save_onnx),
    Format("netx", "lava-dl netx", (".net", ".h5"), _hdf5_holding("layer"), _from_netx, _to_netx),
    Format("nir", "NIR graph", (".nir",), _hdf5_holding("node"), _from_nir, _to_nir, False),
)


def format_of(path: Path | str) -> Format | None:
    """The format of an existing file: by its content, else by its suffix; None if neither."""
    path = Path(path)
    with path.open("rb") as handle:
        head = handle.read(16)
    for fmt in FORMATS:
        if fmt.recognise(path, head):
            return fmt
    return next((fmt for fmt in FORMATS if path.suffix.lower() in fmt.suffixes), None)


def by_key(key: str) -> Format:
    return next(fmt for fmt in FORMATS if fmt.key == key)


def is_checkpoint(path: Path | str) -> bool:
    """By content where the file exists, else by its suffix (so that loading it names it)."""
    path = Path(path)
    if not path.is_file():
        return path.suffix == ".pt"
    fmt = format_of(path)
    return fmt is not None and fmt.key == "checkpoint"


def named_for(path: Path, fmt: Format) -> Path:
    """`path` if its suffix is one of the format's, else an error saying which to use: readers
    choose by content, but every other tool by name."""
    if path.suffix.lower() not in fmt.suffixes:
        raise PathError(
            f"{path}: a {fmt.name} file is named *{' or *'.join(fmt.suffixes)}; a "
            f"{path.suffix or 'suffix-less'} name would mislead every other reader"
        )
    return path


def read_graph(path: Path | str) -> Graph:
    """The Graph a graph file holds (a checkpoint, ONNX or netx), by its content, else by its
    suffix."""
    path = Path(path)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "not found"
        raise GraphFileError(f"{path}: {what}; expected a graph file: {_accepted()}")
    fmt = format_of(path)
    if fmt is None or not fmt.graph_file:
        raise GraphFileError(
            f"{path}: not a graph file this toolchain reads; accepted: {_accepted()}"
            + (" (a NIR file: `snn-deploy import` it first)" if fmt is not None else "")
        )
    return fmt.read(path)


def _accepted() -> str:
    files = (fmt for fmt in FORMATS if fmt.graph_file)
    return ", ".join(f"{fmt.name} ({'/'.join(fmt.suffixes)})" for fmt in files)


__all__ = [
    "FORMATS",
    "Format",
    "by_key",
    "format_of",
    "GraphFileError",
    "OnnxFormatError",
    "graph_to_onnx",
    "is_checkpoint",
    "load_onnx",
    "named_for",
    "read_graph",
    "save_onnx",
]
