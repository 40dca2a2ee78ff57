"""The WGAN's pieces, each against what it must equal: model shapes, the seed's critic schedule counted,
clipping bounds, the gradient penalty against torch.autograd on a known function, the judge scores against
closed forms and torchmetrics, and the two failure checks firing on generators built to trip them."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from bench.core.errors import BenchError
from bench.models import build_model, model_params
from bench.models.layers import Scale
from bench.train import gan, quality


# ------------------------------------------------------------------------------------------ models

@pytest.mark.parametrize("size,convs", [(32, 4), (64, 5)])
def test_dcgan_shapes_at_32_and_64(size, convs):
    net = build_model("dcgan", {"image_size": size, "nz": 8, "ngf": 4, "ndf": 4, "n_extra_layers": 1})
    z = net.generator.noise(3)
    x = net.generator(z)
    assert x.shape == (3, 3, size, size)
    assert x.abs().max() <= 1  # tanh: the range real images are scaled to
    assert net.critic(x).shape == (3,)  # one score per image
    # critic: first stride-2 conv, one extra, stride-2 convs down to 4x4, the final 4x4 conv
    n = sum(isinstance(m, nn.Conv2d) for m in net.critic.modules())
    assert n == convs + 1
    grids = []
    h = x
    for layer in net.critic.features:
        h = layer(h)
        grids.append(h.shape[-1])
    assert grids[-2] == 4 and grids[-1] == 1


def test_dcgan_seed_widths():
    """DCGAN_G(32, 100, 3, 64, 1): 100 -> 256 (4x4) -> 128 -> 64 (+1 extra) -> 3; the critic mirrors it."""
    net = build_model("dcgan", {})
    deconvs = [m for m in net.generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels) for m in deconvs] == [(100, 256), (256, 128), (128, 64), (64, 64), (64, 3)]
    convs = [m for m in net.critic.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(3, 64), (64, 64), (64, 128), (128, 256), (256, 1)]
    assert model_params("dcgan")["image_size"] == 32


@pytest.mark.parametrize("params", [{"image_size": 48}, {"image_size": 8}, {"critic_norm": "spectral"},
                                    {"block_order": "bn_first"}, {"init": "xavier"}])
def test_dcgan_bad_params_name_the_field(params):
    with pytest.raises(BenchError, match=f"model.params.{next(iter(params))}"):
        build_model("dcgan", params)


def _weights(net, kind):
    return [m for m in net.modules() if isinstance(m, kind)]


def _cat(tensors):
    return torch.cat([t.detach().flatten() for t in tensors])


def test_dcgan_inits_are_what_each_reference_started_from():
    """dcgan: the paper's weights_init; torch: the modules as torch builds them; torch_0.3: the lesson's torch,
    where a transposed conv's bound came from its in_channels and BatchNorm weights were U(0, 1)."""
    small = {"ngf": 8, "ndf": 8}
    torch.manual_seed(0)
    paper = build_model("dcgan", {**small, "init": "dcgan"})
    convs = _cat(m.weight for m in _weights(paper, (nn.Conv2d, nn.ConvTranspose2d)))
    bns = _cat(m.weight for m in _weights(paper, nn.BatchNorm2d))
    assert abs(float(convs.std()) - 0.02) < 0.001 and abs(float(convs.mean())) < 0.001
    assert abs(float(bns.mean()) - 1) < 0.01 and 0.01 < float(bns.std()) < 0.03
    assert float(_cat(m.bias for m in _weights(paper, nn.BatchNorm2d)).abs().max()) == 0

    now = build_model("dcgan", {**small, "init": "torch"})
    assert bool((_cat(m.weight for m in _weights(now, nn.BatchNorm2d)) == 1).all())
    first = _cat([now.generator.features[0][0].weight])  # ConvTranspose2d(100, 32, 4): today's bound uses out=32
    assert 0.9 / math.sqrt(32 * 16) < float(first.abs().max()) <= 1 / math.sqrt(32 * 16)

    old = build_model("dcgan", {**small, "init": "torch_0.3"})
    for m in _weights(old, (nn.Conv2d, nn.ConvTranspose2d)):
        bound = 1 / math.sqrt(m.in_channels * m.kernel_size[0] * m.kernel_size[1])
        assert 0.9 * bound < float(m.weight.detach().abs().max()) <= bound
    bn = _cat(m.weight for m in _weights(old, nn.BatchNorm2d))
    assert float(bn.min()) >= 0 and float(bn.max()) < 1 and 0.4 < float(bn.mean()) < 0.6


