"""The record holders' method as harness switches: airnet's whitening init, the muon_sgd parameter groups and
their schedule, Muon's update, lookahead, test-time augmentation, and the recipes' validation rules.
Widths are tiny so each test is a fraction of a second on a 2-core CPU."""
import math

import pytest
import torch
from torch import nn

from bench import recipe as recipes
from bench.core.errors import BenchError
from bench.models import build_model
from bench.recipe.validation import from_dict
from bench.train.groups import Chain, GroupScheduled, build_optimizer, split_parameters
from bench.train.lookahead import Lookahead
from bench.train.loop import evaluate
from bench.train.muon import Muon, make_muon, orthogonalize
from bench.train.tta import predict

TINY = {"widths": [8, 16, 16]}


def record(*overrides):
    return recipes.load("record/airbench94_muon", list(overrides))


# ---------------------------------------------------------------- whitening init


def correlated_images(n=400, seed=0):
    """Images whose 2x2 patches are strongly correlated across pixels and channels (like photographs)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, 17, 17, generator=g)
    smooth = nn.functional.interpolate(base, size=(32, 32), mode="bilinear", align_corners=False)
    mix = torch.tensor([[1.0], [0.8], [0.6]])
    return (mix[None, :, :, None] * smooth + 0.1 * torch.randn(n, 3, 32, 32, generator=g)).contiguous()


def test_whitening_makes_patch_covariance_the_identity():
    model = build_model("airnet", TINY)
    images = correlated_images()
    model.init_whitening(images)
    w = model.whiten.weight
    d = w.shape[1] * w.shape[2] * w.shape[3]
    assert w.shape[0] == 2 * d and torch.equal(w[d:], -w[:d])  # each filter and its negative
    out = nn.functional.conv2d(images, w[:d])  # the whitened patches, without the bias
    flat = out.permute(0, 2, 3, 1).reshape(-1, d).double()
    cov = flat.T @ flat / flat.shape[0]
    # eps = 5e-4 in the eigenvalue's square root shrinks the smallest directions a little
    torch.testing.assert_close(cov, torch.eye(d, dtype=torch.float64), atol=0.05, rtol=0)
    before = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, d).double()
    assert (before.T @ before / before.shape[0] - torch.eye(d)).abs().max() > 0.5  # it had work to do


def test_whitening_filters_are_frozen_and_the_bias_trains():
    model = build_model("airnet", TINY)
    assert not model.whiten.weight.requires_grad and model.whiten.bias.requires_grad
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.weight.requires_grad and m.bias.requires_grad for m in bns)


def test_init_whitening_in_init_reads_training_images(jpeg_archive):
    """parts.init_whitening draws model.whiten_images training images, normalised like the loaders'."""
    from bench.run import parts

    r = record("data.train_subset=300", "data.test_subset=100", f"data.source={jpeg_archive}",
               "model.params.widths=[8,16,16]", "model.params.whiten_images=200")
    ds = parts.load_data(r, r.data.source, None)
    model = build_model("airnet", r.model.params)
    random_filters = model.whiten.weight.clone()
    parts.init_whitening(r, model, ds, torch.device("cpu"))
    assert not torch.equal(model.whiten.weight, random_filters)
    again = build_model("airnet", r.model.params)
    parts.init_whitening(r, again, ds, torch.device("cpu"))
    assert torch.equal(model.whiten.weight, again.whiten.weight)  # a fixed draw: the same filters every time


def test_airnet_params_are_checked():
    with pytest.raises(BenchError, match="model.params.act"):
        build_model("airnet", {"act": "tanh"})
    with pytest.raises(BenchError, match="model.params.bn_momentum"):
        build_model("airnet", {"bn_momentum": 1.0})
    out = build_model("airnet", TINY)(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


# ---------------------------------------------------------------- parameter groups


def test_groups_take_the_records_parameters():
    model = build_model("airnet", TINY)
    parts = split_parameters(model, record().optim.groups)
    names = {k: [n for n, _ in v] for k, v in parts.items()}
    assert names["whiten"] == ["whiten.bias"]
    assert names["head"] == ["head.weight"]
    assert len(names["filters"]) == 6 and all(n.endswith(".weight") for n in names["filters"])
    assert len(names["norm"]) == 6 and all(n.endswith(".bias") for n in names["norm"])  # frozen scales excluded
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for v in parts.values() for _, p in v} == trainable


