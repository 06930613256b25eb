"""The paper's constants, pinned against ../shared/reference/tsslbp.md rather than our defaults.

Each expected value is copied from the reference (section in the comment), so a changed default
in the code fails here even where every other test compares the code with itself.
"""

import pytest
import torch

from toolchain.train.config import LossConfig, NeuronConfig, PoolSpec, TrainConfig, load_config
from toolchain.train.losses import desired_psp
from toolchain.train.methods.tsslbp import tsslbp_grad


def test_pooling_is_1_1_times_the_2x2_sum():  # tsslbp.md 1.3: theta defaults to 1.1
    assert PoolSpec().weight == 1.1, "the paper's pooling weight is 1.1 (tsslbp.md 1.3)"
    paper = load_config("examples/mnist_cnn.toml")
    pools = [spec for spec in paper.layers if isinstance(spec, PoolSpec)]
    assert [p.weight for p in pools] == [1.1, 1.1], "examples/mnist_cnn.toml must pool with 1.1"


def test_kernel_loss_target_is_0_1_1_1_1_filtered_twice():  # tsslbp.md 1.6
    target = desired_psp(LossConfig(), NeuronConfig(T=5, tau_m=5.0, tau_s=3.0))
    paper = torch.tensor([0.0, 0.111, 0.259, 0.407, 0.539])
    assert torch.allclose(target, paper, atol=5e-4), f"target {target.tolist()}"
    single = desired_psp(LossConfig(target_filter="single"), NeuronConfig(5, 5.0, 3.0))
    assert torch.allclose(single, torch.tensor([0.0, 0.333, 0.556, 0.704, 0.802]), atol=5e-4)


def test_optimiser_constants():  # tsslbp.md 3: AdamW wd 0.01, clip 1, weights in [-4, 4]
    train = TrainConfig(lr=5e-4, batch_size=50, epochs=1)
    assert (train.weight_decay, train.grad_clip, train.weight_clamp) == (0.01, 1.0, 4.0)
    assert NeuronConfig(T=5, tau_m=5.0, tau_s=3.0).threshold == 1.0  # 1.1: every V_th is 1


@pytest.mark.parametrize(("du", "factor"), [(0.05, 8.0), (0.125, 8.0), (0.5, 2.0)])
def test_final_backward_clamps_one_over_du_at_8(du, factor):  # tsslbp.md 2.2
    """One spike at the last step, so G = m e with e = g/tau_s: dL/dI = min(1/du, 8) g / 3."""
    u_pre = torch.tensor([[0.0, 1.0 + du]], dtype=torch.float64)  # u^r = 1 before, then +du
    u_pre[0, 0] = 1.0  # at threshold, not above: no spike at step 0
    spikes = torch.tensor([[False, True]])
    psp = torch.tensor([[0.0, 1.0 / 3.0]], dtype=torch.float64)
    grad = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    out = tsslbp_grad(grad, psp, spikes, u_pre, tau_m=5.0, tau_s=3.0, threshold=1.0)
    assert out[0, 1].item() == pytest.approx(factor / 3.0), "clamp of 1/du is 8 (tsslbp.md 2.2)"
