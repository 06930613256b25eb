"""The project's layers, bottom first, and every import that runs against them.

    python tools/check_layers.py          # a line per import that points up, or "no upward import"
    python tools/check_layers.py --json   # {"layers": ..., "violations": [...]}

A module may import modules of its own unit and of lower layers only. The one documented exception
is the IR's use of the target's number formats (`toolchain/ir` validates a fixed-point node against
Loihi's bit widths). Every import counts, those inside functions too: a lazy import is still a
dependency. A module that no layer names is an error, so a new package must be placed here.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("toolchain", "targets", "quantize")

# bottom first; a unit is a module or a package (its modules and sub-packages)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("toolchain.errors", "toolchain.lifetime", "toolchain.parallel"),
    ("toolchain.paths", "toolchain.resources", "toolchain.native"),
    ("toolchain.atomic",),
    ("toolchain.neuron", "toolchain.pooling", "toolchain.data"),
    ("toolchain.ir",),
    ("targets.loihi2", "toolchain.train"),
    ("targets.loihi2.lava",),
    ("toolchain.io",),
    ("quantize",),
    ("toolchain.report",),
    ("toolchain.pipeline",),
    ("toolchain.demo",),
    ("toolchain.api",),
    ("toolchain.commands",),
    ("toolchain.cli",),
)
EXCEPTIONS = {("toolchain.ir", "targets.loihi2.formats")}  # documented in docs/architecture.md


@dataclass(frozen=True)
class Violation:
    module: str
    imports: str
    line: int
    reason: str


def unit_of(module: str) -> tuple[str, int] | None:
    """The most specific unit that holds `module`, and its layer."""
    best = None
    for level, units in enumerate(LAYERS):
        for unit in units:
            if (module == unit or module.startswith(unit + ".")) and (
                best is None or len(unit) > len(best[0])
            ):
                best = (unit, level)
    return best


def modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, module: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import of the file, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level if path.name != "__init__.py" else None]
                base = ".".join([*package, base] if base else package)
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
            found.append((base, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] in PACKAGES]


def violations(sources: dict[str, Path] | None = None) -> list[Violation]:
    """The imports of `sources` (module -> file; default: the project's) that point up."""
    found = []
    for module, path in (modules() if sources is None else sources).items():
        here = unit_of(module)
        if module in PACKAGES and not imports(path, module):
            continue  # an empty package root
        if here is None:
            found.append(Violation(module, "", 0, "in no layer: place it in LAYERS"))
            continue
        for target, line in imports(path, module):
            there = unit_of(target)
            if there is None or there[0] == here[0] or there[1] < here[1]:
                continue
            if any(module.startswith(a) and target.startswith(b) for a, b in EXCEPTIONS):
                continue
            reason = f"layer {there[1]} ({there[0]}) above layer {here[1]} ({here[0]})"
            if there[1] == here[1]:
                reason = f"{there[0]} and {here[0]} share layer {here[1]}"
            found.append(Violation(module, target, line, reason))
    return sorted(set(found), key=lambda v: (v.module, v.line, v.imports))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    found = violations()
    if args.json:
        print(json.dumps({"layers": LAYERS, "violations": [asdict(v) for v in found]}))
    else:
        for v in found:
            print(f"{v.module}:{v.line} imports {v.imports}: {v.reason}")
        print(f"{len(found)} upward imports" if found else "no upward import")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