def test_a_category_without_its_group_goes_to_rest_or_is_refused():
    model = build_model("airnet", TINY)
    r = record("optim.groups.norm=null", "optim.groups.rest={lr: 5.0}")
    assert len(split_parameters(model, r.optim.groups)["rest"]) == 6
    with pytest.raises(BenchError, match=r"no group takes .*norm.*optim.groups.rest"):
        split_parameters(model, record("optim.groups.norm=null").optim.groups)


def test_group_schedule_decay_and_optimisers():
    model = build_model("airnet", TINY)
    r = record()
    steps_per_epoch, total = 10, 80
    opt = build_optimizer(model, r.optim, total_steps=total, steps_per_epoch=steps_per_epoch, bf16=False)
    assert isinstance(opt, GroupScheduled) and isinstance(opt.optimizer, Chain)
    kinds = [type(o) for o in opt.optimizer.optimizers]
    assert kinds == [torch.optim.SGD, Muon]  # fp32 Muon where bf16 is not native
    g = {group["name"]: group for group in opt.optimizer.param_groups}
    assert g["head"]["weight_decay"] == pytest.approx(0.004 / 1340)  # the records' scaling: wd / lr
    assert g["filters"]["ns_steps"] == 3 and g["filters"]["renormalize"] is True
    for step in (0, 15, 30, 40, 79):
        opt.step_count = step
        opt.apply()
        g = {group["name"]: group for group in opt.optimizer.param_groups}
        assert g["head"]["lr"] == pytest.approx(1340 * (1 - step / total))
        assert g["filters"]["lr"] == pytest.approx(0.24 * (1 - step / total))
        assert g["whiten"]["lr"] == pytest.approx(106 * max(0.0, 1 - step / 30))  # stops after 3 epochs
        assert g["filters"]["momentum"] == 0.6 and g["norm"]["momentum"] == 0.85


def test_groups_survive_warm_ups_state_restore():
    """warm_up puts the optimiser state back with load_state_dict, which replaces torch's group dicts: the
    schedule must still reach the live groups afterwards."""
    model = build_model("airnet", TINY)
    opt = build_optimizer(model, record().optim, total_steps=10, steps_per_epoch=5)
    opt.optimizer.load_state_dict(opt.optimizer.state_dict())
    opt.step_count = 5
    opt.apply()
    assert {g["name"]: g["lr"] for g in opt.optimizer.param_groups}["head"] == pytest.approx(670)


def test_muon_renormalises_filters_before_the_step():
    layer = nn.Linear(12, 6, bias=False)
    with torch.no_grad():
        layer.weight.mul_(7.0)
    chain = Chain([Muon([{"params": [layer.weight], "lr": 1e-9, "renormalize": True}])])
    layer.weight.grad = torch.randn_like(layer.weight)
    chain.step()
    assert float(layer.weight.detach().norm()) == pytest.approx(math.sqrt(6), rel=1e-5)


def test_recipe_rules_for_groups_flip_tta_and_compile():
    base = recipes.load_raw(recipes.resolve_path("record/airbench94_muon"))

    def problems(**changes):
        data = {**base, **changes}
        with pytest.raises(BenchError) as e:
            from_dict(data, "x.yaml")
        return str(e.value)

    assert "optimizer muon_sgd needs at least one group" in problems(optim={**base["optim"], "groups": {}})
    assert "ignores groups" in problems(optim={**base["optim"], "optimizer": "sgd"})
    assert "data.augment.flip: 1 is not allowed" in problems(data={**base["data"], "augment": {"flip": 1}})
    assert "target.tta: 'mirror' is not allowed" in problems(target={**base["target"], "tta": "mirror"})
    assert "compile: 'fast' is not allowed" in problems(compile="fast")
    ok = from_dict({**base, "compile": "max-autotune"}, "x.yaml")
    assert ok.compile == "max-autotune" and ok.data.augment.flip == "alternating"


# ---------------------------------------------------------------- Muon