# ------------------------------------------------------------------------------------------ training rules

def test_critic_schedule_is_the_seeds_100_25_500_rule():
    iters = [gan.critic_iters(k) for k in range(1501)]
    hundred = [k for k, n in enumerate(iters) if n == 100]
    assert hundred == list(range(25)) + [500, 1000, 1500]
    assert set(iters) == {5, 100}
    assert sum(iters[:1000]) == 25 * 100 + 100 + (1000 - 26) * 5


def test_the_lessons_schedule_has_no_25_iteration_warm_phase():
    """train(1, False): `first and gen_iterations < 25` is off, so 100 critic steps only at 0, 500, 1000."""
    iters = [gan.critic_iters(k, warm_gen_iters=0) for k in range(1001)]
    assert [k for k, n in enumerate(iters) if n == 100] == [0, 500, 1000] and set(iters) == {5, 100}


def test_phase2_restarts_the_schedule_and_rebuilds_the_optimisers():
    """The lesson's second train(1, False) at lr 1e-5: new RMSprop optimisers (empty state) and a count from
    0 again, so the first round of phase 2 has 100 critic steps and the next burst is 500 later."""
    s = gan.GanSettings(warm_gen_iters=0, phase2_lr=1e-5, phase2_at=7)
    assert [s.critic_iters(k) for k in range(9)] == [100] + [5] * 6 + [100, 5]
    assert s.critic_iters(507) == 100 and s.critic_iters(500) == 5

    torch.manual_seed(0)
    net = build_model("dcgan", {"image_size": 16, "nz": 4, "ngf": 4, "ndf": 4, "n_extra_layers": 0})
    step = gan.GanStep(net, gan.GanSettings(gen_batch=4, phase2_lr=1e-5, phase2_at=2), "cpu", "fp32")
    sched = gan.ConstantLr(step)
    real = [torch.rand(4, 3, 16, 16) * 2 - 1]
    first = step.opt_d
    for _ in range(2):
        step(real)
    assert step.opt_d is first and sched.current().lr == 1e-4 and len(first.state) > 0
    step(real)  # generator iteration 2: phase 2 begins
    assert step.opt_d is not first and step.opt_g.param_groups[0]["lr"] == step.opt_d.param_groups[0]["lr"] == 1e-5
    assert sched.current().lr == 1e-5 and sched.optimizer is step.opt_g
    assert all(st["step"] == 1 for st in step.opt_d.state.values())  # one update since the rebuild: fresh state


def test_gan_settings_resolve_the_generator_batch_from_the_recipe():
    from bench import recipe as recipes

    lesson = recipes.load("wgan")
    s = gan.GanSettings.of(lesson.gan, lesson.data.batch_size)
    assert (lesson.data.batch_size, s.gen_batch) == (128, 64)  # the lesson: loader bs=128, create_noise(bs=64)
    paper = recipes.load("wgan_paper")
    assert gan.GanSettings.of(paper.gan, paper.data.batch_size).gen_batch == 64 == paper.data.batch_size
    with pytest.raises(BenchError, match="gan.phase2_lr.*both set"):
        recipes.load("wgan", ["gan.phase2_lr=null"])


def test_gan_batches_hand_out_the_schedule_and_cycle_the_data():
    class Loader:
        def __init__(self):
            self.passes = 0

        def epoch(self, e):
            self.passes += 1
            return iter([(torch.full((2, 3, 4, 4), float(e)), None) for _ in range(7)])

    loader = Loader()
    b = gan.GanBatches(loader, gan.GanSettings(), gen_iters_per_epoch=30)
    counts = [len(item) for e in range(2) for item in b.epoch(e)]
    assert counts == [100] * 25 + [5] * 35  # the 26th generator iteration is the first with 5
    assert b.gen_iterations == 60 and loader.passes == math.ceil(sum(counts) / 7)


