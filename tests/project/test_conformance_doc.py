"""docs/conformance.md is the rendering of the committed test results (docs/conformance.json),
those results cover exactly the tests marked `conformance` today and all passed, and the
renderer shows what did not pass and every refusal's reason."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))

import conformance  # noqa: E402  (tools/conformance.py, a script of the project's)

RECORDS = json.loads(conformance.RESULTS.read_text())


def test_the_page_is_the_rendering_of_the_results():
    assert conformance.PAGE.read_text() == conformance.render(RECORDS), (
        "docs/conformance.md differs from its results: run `make conformance`"
    )


def test_every_recorded_test_passed():
    assert [r["test"] for r in RECORDS if r["outcome"] != "passed"] == []


def test_the_results_cover_every_marked_test():
    """A test marked since the last `make conformance` (or one renamed) is caught here."""
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "conformance", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    marked = {line for line in collected if "::" in line}
    assert marked == {r["test"] for r in RECORDS}, "run `make conformance`"


def record(row: str, column: str, claims=(), outcome="passed", **why) -> dict:
    return {
        "column": column,
        "row": row,
        "claims": list(claims),
        "refused": why.get("refused"),
        "absent": why.get("absent"),
        "test": f"tests/x.py::test_{row}_{column}",
        "outcome": outcome,
    }


def test_a_claim_that_did_not_pass_is_shown_apart_and_refusals_are_numbered():
    page = conformance.render(
        [
            record("LIF", "Norse", ["own spikes", "Lava bit-exact"]),
            record("LIF", "Norse", ["Lava bit-exact"], outcome="failed"),
            record("bias", "ONNX", refused="no room"),
            record("bias", "SpikingJelly", absent="cannot"),
        ]
    )
    assert "| LIF | — | own, *Lava* | — |" in page
    assert "| bias | — | — | — | absent (2) | — | — | — | refused (1) |" in page
    assert "1. ONNX, bias (refused): no room" in page
    assert "2. SpikingJelly, bias (absent): cannot" in page


def test_a_marker_outside_the_vocabulary_is_refused():
    from conformance_records import records

    class Item:
        nodeid = "tests/x.py::test_y"

        def iter_markers(self, name):
            yield pytest.mark.conformance("snnTorch", "teleportation", "own spikes").mark

    with pytest.raises(ValueError, match="row 'teleportation'"):
        records(Item(), "passed")