def test_orthogonalize_is_close_to_the_svds_polar_factor():
    g = torch.randn(64, 200, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    u, s, vt = torch.linalg.svd(g, full_matrices=False)
    for steps, low, high in ((5, 0.65, 1.25), (3, 0.3, 1.25)):
        o = orthogonalize(g, steps, dtype=torch.float64)
        inner = u.T @ o @ vt.T  # diagonal when o shares g's singular vectors
        off = inner - torch.diag(torch.diagonal(inner))
        assert off.abs().max() < 1e-8
        sv = torch.diagonal(inner)
        assert low < float(sv.min()) and float(sv.max()) < high  # singular values pushed towards 1
    tall = orthogonalize(g.T, 5, dtype=torch.float64)
    torch.testing.assert_close(tall, orthogonalize(g, 5, dtype=torch.float64).T)


def test_muon_is_airbench_momentum_then_newton_schulz():
    """Three steps against the update written out in airbench94_muon's convention (buf = m buf + g,
    u = g + m buf): Newton-Schulz divides by the norm, so the (1 - m) factor of torch's average drops out."""
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(8, 18))
    expected = w.detach().clone()
    opt = Muon([w], lr=0.1, momentum=0.6, nesterov=True, weight_decay=0.0, ns_steps=3)
    buf = torch.zeros_like(expected)
    for _ in range(3):
        grad = torch.randn_like(expected)
        w.grad = grad.clone()
        opt.step()
        buf = 0.6 * buf + grad
        expected -= 0.1 * orthogonalize(grad + 0.6 * buf, 3)
    torch.testing.assert_close(w.detach(), expected, atol=1e-5, rtol=0)


def test_muon_matches_torch_optim_muon():
    """The fp32 implementation against torch.optim.Muon (bf16 Newton-Schulz): same update within bf16 rounding,
    decay and the lr adjustment for tall matrices included."""
    native = getattr(torch.optim, "Muon", None)
    assert native is not None, "torch >= 2.9 ships torch.optim.Muon"
    torch.manual_seed(0)
    shapes = [(16, 48), (40, 12)]  # wide, and tall (lr x sqrt(40/12))
    ours = [nn.Parameter(torch.randn(s)) for s in shapes]
    theirs = [nn.Parameter(p.detach().clone()) for p in ours]
    kw = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1, ns_steps=5)
    a, b = Muon(ours, **kw), native(theirs, **kw)
    for _ in range(3):
        for p, q in zip(ours, theirs):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        a.step()
        b.step()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p.detach(), q.detach(), atol=0.02, rtol=0)


def test_make_muon_picks_torch_where_bf16_is_native():
    w = nn.Parameter(torch.randn(4, 6))
    assert isinstance(make_muon([{"params": [w]}], bf16=False)[0], Muon)
    assert isinstance(make_muon([{"params": [w]}], bf16=True)[0], torch.optim.Muon)
    conv = nn.Parameter(torch.randn(4, 3, 3, 3))  # torch.optim.Muon takes 2-D parameters only
    assert isinstance(make_muon([{"params": [conv]}], bf16=True)[0], Muon)


# ---------------------------------------------------------------- lookahead


class Nudge:
    """A stand-in optimiser: every step adds 1 to the weight."""

    def __init__(self, p):
        self.p, self.param_groups = p, [{"params": [p]}]

    def step(self):
        with torch.no_grad():
            self.p.add_(1.0)

    def zero_grad(self, set_to_none=True):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_lookahead_pulls_the_model_towards_its_slow_weights():
    layer = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    la = Lookahead(Nudge(layer.weight), layer, every=2, decay=0.5, power=1.0, total_steps=8)
    seen = []
    for _ in range(8):
        la.step()
        seen.append(float(layer.weight.detach()))
    # by hand: slow starts at 0; at step t (even) d = 0.5**2 * t/8 and slow = d*slow + (1-d)*fast; fast = slow
    slow, fast, want = 0.0, 0.0, []
    for t in range(1, 9):
        fast += 1
        if t % 2 == 0:
            d = 0.25 * t / 8
            slow = d * slow + (1 - d) * fast
            fast = slow
        want.append(fast)
    assert seen == pytest.approx(want)
    state = la.state_dict()
    la.step()
    la.load_state_dict(state)
    assert la.count == 8 and la.slow[0].item() == pytest.approx(slow)


