"""The reference simulator's compiled population update (`targets/loihi2/kernels/population.cpp`)
against its numpy reference (`_update_reference`), bit for bit, on states that wrap, saturate,
spike and reset, with and without biases, drives of every dtype the synapses produce, and the
voltage before the reset recorded or not. (Lava against the simulator: test_lava_deploy.py.)"""

import copy

import numpy as np
import pytest

from targets.loihi2 import simulator
from targets.loihi2.simulator import _Population, _State, _update, _update_reference

LIMIT = 2**23


def population(shape, decays, bias, reset_sub) -> _Population:
    rng = np.random.default_rng(1)
    values = None
    if bias:
        values = rng.integers(-3000, 3000, shape[0]).astype(np.float64) * 64
        values = values.reshape(-1, *[1] * (len(shape) - 1))
    return _Population("p", shape, *decays, 200 * 64, reset_sub, values, None)


def state(shape, rng) -> _State:
    s = _State.zeros((6, *shape))
    s.u[...] = rng.integers(-LIMIT, LIMIT, s.u.shape)
    s.v[...] = rng.integers(-LIMIT + 1, LIMIT, s.v.shape)
    return s


# The larger shapes span several of the kernel's 16384-element chunks, which start mid-channel.
@pytest.mark.parametrize(
    "shape",
    [(5, 4, 3), (17,), (7, 30, 30), (3001,)],
    ids=["conv", "dense", "conv-chunks", "dense-chunks"],
)
@pytest.mark.parametrize("decays", [(4096, 4096), (3000, 100), (0, 4095)])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("reset_sub", [None, 150 * 64])
@pytest.mark.parametrize("drive_dtype", [None, np.int64, np.float32, np.float64])
def test_the_compiled_update_equals_the_numpy_reference(
    shape, decays, bias, reset_sub, drive_dtype
):
    assert simulator.population_kernel() is not None, "g++ and ninja are here: it must build"
    rng = np.random.default_rng(hash((shape, decays, bias, reset_sub, str(drive_dtype))) % 2**32)
    pop = population(shape, decays, bias, reset_sub)
    ours = state(shape, rng)
    for record in (False, True):
        drive = None
        if drive_dtype is not None:
            drive = (rng.integers(-(2**17), 2**17, ours.u.shape) * 64).astype(drive_dtype)
        theirs = copy.deepcopy(ours)
        _update(pop, ours, drive, record)
        _update_reference(pop, theirs, drive, record)
        for name in ("u", "v", "spikes", "v_crossing"):
            np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name), err_msg=name)
        assert (ours.current_wraps, ours.voltage_saturations, ours.fired) == (
            theirs.current_wraps,
            theirs.voltage_saturations,
            theirs.fired,
        )
    if decays == (4096, 4096):  # nothing decays: the states stay large enough to overflow
        assert ours.spikes.any() and not ours.spikes.all()
        assert ours.voltage_saturations > 0 and (drive_dtype is None or ours.current_wraps > 0)
