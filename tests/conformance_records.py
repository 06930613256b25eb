"""What a test proves about the field's networks, recorded as it runs: the conformance matrix of
docs/conformance.md (`tools/conformance.py`) is made of these records, never written by hand.

A test says what it proves with a marker,

    @pytest.mark.conformance("snnTorch", "reset by subtraction", "own spikes", "Lava bit-exact")
    @pytest.mark.conformance("lava-dl netx", "synaptic delays", refused="why, in words")

a column (`COLUMNS`: a library or a format), a row (`ROWS`: a node or neuron feature; or a dict
from a part of the parameter id to the row, for a test parametrised over features) and the
claims its asserts establish (`CLAIMS`); or `refused`: what stays refused and why; or `absent`:
why the library itself cannot build the feature. With SNN_DEPLOY_CONFORMANCE set
to a file, every marked test that runs appends one JSON line there: the column, row, claims or
refusal, the test's id and its outcome.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

COLUMNS = (
    "snnTorch",
    "Norse",
    "Sinabs",
    "SpikingJelly",
    "Rockpool",
    "lava-dl netx",
    "NIR",
    "ONNX",
)
ROWS = (
    "LIF",
    "reset by subtraction",
    "synaptic current (CubaLIF)",
    "IF (no leak)",
    "bias",
    "refractory step",
    "recurrent layer",
    "convolution",
    "pooling",
    "spike counts",
    "one spike per step (Sinabs SingleSpike)",
    "read-out (membrane out)",
    "per-neuron parameters",
    "spikes without an input layer",
    "synaptic delays",
    "layer without neurons",
    "graded spikes",
)
CLAIMS = {
    "own spikes": "imports to the library's (or file's) own spikes, exactly",
    "quantises": "quantises to Loihi's integers, float and fixed point agreeing on most spikes",
    "Lava bit-exact": "runs on Lava equal to the reference simulator on every spike",
    "round trip": "written and read back, the same graph or the same spikes",
}
RESULTS_ENV = "SNN_DEPLOY_CONFORMANCE"


def records(item: pytest.Item, outcome: str) -> list[dict[str, Any]]:
    """The item's conformance records, one per marker."""
    found = []
    for marker in item.iter_markers("conformance"):
        column, row, *claims = marker.args
        if column not in COLUMNS:
            raise ValueError(f"{item.nodeid}: column {column!r}; accepted: {COLUMNS}")
        unknown = set(claims) - set(CLAIMS)
        if unknown:
            raise ValueError(f"{item.nodeid}: claims {sorted(unknown)}; accepted: {list(CLAIMS)}")
        row = _row(item, row)
        if row is None:
            continue
        if row not in ROWS:
            raise ValueError(f"{item.nodeid}: row {row!r}; accepted: {ROWS}")
        unknown = set(marker.kwargs) - {"refused", "absent"}
        if unknown:
            raise ValueError(f"{item.nodeid}: {sorted(unknown)}; accepted: refused, absent")
        found.append(
            {
                "column": column,
                "row": row,
                "claims": claims,
                "refused": marker.kwargs.get("refused"),
                "absent": marker.kwargs.get("absent"),
                "test": item.nodeid,
                "outcome": outcome,
            }
        )
    return found


def _row(item: pytest.Item, row: str | dict[str, str]) -> str | None:
    """The row, or for a dict the row of the parameter id, or of the first key that is one of the
    id's parts (None: none)."""
    if isinstance(row, str):
        return row
    ident = item.callspec.id if hasattr(item, "callspec") else ""
    if ident in row:
        return row[ident]
    return next((value for key, value in row.items() if key in ident.split("-")), None)


def record(item: pytest.Item, report: pytest.TestReport) -> None:
    """Appends the item's records where SNN_DEPLOY_CONFORMANCE names a file: after its call,
    or after a setup that failed or skipped it."""
    path = os.environ.get(RESULTS_ENV)
    if not path or not (report.when == "call" or report.outcome != "passed"):
        return
    lines = [json.dumps(r) for r in records(item, report.outcome)]
    if lines:
        with Path(path).open("a") as out:
            out.write("\n".join(lines) + "\n")
