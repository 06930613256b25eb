"""The first divergence of fixed point from float: the earliest step, then the earliest layer,
at which spikes differ; everything before it agrees (checked against the runs themselves)."""

import dataclasses

import numpy as np

from quantize.pipeline import quantize_checkpoint
from toolchain.report.compare import _fixed_run, _float_run, compare
from toolchain.report.divergence import first_divergences
from toolchain.train.loop import model_from_checkpoint


def test_the_earliest_step_wins_then_the_earliest_layer():
    """Sample 0 differs in layer 1 at step 2 and in layer 0 at step 4: layer 1, step 2.
    Sample 1 differs in both layers at step 3: layer 0. Sample 2 agrees everywhere. A read-out
    layer is not compared."""
    f0, f1, f2 = np.zeros((3, 4, 6)), np.zeros((3, 2, 6)), np.zeros((3, 3, 6))
    q0, q1, q2 = f0.copy(), f1.copy(), f2.copy()
    q0[0, 3, 4] = 1
    q1[0, [0, 1], 2] = 1
    q0[1, 2, 3] = q1[1, 0, 3] = 1
    q2[2, 0, 0] = 5.0  # a read-out's membrane
    found = first_divergences([f0, f1, f2], [q0, q1, q2], [True, True, False])
    assert [(d.layer, d.step, d.neurons, d.differing) for d in found[:2]] == [
        (1, 2, (0, 1), 2),
        (0, 3, (2,), 1),
    ]
    assert found[2] is None


def test_every_changed_prediction_has_a_first_divergence_before_which_all_agree(
    digits, digits_checkpoint
):
    """The digits network quantised on few images with a coarse threshold, so that predictions
    change: each changed one has a first divergence, and the runs agree before it."""
    fixed = quantize_checkpoint(digits_checkpoint, digits, calibration=50, progress=False).graph
    nodes = list(fixed.nodes)
    nodes[2] = dataclasses.replace(nodes[2], vth=max(1, nodes[2].vth - 3))  # fixed point departs
    fixed = fixed.with_nodes(tuple(nodes))
    model = model_from_checkpoint(digits_checkpoint)
    result, _ = compare(model, fixed, digits.test)
    assert result.changed
    worst = result.divergences.worst()
    assert {d.sample for d in worst} == {c["index"] for c in result.changed}
    assert sum(map(sum, result.divergences.histogram)) == result.divergences.diverging
    images = digits.test.images
    float_run, fixed_run = _float_run(model, images, fixed), _fixed_run(fixed, images)
    for d in worst[:20]:
        for layer, (f, q) in enumerate(zip(float_run.spikes, fixed_run.spikes, strict=True)):
            before = d.step + (1 if layer < d.layer else 0)  # earlier layers agree at d.step too
            np.testing.assert_array_equal(f[d.sample, ..., :before], q[d.sample, ..., :before])
        f, q = float_run.spikes[d.layer][d.sample], fixed_run.spikes[d.layer][d.sample]
        differing = np.flatnonzero((f != q).reshape(-1, f.shape[-1])[:, d.step])
        assert d.neurons == tuple(differing[:8]) and d.differing == len(differing)
    report = result.to_json()["first_divergence"]
    assert report["changed_predictions"][0]["index"] == worst[0].sample
    assert "first divergence" in result.table()
