"""Committed benchmark results name no path of the machine that measured them."""

import json

import pytest
from conftest import ROOT

RESULTS = sorted((ROOT / "benchmarks/results").glob("*.json"))


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.mark.parametrize("path", RESULTS, ids=lambda path: path.name)
def test_no_absolute_paths(path):
    absolute = [text for text in strings(json.loads(path.read_text())) if text.startswith("/")]
    assert absolute == [], f"{path.name} names paths of this machine: {absolute}"


def test_there_are_results():
    assert len(RESULTS) >= 5
