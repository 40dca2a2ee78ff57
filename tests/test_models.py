"""Model shapes, parameter counts and recipe-value checks. Tiny widths keep forward passes cheap on a shared CPU."""
import pytest
import torch
import torch.nn as nn

from bench.core.errors import BenchError
from bench.models import ARCHITECTURES, build_model, count_parameters, model_params
from bench.models.layers import Residual, conv_bn_act, leaky
from bench.models.wrn import BasicBlock

TINY = {
    "darknet": {"layers": [1, 1, 1], "nf": 4},
    "wrn": {"depth": 10, "width": 1, "start_nf": 4},
    "resnet9": {"widths": [4, 8, 8, 16]},
    "airnet": {"widths": [4, 8, 8]},
}


def convs(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def conv_bn_count(ni, nf, ks):
    return ni * nf * ks * ks + 2 * nf  # conv has no bias; BN has weight and bias


def darknet_count(layers, nf, funnel=0.5, kernel_sizes=(1, 3), classes=10):
    total = conv_bn_count(3, nf, 3)
    for nb in layers:
        ni = nf * 2
        mid = int(ni * funnel)
        widths = [ni] + [mid] * (len(kernel_sizes) - 1) + [ni]
        res = sum(conv_bn_count(a, b, k) for a, b, k in zip(widths, widths[1:], kernel_sizes))
        total += conv_bn_count(nf, ni, 3) + nb * res
        nf = ni
    return total + nf * classes + classes


# --- parameter counts (no forward passes) ---------------------------------------------------------------

def test_darknet_tiny_count_by_hand():
    model = build_model("darknet", {"layers": [1, 1], "nf": 4})
    stem = 3 * 4 * 9 + 2 * 4                                         # 116
    group0 = (4 * 8 * 9 + 16) + (8 * 4 * 1 + 8) + (4 * 8 * 9 + 16)  # 304 + 40 + 304
    group1 = (8 * 16 * 9 + 32) + (16 * 8 * 1 + 16) + (8 * 16 * 9 + 32)  # 1184 + 144 + 1184
    head = 16 * 10 + 10
    assert count_parameters(model) == stem + group0 + group1 + head == 3446
    assert darknet_count([1, 1], 4) == 3446


def test_darknet_seed_count():
    n = count_parameters(build_model("darknet", {}))
    print(f"darknet seed params: {n}")
    assert n == darknet_count([1, 2, 4, 6, 3], 32) == 31_410_922


def wrn_count(depth, width, start_nf=16, classes=10):
    """By hand: stem conv; per block a BN on its input, two 3x3 convs, the BN between them, and a 1x1
    shortcut conv when the width changes; then the final BN and the linear head."""
    n = (depth - 4) // 6
    total, ni = 3 * start_nf * 9, start_nf
    for i in range(3):
        nf = start_nf * width * 2 ** i
        for b in range(n):
            cin = ni if b == 0 else nf
            total += 2 * cin + cin * nf * 9 + 2 * nf + nf * nf * 9 + (cin * nf if cin != nf else 0)
        ni = nf
    return total + 2 * ni + ni * classes + classes


def test_wrn22_and_resnet9_counts():
    wrn22 = count_parameters(build_model("wrn", {"depth": 22, "width": 6}))
    r9 = count_parameters(build_model("resnet9", {}))
    print(f"wrn22 params: {wrn22}, resnet9 params: {r9}")
    assert wrn22 == wrn_count(22, 6) == 9_658_458
    assert r9 == 6_573_120
    assert count_parameters(build_model("wrn", {"depth": 16, "width": 4})) == wrn_count(16, 4)
    # the same tensors in every form, but entry_date's head is a 1x1 conv without bias
    assert count_parameters(build_model("wrn", {"form": "fastai07"})) == 9_658_458
    assert count_parameters(build_model("wrn", {"form": "entry_date"})) == 9_658_458 - 10


# --- shapes and structure -------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("size", [32, 40, 24])
def test_output_shape_any_input_size(arch, size):
    model = build_model(arch, TINY[arch], num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 10)


def test_darknet_funnel_and_kernel_sizes():
    def first_res_convs(**params):
        model = build_model("darknet", {"layers": [1], "nf": 4, **params})
        res = model[1][1]
        assert isinstance(res, Residual)
        return [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs(res)]

    assert first_res_convs() == [(8, 4, 1), (4, 8, 3)]
    assert first_res_convs(funnel=1.0) == [(8, 8, 1), (8, 8, 3)]
    assert first_res_convs(funnel=2.0) == [(8, 16, 1), (16, 8, 3)]
    assert first_res_convs(kernel_sizes=[1, 3, 3]) == [(8, 4, 1), (4, 4, 3), (4, 8, 3)]
    assert first_res_convs(funnel=1, kernel_sizes=[3, 5]) == [(8, 8, 3), (8, 8, 5)]


def grid_sizes(model, n_blocks, size=32):
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        return [model[:i + 1](x).shape[-1] for i in range(n_blocks)]


def test_stride_patterns():
    dark = build_model("darknet", {"layers": [1, 1, 1, 1, 1], "nf": 2}).eval()
    assert grid_sizes(dark, 6) == [32, 16, 16, 8, 4, 2]  # the second group keeps the grid
    wrn = build_model("wrn", TINY["wrn"]).eval()
    assert grid_sizes(wrn, 4) == [32, 32, 16, 8]
    r9 = build_model("resnet9", TINY["resnet9"]).eval()
    assert grid_sizes(r9, 4) == [32, 16, 8, 4]


def test_wrn_structure():
    model = build_model("wrn", {"depth": 16, "width": 6, "drop": 0.3, "branch_scale": 0.5})
    groups = [model[i] for i in (1, 2, 3)]
    assert [len(g) for g in groups] == [2, 2, 2]
    assert [g[0].branch[0].out_channels for g in groups] == [96, 192, 384]
    assert [g[0].branch[0].stride[0] for g in groups] == [1, 2, 2]
    blocks = [b for g in groups for b in g]
    assert all(isinstance(b, BasicBlock) and b.branch_scale == 0.5 for b in blocks)
    assert [b.shortcut is not None for b in blocks] == [True, False] * 3
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 6


def test_wrn_identity_block_input_per_form():
    """Convolutions zeroed, an identity block returns its shortcut: relu(bn(x)) in fast.ai's forms, zeros for
    a negative input (BN at its initial statistics is the identity), and the raw x in the entries' Cutout form.
    (Whole networks against transcriptions of each source: tests/test_transcriptions.py.)"""
    x = -torch.rand(2, 4, 5, 5) - 0.1
    for form, expected in (("fastai07", torch.zeros_like(x)), ("entry_date", torch.zeros_like(x)), ("entry", x)):
        block = BasicBlock(4, 4, 1, 0.0, form, 0.2).eval()
        assert block.shortcut is None
        for conv in convs(block):
            nn.init.zeros_(conv.weight)
        with torch.no_grad():
            assert torch.equal(block(x), expected), form


def test_resnet9_scales_logits():
    model = build_model("resnet9", {**TINY["resnet9"], "scale": 0.125}).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), model[:-1](x) * 0.125)
    assert model[-2].bias is None