def test_training_counts_and_clipping_bounds():
    torch.manual_seed(0)
    net = build_model("dcgan", {"image_size": 16, "nz": 4, "ngf": 4, "ndf": 4, "n_extra_layers": 0})
    with torch.no_grad():
        for p in net.critic.parameters():
            p.mul_(100)  # far outside the box before training
    step = gan.GanStep(net, gan.GanSettings(clip=0.01), "cpu", "fp32")
    reals = [torch.rand(4, 3, 16, 16) * 2 - 1 for _ in range(3)]
    loss, n = step(reals)
    assert n == 12 and step.critic_updates == 3 and step.generator_updates == 1 and torch.isfinite(loss)
    step([reals[0]])  # clamps before its critic update: what the last update did is clamped next time
    clip = gan.GanSettings().clip
    before = max(float(p.detach().abs().max()) for p in net.critic.parameters())
    gan.clip_(net.critic, clip)
    assert max(float(p.detach().abs().max()) for p in net.critic.parameters()) <= clip < before
    assert isinstance(step.opt_d, torch.optim.RMSprop) and step.opt_d.param_groups[0]["lr"] == 1e-4


def test_generator_step_draws_a_full_batch_after_a_tail_batch():
    """A round that ends on the 16-image tail of a data pass still trains the generator on a full batch of
    noise (both references: the paper's main.py resizes its noise to opt.batchSize "in case our last batch
    was the tail batch"; the lesson draws create_noise(bs)). The critic's fakes match its real batch."""
    torch.manual_seed(0)
    net = build_model("dcgan", {"image_size": 16, "nz": 4, "ngf": 4, "ndf": 4, "n_extra_layers": 0})
    step = gan.GanStep(net, gan.GanSettings(), "cpu", "fp32")  # the default generator batch: 64
    drawn = []
    net.generator.register_forward_hook(lambda m, args, out: drawn.append(int(out.shape[0])))
    step([torch.rand(64, 3, 16, 16) * 2 - 1, torch.rand(16, 3, 16, 16) * 2 - 1])
    assert drawn == [64, 16, 64]  # critic fakes for the full batch, for the tail, then the generator's batch


def test_generator_step_leaves_critic_untouched():
    torch.manual_seed(0)
    net = build_model("dcgan", {"image_size": 16, "nz": 4, "ngf": 4, "ndf": 4, "n_extra_layers": 0})
    step = gan.GanStep(net, gan.GanSettings(), "cpu", "fp32")
    before = [p.clone() for p in net.critic.parameters()]
    step.generator_step(4, torch.zeros(4, 3, 16, 16))
    assert all(torch.equal(a, b) for a, b in zip(before, net.critic.parameters()))
    assert all(p.requires_grad for p in net.critic.parameters())


def test_gradient_penalty_against_autograd_on_a_known_function():
    """critic(x) = sum(w * x^2) has gradient 2 w x: the penalty is known in closed form."""
    w = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))

    def critic(x):
        return (w * x ** 2).flatten(1).sum(1)

    g = torch.Generator().manual_seed(2)
    real, fake = torch.randn(5, 3, 4, 4, generator=g), torch.randn(5, 3, 4, 4, generator=g)
    eps = torch.rand(5, 1, 1, 1, generator=g)
    x_hat = eps * real + (1 - eps) * fake
    want = (((2 * w * x_hat).flatten(1).norm(dim=1) - 1) ** 2).mean()
    got = gan.gradient_penalty(critic, real, fake, eps)
    assert torch.allclose(got, want, rtol=1e-5)
    # and against torch.autograd.functional on the same points, image by image
    per = [torch.autograd.functional.jacobian(lambda v: critic(v[None])[0], x_hat[i]) for i in range(5)]
    assert torch.allclose(got, torch.stack([(j.norm() - 1) ** 2 for j in per]).mean(), rtol=1e-5)
    # it is differentiable: the critic's update needs its gradient
    wp = w.clone().requires_grad_(True)
    pen = gan.gradient_penalty(lambda x: (wp * x ** 2).flatten(1).sum(1), real, fake, eps)
    pen.backward()
    assert wp.grad is not None and wp.grad.abs().sum() > 0


