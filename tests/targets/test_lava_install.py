"""The Lava install works: the 3.11 compat shim and a real fixed-point network run.

``targets.loihi2.lava`` must be imported before anything from ``lava``, so every Lava
import below happens inside a test, after ``import targets.loihi2.lava``.
"""

import subprocess
import sys

import numpy as np
import pytest

import targets.loihi2.lava  # noqa: F401  (installs the compat finder before any lava import)
from targets.loihi2.lava import compat


def test_compat_makes_var_model_importable() -> None:
    compat.install()
    compat.install()
    finders = [f for f in sys.meta_path if isinstance(f, compat._LavaFinder)]
    assert len(finders) == 1

    from lava.magma.compiler.var_model import AxonEncoder, ChipEncoder, CoreEncoder

    # default_factory semantics: each instance gets its own ByteEncoder.
    assert CoreEncoder().x is not CoreEncoder().x
    assert ChipEncoder().z is not ChipEncoder().z
    assert AxonEncoder().hi is not AxonEncoder().hi
    assert CoreEncoder().x == CoreEncoder().x


def test_patch_source_rejects_unexpected_source() -> None:
    with pytest.raises(ImportError, match="lava-nc 0.10.0"):
        compat.patch_source("x: ByteEncoder = ByteEncoder()\n", "var_model.py")


def test_two_layer_fixed_point_network_matches_hand_computation() -> None:
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    T = 8
    # Input spikes, column c is sent by the source at step c + 1.
    data = np.array(
        [
            [1, 1, 1, 1, 0, 0, 0, 0],  # in0
            [0, 0, 1, 0, 1, 1, 0, 0],  # in1
        ],
        dtype=np.int32,
    )
    # All weights non-negative and even: no bit is lost to Dense's truncation.
    weights = np.array([[6, 0], [2, 4]], dtype=np.int32)
    vth = 10

    source = Source(data=data)
    dense = Dense(weights=weights)
    # du=4095: u = a_in << 6 (fresh input only); dv=0: no voltage leak.
    lif = LIF(shape=(2,), du=4095, dv=0, vth=vth, bias_mant=0, bias_exp=0)
    sink = Sink(shape=(2,), buffer=T)
    monitor = Monitor()
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    monitor.probe(lif.v, T)

    try:
        lif.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        spikes = sink.data.get()
        v = monitor.get_data()[lif.name]["v"]
    finally:
        lif.stop()

    # Hand computation, in units of 64 (u = 64*A, v = 64*V, threshold 64*10):
    # Dense delays one step, so the input at step t is A(t) = W @ data[:, t-2], A(1) = 0.
    #   step t          1  2  3   4   5   6  7  8
    #   A0 = 6*in0      0  6  6   6   6   0  0  0
    #   A1 = 2*in0+4*in1 0 2  2   6   2   4  4  0
    # V(t) = V(t-1) + A(t); spike iff V > 10 (strictly), then V = 0.
    #   V0              0  6 12*  6 12*   0  0  0   -> n0 spikes at steps 3 and 5
    #   V1              0  2  4  10 12*   4  8  8   -> n1 spikes at step 5 (10 is not > 10)
    # Sink column j holds the spikes of step j + 1.
    expected_spikes = np.array(
        [
            [0, 0, 1, 0, 1, 0, 0, 0],
            [0, 0, 0, 0, 1, 0, 0, 0],
        ]
    )
    # Monitor row t-1 holds v after step t (after reset): 64 * V.
    expected_v = np.array(
        [
            [0, 384, 0, 384, 0, 0, 0, 0],  # 64 * (0, 6, 0, 6, 0, 0, 0, 0)
            [0, 128, 256, 640, 0, 256, 512, 512],  # 64 * (0, 2, 4, 10, 0, 4, 8, 8)
        ]
    ).T

    np.testing.assert_array_equal(spikes, expected_spikes)
    assert v.shape == (T, 2)
    np.testing.assert_array_equal(v, expected_v)


def test_lava_imports_after_the_fork_context_is_fixed() -> None:
    """tqdm (among others) fixes multiprocessing's default context; Lava must still import."""
    code = (
        "import multiprocessing as mp; mp.get_context().Lock();"
        "import targets.loihi2.lava; import lava.proc.dense.process; print(mp.get_start_method())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fork"
