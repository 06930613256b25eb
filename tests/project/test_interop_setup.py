"""`make interop`'s set-up, short of the install: tools/python310 finds a Python 3.10 that runs
or says how to get one."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

FIND = ROOT / "tools" / "python310"


def find(**env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHON310"} | env
    return subprocess.run([FIND], capture_output=True, text=True, env=environment, timeout=60)


def test_a_python_310_is_found_where_one_is_installed():
    found = find()
    if found.returncode == 2:
        assert "pyenv install 3.10" in found.stderr
        pytest.skip("no Python 3.10 on this machine")
    version = subprocess.run(
        [found.stdout.strip(), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert version.strip() == "(3, 10)"


def test_a_given_interpreter_that_is_not_310_is_refused():
    refused = find(PYTHON310=sys.executable)  # this one is 3.11
    assert refused.returncode == 2 and "is not a Python 3.10 that runs" in refused.stderr