def test_gp_recipe_uses_adam_with_the_papers_betas():
    net = build_model("dcgan", {"image_size": 16, "nz": 4, "ngf": 4, "ndf": 4, "n_extra_layers": 0,
                                "critic_norm": "layer"})
    step = gan.GanStep(net, gan.GanSettings(loss="gp", optimizer="adam", betas=(0.0, 0.9)), "cpu", "fp32")
    assert isinstance(step.opt_d, torch.optim.Adam) and step.opt_d.param_groups[0]["betas"] == (0.0, 0.9)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.critic.modules())
    loss, _ = step([torch.rand(4, 3, 16, 16) * 2 - 1])
    assert torch.isfinite(loss)


# ------------------------------------------------------------------------------------------ judge scores

def colour_judge() -> quality.Judge:
    """A judge whose features are each image's mean colour (after the CIFAR normalisation) and whose logits
    are a fixed linear map of them: every score then has a closed form."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 10, bias=False), Scale(1.0)).eval()
    return quality.Judge(net, {"classes": [str(i) for i in range(10)]}, None)


def colour_images(colours: torch.Tensor, size: int = 8) -> torch.Tensor:
    """One flat image per row of `colours` (in [-1, 1])."""
    return colours[:, :, None, None].expand(-1, -1, size, size).contiguous()


def test_judge_scores_match_closed_forms_and_torchmetrics():
    judge = colour_judge()
    g = torch.Generator().manual_seed(3)
    real = colour_images(torch.rand(400, 3, generator=g) * 1.6 - 0.8)
    fake = colour_images(torch.rand(300, 3, generator=g) * 0.8 - 0.2)
    fr, lr = judge.embed(real)
    ff, lf = judge.embed(fake)
    std = torch.tensor(quality.CIFAR_STD)
    want_feats = ((colour := fake[:, :, 0, 0]) + 1) / 2 - torch.tensor(quality.CIFAR_MEAN)
    assert torch.allclose(ff, want_feats / std, atol=1e-5)  # the features are what we think
    scores = quality.JudgeScores(judge, real, kid_size=200)(fake)
    assert scores["fd_judge"] == pytest.approx(quality.frechet(fr, ff), rel=1e-4)
    assert scores["is_judge"] == pytest.approx(quality.inception_score(lf), rel=1e-5)
    # the same figures from torchmetrics used directly, with the judge's view as feature network
    from torchmetrics.image.kid import KernelInceptionDistance

    with pytest.warns(UserWarning, match="save all extracted features"):
        kid = KernelInceptionDistance(feature=judge.view("features"), subsets=10, subset_size=200, normalize=True)
    kid.update(quality.to01(real), real=True)
    kid.update(quality.to01(fake), real=False)
    torch.manual_seed(0)
    assert scores["kid_judge"] == pytest.approx(float(kid.compute()[0]), rel=1e-6)
    assert scores["fd_judge"] > 0.1 and quality.JudgeScores(judge, real)(real)["fd_judge"] == pytest.approx(0, abs=1e-6)
    del colour


def test_frechet_of_shifted_gaussians_is_the_squared_shift():
    g = torch.Generator().manual_seed(4)
    a = torch.randn(5000, 4, generator=g, dtype=torch.float64)
    assert quality.frechet(a, a + torch.tensor([3.0, 0, 0, 4.0], dtype=torch.float64)) == pytest.approx(25.0, rel=1e-6)


def test_inception_score_bounds():
    onehot = torch.eye(10).repeat(20, 1) * 50  # confident and evenly spread: the maximum, 10
    assert quality.inception_score(onehot) == pytest.approx(10.0, rel=1e-3)
    assert quality.inception_score(torch.zeros(100, 10)) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------ the seed's worries

def _reference(judge, images):
    feats, _ = judge.embed(images)
    return feats, quality.spread(feats)


def test_mode_collapse_fires_on_a_generator_that_always_returns_one_image():
    judge = colour_judge()
    g = torch.Generator().manual_seed(5)
    real = colour_images(torch.rand(500, 3, generator=g) * 2 - 1)
    _, real_spread = _reference(judge, real)
    one = colour_images(torch.tensor([[0.3, -0.2, 0.5]]).repeat(200, 1))
    feats, logits = judge.embed(one)
    res = quality.mode_collapse(logits, feats, real_spread)
    assert res["collapsed"] and res["top_class_share"] == 1.0 and res["class_entropy"] == 0.0
    assert res["spread_ratio"] == pytest.approx(0.0, abs=1e-9)
    feats, logits = judge.embed(real[:200])
    res = quality.mode_collapse(logits, feats, real_spread)
    assert not res["collapsed"] and res["spread_ratio"] > 0.5


def test_memorisation_fires_on_a_generator_that_returns_training_images():
    judge = colour_judge()
    g = torch.Generator().manual_seed(6)
    train = colour_images(torch.rand(2000, 3, generator=g) * 2 - 1)
    test = colour_images(torch.rand(300, 3, generator=g) * 2 - 1)
    train_f, test_f = judge.embed(train)[0], judge.embed(test)[0]
    copies = judge.embed(train[torch.randperm(2000, generator=g)[:300]])[0]
    res = quality.memorisation(copies, train_f, test_f)
    assert res["memorised"] and res["nn_ratio"] == pytest.approx(0.0, abs=1e-9) and res["copies"] == 300
    fresh = judge.embed(colour_images(torch.rand(300, 3, generator=g) * 2 - 1))[0]
    res = quality.memorisation(fresh, train_f, test_f)
    assert not res["memorised"] and 0.5 < res["nn_ratio"] < 2


def test_fit_ends_a_collapsed_run_as_failed_with_the_reason():
    """fit's extras['failure'] path, driven by scripted evaluations."""
    from bench.core.clock import Clock
    from bench.train.loop import fit

    class Batches:
        def __len__(self):
            return 2

        def epoch(self, e):
            return iter([0, 1])

    t = iter(range(100, 1000))
    clock = Clock(now=lambda: float(next(t)), since_process_start=0.0)
    clock.ready()
    evals = iter([(50.0, {"metric": "fd_judge"}), (40.0, {"failure": "mode collapse: all one class"})])
    events = []
    opt = gan.ConstantLr(type("S", (), {"optimizer": None, "lr": 1e-4})())
    res = fit(nn.Linear(1, 1), opt, Batches(), lambda: next(evals), epochs=5, eval_every=1, target=10.0,
              clock=clock, device_type="cpu", precision="fp32", step=lambda b: (torch.tensor(0.5), 4),
              target_mode="min", eval_key="eval_score", on_event=lambda k, m: events.append((k, m)))
    assert res.status == "failed" and "mode collapse" in res.reason and res.epochs == 2
    assert res.best_acc == 50.0  # the collapsed evaluation does not count as best
    assert [m["value"] for k, m in events if k == "eval_score"] == [50.0, 40.0]
    assert res.records[0].metric_value == 50.0 and res.records[0].test_acc is None