# --- training-mode numerics -------------------------------------------------------------------------------

def test_residual_stack_backward():
    # Stacked residuals after an in-place activation: the pattern where an in-place add breaks autograd.
    def branch():
        return nn.Sequential(conv_bn_act(4, 2, 1, act=leaky), conv_bn_act(2, 4, act=leaky))

    model = nn.Sequential(conv_bn_act(3, 4, act=leaky), Residual(branch()), Residual(branch()))
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_channels_last_bf16_autocast_backward(arch):
    torch.manual_seed(0)
    model = build_model(arch, TINY[arch]).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        loss = nn.functional.cross_entropy(out, torch.arange(4))
    assert out.dtype == torch.bfloat16 and out.shape == (4, 10)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]  # airnet freezes some by design
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


# --- registry and recipe errors -----------------------------------------------------------------------------

def test_model_params_defaults():
    assert model_params("darknet") == {"layers": [1, 2, 4, 6, 3], "nf": 32, "funnel": 0.5,
                                       "kernel_sizes": [1, 3]}
    assert model_params("wrn") == {"depth": 22, "width": 6, "start_nf": 16, "form": "entry", "drop": 0.0,
                                   "branch_scale": None}
    assert model_params("resnet9") == {"widths": [64, 128, 256, 512], "scale": 0.125}


def test_unknown_arch():
    with pytest.raises(BenchError, match="darknet, resnet9, wrn"):
        build_model("vgg", {})
    with pytest.raises(BenchError):
        model_params("vgg")


def test_unknown_param():
    with pytest.raises(BenchError, match=r"model\.params\.width .*layers, nf, funnel, kernel_sizes"):
        build_model("darknet", {"width": 2})


@pytest.mark.parametrize("arch, name, value", [
    ("darknet", "layers", []),
    ("darknet", "layers", "1,2"),
    ("darknet", "layers", [1, -1]),
    ("darknet", "nf", 0),
    ("darknet", "nf", 2.5),
    ("darknet", "funnel", 0),
    ("darknet", "funnel", 0.01),  # inner width int(2*nf*funnel) would be 0
    ("darknet", "kernel_sizes", [3]),
    ("darknet", "kernel_sizes", [1, 2]),
    ("darknet", "kernel_sizes", [1, 3.0]),
    ("wrn", "depth", 20),
    ("wrn", "depth", 4),
    ("wrn", "width", 0),
    ("wrn", "start_nf", True),
    ("wrn", "drop", 1.0),
    ("wrn", "branch_scale", "big"),
    ("wrn", "form", "cutout"),
    ("resnet9", "widths", [16, 32, 64]),
    ("resnet9", "widths", [16, 0, 64, 128]),
    ("resnet9", "scale", 0),
])
def test_bad_values(arch, name, value):
    with pytest.raises(BenchError, match=rf"model\.params\.{name} must be") as err:
        build_model(arch, {name: value})
    assert err.value.exit_code == 2


def test_wrn_depth_message_names_form():
    with pytest.raises(BenchError, match=r"6\*N\+4"):
        build_model("wrn", {"depth": 21})


def test_num_classes():
    assert build_model("resnet9", TINY["resnet9"], num_classes=100)[-2].out_features == 100
    with pytest.raises(BenchError, match="num_classes"):
        build_model("resnet9", {}, num_classes=0)
