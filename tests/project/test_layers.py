"""The layers hold: no module imports one of a higher layer (tools/check_layers.py), the checker
finds an upward import where one is planted, and `snn-deploy --help` loads no Lava."""

import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))

import check_layers  # noqa: E402  (a script of the project's, not a package)


def test_no_module_imports_a_higher_layer():
    assert check_layers.violations() == []


def test_an_upward_import_is_found_even_inside_a_function(tmp_path):
    ir_module = tmp_path / "lazy.py"
    ir_module.write_text("def f():\n    from toolchain.train.loop import train\n")
    allowed = tmp_path / "formats.py"
    allowed.write_text("from targets.loihi2.formats import VTH_MAX\n")
    found = check_layers.violations({"toolchain.ir.lazy": ir_module, "toolchain.ir.ok": allowed})
    assert [(v.module, v.imports, v.line) for v in found] == [
        ("toolchain.ir.lazy", "toolchain.train.loop", 2),
        ("toolchain.ir.lazy", "toolchain.train.loop.train", 2),
    ]
    assert "above layer" in found[0].reason
    unplaced = check_layers.violations({"newpackage.thing": allowed})
    assert unplaced[0].reason.startswith("in no layer")


def test_help_loads_no_lava():
    probe = (
        "import sys\n"
        "from toolchain.cli import main\n"
        "assert main(['--help']) == 0 and main(['deploy', '--help']) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'lava'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
