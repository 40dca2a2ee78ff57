import pytest
import torch
from torch import nn

from bench.core.errors import BenchError
from bench.system.flops import flops_per_image, mfu, peak_flops

# torch's FlopCounterMode counts a multiply-add as 2 FLOPs (2*M*N*K for a matmul).


def test_linear_by_hand():
    k, n = 8, 4
    f = flops_per_image(nn.Linear(k, n), input_shape=(k,))
    assert f["forward"] == 2 * n * k
    # No gradient for the input (it is data), so backward is only dW = 2*N*K per image.
    assert f["backward"] == 2 * n * k
    assert f["train_step"] == f["forward"] + f["backward"] == 4 * n * k


def test_conv_by_hand_and_two_layer_backward():
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    f = flops_per_image(conv, input_shape=(3, 8, 8))
    per_layer = 2 * (4 * 8 * 8) * (3 * 3 * 3)  # 2 x outputs x MACs per output
    assert f["forward"] == per_layer and f["backward"] == per_layer

    second = nn.Conv2d(4, 4, 3, padding=1, bias=False)
    g = flops_per_image(nn.Sequential(conv, nn.ReLU(), second), input_shape=(3, 8, 8))
    second_fwd = 2 * (4 * 8 * 8) * (4 * 3 * 3)
    assert g["forward"] == per_layer + second_fwd
    # The second layer needs dW and dX, the first only dW.
    assert g["backward"] == per_layer + 2 * second_fwd
    assert g["train_step"] == g["forward"] + g["backward"]


def test_model_state_is_restored():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(2, 3, 8, 8))  # materialise the lazy layer
    model.train()
    stats_before = model[1].running_mean.clone()
    flops_per_image(model, input_shape=(3, 8, 8))
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(model[1].running_mean, stats_before)

    model.eval()
    flops_per_image(model, input_shape=(3, 8, 8))
    assert not model.training


def test_frozen_model_is_refused():
    lin = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(BenchError, match="no trainable parameters"):
        flops_per_image(lin, input_shape=(2,))


def test_peak_lookup():
    value, source = peak_flops("NVIDIA H100 80GB HBM3", "bf16")
    assert value == pytest.approx(989.4e12) and "H100" in source and "dense" in source
    value, source = peak_flops("Tesla V100-SXM2-16GB", "fp16")
    assert value == 125e12 and "V100" in source
    assert peak_flops("NVIDIA A100-SXM4-40GB", "tf32")[0] == 156e12
    assert peak_flops("cpu", "fp32") == (None, "no peak table for CPUs")
    assert peak_flops("NVIDIA H100 PCIe", "bf16")[0] is None  # different clocks than SXM
    assert peak_flops("Tesla V100-SXM2-16GB", "bf16")[0] is None
    with pytest.raises(BenchError, match="precision"):
        peak_flops("NVIDIA H100 80GB HBM3", "int8")


def test_mfu():
    assert mfu(1e9, 1e5, 1e15) == pytest.approx(0.1)
    assert mfu(1e9, 1e5, None) is None