def test_lookahead_ends_on_the_slow_weights():
    layer = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    la = Lookahead(Nudge(layer.weight), layer, every=4, decay=0.5, power=1.0, total_steps=6)
    for _ in range(6):
        la.step()
    # step 4: slow = d*0 + (1-d)*4 with d = 0.5**4 * 4/6; steps 5-6 move the model, the last step undoes them
    d = 0.0625 * 4 / 6
    assert float(layer.weight.detach()) == pytest.approx((1 - d) * 4)


# ---------------------------------------------------------------- test-time augmentation


class Probe(nn.Module):
    """Logits that depend on position and orientation: column sums of channel 0, left to right."""

    def forward(self, x):
        return x[:, 0].sum(dim=1)[:, :10]


def test_tta_views_and_weights():
    torch.manual_seed(0)
    x = torch.randn(3, 3, 12, 12)
    model = Probe()
    torch.testing.assert_close(predict(model, x, "none"), model(x))
    flip = 0.5 * model(x) + 0.5 * model(x.flip(-1))
    torch.testing.assert_close(predict(model, x, "flip"), flip)
    # the window moved one pixel up-left / down-right over the reflection-padded image, built by index
    idx = torch.tensor([1] + list(range(12)) + [10])  # reflect padding of 12 pixels by 1
    padded = x[:, :, idx][:, :, :, idx]
    up_left, down_right = padded[:, :, :12, :12], padded[:, :, 2:, 2:]
    mirrored = [0.5 * model(v) + 0.5 * model(v.flip(-1)) for v in (up_left, down_right)]
    torch.testing.assert_close(predict(model, x, "flip_translate"), 0.5 * flip + 0.25 * (mirrored[0] + mirrored[1]))


def test_tta_keeps_channels_last_and_evaluate_uses_it():
    torch.manual_seed(0)
    model = build_model("airnet", TINY).to(memory_format=torch.channels_last).eval()
    layouts = []
    model.register_forward_pre_hook(lambda m, a: layouts.append(a[0].is_contiguous(memory_format=torch.channels_last)))
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        predict(model, x, "flip_translate")
    assert layouts == [True] * 6  # six views, each laid out as the batch was
    y = predict(model, x, "flip_translate").argmax(1).detach()
    assert evaluate(model, [(x, y)], "cpu", "fp32", tta="flip_translate") == 1.0
    assert evaluate(model, [(x, y)], "cpu", "fp32") == float((model(x).argmax(1) == y).float().mean())


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.parametrize("cpu_bf16, muon", [("native", "torch.optim.Muon (bf16 Newton-Schulz)"),
                                            ("emulated", "bench Muon (fp32 Newton-Schulz)")])
def test_record_variant_runs_end_to_end(tmp_path, jpeg_archive, monkeypatch, cpu_bf16, muon):
    """record/lookahead through bench run (tiny): whitening in init, Muon + SGD groups, lookahead, alternating
    flips and flip_translate TTA in the evaluations, one row and a bundle. The CPU's bf16 is decided here, not
    read from the machine: each branch of the Muon choice runs on every machine."""
    from bench.run.runner import run_recipe
    from bench.system.cpu import BF16_ENV as CPU_BF16_ENV

    monkeypatch.setenv(CPU_BF16_ENV, cpu_bf16)

    r = recipes.load("record/lookahead", [
        "data.train_subset=600", "data.test_subset=200", "data.batch_size=150", "data.eval_batch_size=200",
        "optim.epochs=2", "target.eval_every=1", "target.value=0.99", "precision=fp32", "model.params.widths=[8,16,16]",
        "model.params.whiten_images=300", "optim.lookahead.every=2"])
    said = []
    rows, bundle = run_recipe(r, data=str(jpeg_archive), results_path=tmp_path / "r.csv",
                              reports_dir=tmp_path / "reports", say=said.append)
    row = rows[0]
    assert row["status"] == "missed" and row["epochs"] == 2 and 0 < row["best_acc"] < 1
    assert any(f"muon: {muon}" in s for s in said), said
    assert (bundle / "recipe.yaml").is_file()