# ------------------------------------------------------------------------------------------ images and recipes

def test_image_folder_of_any_sizes_is_resized_on_load(tmp_path):
    from PIL import Image

    from bench.data.gan_images import load_gan_images

    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(80, 60), (50, 70), (64, 64), (100, 40)] * 5):
        sub = tmp_path / "bedrooms" / f"part{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(sub / f"{i:03d}.jpg")
    for size in (32, 64):
        ds = load_gan_images(str(tmp_path / "bedrooms"), size, data_dir=tmp_path, base_dir=None)
        assert ds.train.images.shape == (18, size, size, 3) and ds.test.images.shape == (2, size, size, 3)
        assert ds.identity.name.endswith(f"@{size}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match="found 0 image"):
        load_gan_images(str(tmp_path / "empty"), 32, data_dir=tmp_path, base_dir=None)


def test_wgan_follows_the_lesson_and_wgan_paper_the_papers_code():
    """Each value recipes/wgan.yaml and recipes/wgan_paper.yaml take from their one source (see the comments
    there for file and line), so that an edit which mixes them again shows up here."""
    from bench import recipe as recipes

    lesson, paper = recipes.load("wgan"), recipes.load("wgan_paper")
    common = {"nz": 100, "ngf": 64, "ndf": 64, "critic_norm": "batch"}
    assert lesson.model.params == {**common, "image_size": 32, "n_extra_layers": 1, "block_order": "conv_act_norm",
                                   "init": "torch_0.3"}
    assert paper.model.params == {**common, "image_size": 32, "n_extra_layers": 0, "block_order": "conv_norm_act",
                                  "init": "dcgan"}
    g, p = lesson.gan, paper.gan
    assert (g.loss, g.clip, g.n_critic, g.warm_critic, g.every, g.optimizer) == (p.loss, p.clip, p.n_critic,
                                                                               p.warm_critic, p.every, p.optimizer)
    assert (g.loss, g.clip, g.n_critic, g.warm_critic, g.every, g.optimizer) == ("clip", 0.01, 5, 100, 500, "rmsprop")
    assert (lesson.data.batch_size, g.gen_batch, g.lr, g.warm_gen_iters, g.phase2_lr, g.phase2_at) == (
        128, 64, 1e-4, 0, 1e-5, 3640)
    assert (paper.data.batch_size, p.gen_batch, p.lr, p.warm_gen_iters, p.phase2_lr, p.phase2_at) == (
        64, None, 5e-5, 25, None, 0)
    # the lesson's first train(1, False): 18,957 critic batches, 100 at every 500th round, cut at the pass's end
    k = i = 0
    while i < 18957:
        i += min(100 if k % 500 == 0 else 5, 18957 - i)
        k += 1
    assert k == g.phase2_at
    for r in (lesson, paper):  # the harness's settings are the same, so the two race on equal terms
        assert (r.data.source, r.target, r.gan.eval_samples, r.gan.gen_iters_per_epoch, r.optim.epochs) == (
            lesson.data.source, lesson.target, 5000, 100, 500)


@pytest.mark.parametrize("name", ["wgan_cpu", "wgan_gp_cpu"])
def test_measured_cpu_recipes_still_run_what_was_measured(name):
    """wgan_cpu's target was calibrated, and wgan_gp_cpu raced it, with the values in their committed bundles
    (results/gan/reports/). wgan now follows the lesson; these recipes pin what they ran, so each resolved
    value equals the bundle's, the later fields at their as-before values (the provenance text aside)."""
    import yaml

    from bench import recipe as recipes
    from bench.core.paths import REPO_ROOT
    from bench.recipe.schema import ADDED_FIELDS

    bundle, = (REPO_ROOT / "results" / "gan" / "reports").glob(f"{name}-*")
    ran = yaml.safe_load((bundle / "recipe.yaml").read_text())
    now = recipes.load(name).to_dict()
    for path, before in ADDED_FIELDS.items():  # fields added after the bundle was written: at their as-before value
        held, have = ran, now
        for key in path[:-1]:
            held, have = held.get(key, {}), have[key]
        if path[0] != "provenance" and path[-1] not in held:
            assert have.pop(path[-1]) == before, path
    params = now["model"]["params"]
    assert params.pop("block_order", "conv_act_norm") == "conv_act_norm" and params.pop("init") == "dcgan"
    for key in ("model", "data", "optim", "gan", "target", "precision", "memory_format", "warmup_steps", "seed"):
        assert now[key] == ran[key], key


def test_later_gan_fields_leave_every_committed_bundle_hash_as_written():
    """gan.gen_batch / phase2_lr / phase2_at came after bundles were written, classifiers' included (their gan
    section at its defaults): each committed recipe.yaml must still hash to the hash in its header."""
    import yaml

    from bench.core.paths import REPO_ROOT
    from bench.recipe.schema import resolved_hash

    texts = [p.read_text() for p in sorted((REPO_ROOT / "results").rglob("recipe.yaml"))]
    texts = [t for t in texts if t.startswith("# resolved recipe ")]  # bundles' own, header: "..., hash H"
    kinds = {line for t in texts for line in t.splitlines() if line.startswith("kind: ")}
    assert len(texts) >= 3 and kinds == {"kind: gan", "kind: classifier"}
    for text in texts:
        assert text.splitlines()[0].split()[-1] == resolved_hash(yaml.safe_load(text)), text.splitlines()[0]


def test_gan_recipes_validate_and_bad_ones_name_the_fix():
    from bench import recipe as recipes

    r = recipes.load("wgan_cpu")
    assert r.kind == "gan" and r.target.metric == "fd_judge" and r.target.mode == "min"
    assert recipes.load("wgan").gan.n_critic == 5 and recipes.load("wgan_gp").gan.loss == "gp"
    with pytest.raises(BenchError, match="target.mode.*'min'"):
        recipes.load("wgan_cpu", ["target.mode=max"])
    with pytest.raises(BenchError, match="optim.lr.*not used by kind: gan"):
        recipes.load("wgan_cpu", ["optim.lr=0.1"])
    with pytest.raises(BenchError, match="target.metric.*test_acc"):
        recipes.load("wgan_cpu", ["target.metric=test_acc", "target.mode=max", "target.value=0.5"])
    with pytest.raises(BenchError, match="set kind: gan"):
        recipes.load("cpu_quick", ["model.arch=dcgan", "model.params={}"])
    assert recipes.load("wgan_cpu", ["target.value=250"]).target.value == 250  # scores are not fractions


# ------------------------------------------------------------------------------------------ standard FID / IS

@pytest.mark.slow
def test_standard_fid_and_is_from_a_user_supplied_weights_file(tmp_path, monkeypatch):
    """No Inception weights can be downloaded here, so the test makes a weights file of the right shape
    (torch-fidelity's network, random weights) and goes through the one injection point, gan.inception's
    path: torchmetrics builds torch-fidelity's InceptionV3 from that file, and nothing is fetched."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with monkeypatch.context() as m:  # build the network once without its download, to save its shape
        m.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
        m.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    weights = tmp_path / "pt_inception.pth"
    torch.save(net.state_dict(), weights)

    def no_download(*a, **k):
        raise AssertionError("tried to download Inception weights")

    monkeypatch.setattr(fe, "load_state_dict_from_url", no_download)
    metrics = quality.inception_metrics(weights)
    g = torch.Generator().manual_seed(7)
    real, fake = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1, torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    scores = quality.standard_scores(metrics, real, fake)
    assert math.isfinite(scores["fid"]) and scores["fid"] > 0 and scores["is"] >= 1.0
    with pytest.raises(BenchError, match="gan.inception"):
        quality.inception_metrics(tmp_path / "missing.pth")


def test_score_targets_run_the_other_way_for_min_metrics():
    from bench.core.stats import summarize
    from bench.core.targets import best, reaches
    from bench.train.loop import TargetTracker

    assert reaches(240.0, 250.0, "min") and not reaches(260.0, 250.0, "min") and reaches(0.95, 0.94)
    assert best([300.0, 240.0, 260.0], "min") == 240.0 and best([0.5, 0.7], "max") == 0.7
    t = TargetTracker(250.0, mode="min")
    assert not t.observe(300.0, 1.0) and t.observe(249.0, 2.0) and t.best == 249.0 and t.reached_at == 2.0
    s = summarize([10.0, 12.0, 11.0], [240.0, 238.0, 242.0], [True] * 3, 250.0, mode="min", what="fd_judge")
    assert s["ttest"]["p"] < 0.05 and s["ttest"]["all_above_target"] is True
    assert s["ttest"]["hypothesis"].startswith("H0: mean fd_judge >= target; H1: mean fd_judge < target")
