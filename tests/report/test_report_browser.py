"""report.html as a browser shows it (opt-in: `pytest -m browser`, needs Debian's `chromium`):
rendered headless with the network off, the page is not blank and its text holds the plan's
numbers."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from cli_runs import run
from graphs import unpacked

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (Debian's package)")
def test_the_plans_report_renders_with_its_numbers(tmp_path, capsys):
    import matplotlib.image

    net = unpacked("netx_tutorial_mnist.net", tmp_path)
    spikes = np.random.default_rng(0).random((2, 16, 784, 1, 1)) < 0.1
    np.save(tmp_path / "x.npy", spikes.astype(np.float32))
    out = tmp_path / "report"
    assert run(["plan", net, "--inputs", tmp_path / "x.npy", "--out", out, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    page = (out / "report.html").resolve().as_uri()
    headless = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=none:0"]
    shot = tmp_path / "page.png"
    subprocess.run(
        [*headless, f"--screenshot={shot}", "--window-size=1200,1600", page],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.std() > 0.05, "the screenshot is blank"
    dom = subprocess.run(
        [*headless, "--dump-dom", page], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    assert "5 neuro cores on 1 chip(s)" in dom
    assert f"{result['energy_per_inference_j']:.4g}" in dom
