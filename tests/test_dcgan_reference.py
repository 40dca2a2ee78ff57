"""bench.models.dcgan against independent transcriptions of the two references it claims to follow.

Written out plainly here, without bench.models code:
- the WGAN paper's code, martinarjovsky/WassersteinGAN models/dcgan.py at f7a01e8: DCGAN_D and DCGAN_G, whose
  blocks run conv -> BatchNorm -> activation and whose generator makes its extra layers with nn.Conv2d;
- the lesson, fastai/fastai courses/dl2/wgan.ipynb at f9c3d22: ConvBlock / DeconvBlock (conv -> activation ->
  BatchNorm, padding ks // 2 // stride, the critic's first block without BatchNorm), DCGAN_D and DCGAN_G.
Our model is built with the matching `block_order`; its weights are randomised, copied into the transcription
tensor by tensor in order (each shape checked, each of ours used exactly once), and both are run on the same
inputs in train mode (batch statistics) and eval mode (running statistics). Small widths (8) keep it fast.
"""
from collections import Counter

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from bench.models import build_model

SIZE, NZ, WIDTH, EXTRA, NC = 32, 16, 8, 1, 3


# ------------------------------------------------------------------ the paper's models/dcgan.py, transcribed

class PaperCritic(nn.Module):
    def __init__(self, isize, nc, ndf, n_extra_layers):
        super().__init__()
        layers = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        csize, cndf = isize / 2, ndf
        for _ in range(n_extra_layers):
            layers += [nn.Conv2d(cndf, cndf, 3, 1, 1, bias=False), nn.BatchNorm2d(cndf),
                       nn.LeakyReLU(0.2, inplace=True)]
        while csize > 4:
            layers += [nn.Conv2d(cndf, cndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(cndf * 2),
                       nn.LeakyReLU(0.2, inplace=True)]
            cndf, csize = cndf * 2, csize / 2
        layers.append(nn.Conv2d(cndf, 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x).mean(0).view(1)  # the mean over the batch: one number


class PaperGenerator(nn.Module):
    def __init__(self, isize, nz, nc, ngf, n_extra_layers):
        super().__init__()
        cngf, tisize = ngf // 2, 4
        while tisize != isize:
            cngf, tisize = cngf * 2, tisize * 2
        layers = [nn.ConvTranspose2d(nz, cngf, 4, 1, 0, bias=False), nn.BatchNorm2d(cngf), nn.ReLU(True)]
        csize = 4
        while csize < isize // 2:
            layers += [nn.ConvTranspose2d(cngf, cngf // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(cngf // 2),
                       nn.ReLU(True)]
            cngf, csize = cngf // 2, csize * 2
        for _ in range(n_extra_layers):  # a plain convolution here, where the lesson transposes one
            layers += [nn.Conv2d(cngf, cngf, 3, 1, 1, bias=False), nn.BatchNorm2d(cngf), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(cngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z):
        return self.main(z)


# ------------------------------------------------------------------ the lesson's notebook, transcribed

class LessonConvBlock(nn.Module):
    def __init__(self, ni, no, ks, stride, bn=True):
        super().__init__()
        self.conv = nn.Conv2d(ni, no, ks, stride, padding=ks // 2 // stride, bias=False)
        self.bn = nn.BatchNorm2d(no) if bn else None
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        x = self.relu(self.conv(x))
        return self.bn(x) if self.bn else x


class LessonDeconvBlock(nn.Module):
    def __init__(self, ni, no, ks, stride, pad):
        super().__init__()
        self.conv = nn.ConvTranspose2d(ni, no, ks, stride, padding=pad, bias=False)
        self.bn = nn.BatchNorm2d(no)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.bn(self.relu(self.conv(x)))


class LessonCritic(nn.Module):
    def __init__(self, isize, nc, ndf, n_extra_layers):
        super().__init__()
        self.initial = LessonConvBlock(nc, ndf, 4, 2, bn=False)
        csize, cndf = isize / 2, ndf
        self.extra = nn.Sequential(*[LessonConvBlock(cndf, cndf, 3, 1) for _ in range(n_extra_layers)])
        pyramid = []
        while csize > 4:
            pyramid.append(LessonConvBlock(cndf, cndf * 2, 4, 2))
            cndf, csize = cndf * 2, csize / 2
        self.pyramid = nn.Sequential(*pyramid)
        self.final = nn.Conv2d(cndf, 1, 4, padding=0, bias=False)

    def forward(self, x):
        return self.final(self.pyramid(self.extra(self.initial(x)))).mean(0).view(1)


class LessonGenerator(nn.Module):
    def __init__(self, isize, nz, nc, ngf, n_extra_layers):
        super().__init__()
        cngf, tisize = ngf // 2, 4
        while tisize != isize:
            cngf, tisize = cngf * 2, tisize * 2
        layers = [LessonDeconvBlock(nz, cngf, 4, 1, 0)]
        csize = 4
        while csize < isize // 2:
            layers.append(LessonDeconvBlock(cngf, cngf // 2, 4, 2, 1))
            cngf, csize = cngf // 2, csize * 2
        layers += [LessonDeconvBlock(cngf, cngf, 3, 1, 1) for _ in range(n_extra_layers)]
        layers.append(nn.ConvTranspose2d(cngf, nc, 4, 2, 1, bias=False))
        self.features = nn.Sequential(*layers)

    def forward(self, z):
        return torch.tanh(self.features(z))


# ------------------------------------------------------------------ copying and comparing

REFERENCES = {  # name: (our block_order and init as the recipe has them, critic class, generator class)
    "paper": ("conv_norm_act", "dcgan", PaperCritic, PaperGenerator),
    "lesson": ("conv_act_norm", "torch_0.3", LessonCritic, LessonGenerator),
}


def _stateful(module):
    """The modules that hold tensors (convolutions and BatchNorms), in the order forward meets them."""
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d))]


def randomise(module, seed):
    """Away from any init's symmetries and small scales: weights of about unit gain, BatchNorm scales, shifts and
    running statistics all different."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in _stateful(module):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan ** 0.5)
            else:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(3)


def copy_into(ours, ref):
    """ref's tensors from ours, paired module by module in order. A paper generator's nn.Conv2d extra layer takes
    our nn.ConvTranspose2d(c, c, 3, 1, 1) kernel transposed and flipped: the same map. Each of our tensors
    is used exactly once and every one of ref's is set (load_state_dict strict)."""
    mine, theirs = _stateful(ours), _stateful(ref)
    assert len(mine) == len(theirs), (len(mine), len(theirs))
    names = {id(t): k for k, t in ours.state_dict(keep_vars=True).items()}
    ref_names = {id(m): k for k, m in ref.named_modules()}
    used, state = Counter(), {}
    for a, b in zip(mine, theirs):
        prefix = ref_names[id(b)]
        for key, theirs_t in b.state_dict(keep_vars=True).items():
            mine_t = a.state_dict(keep_vars=True)[key]
            value = mine_t.detach()
            if isinstance(a, nn.ConvTranspose2d) and type(b) is nn.Conv2d:
                assert a.stride == (1, 1) and a.in_channels == a.out_channels and a.kernel_size == (3, 3)
                value = value.transpose(0, 1).flip(2, 3)
            else:
                assert type(a) is type(b), (type(a), type(b))
            assert value.shape == theirs_t.shape, (prefix, key, value.shape, theirs_t.shape)
            state[f"{prefix}.{key}"] = value.clone()
            used[names[id(mine_t)]] += 1
    ref.load_state_dict(state, strict=True)
    assert set(used) == set(ours.state_dict()) and set(used.values()) == {1}


def pair(reference, seed=0):
    order, init, critic_cls, gen_cls = REFERENCES[reference]
    torch.manual_seed(seed)
    net = build_model("dcgan", {"image_size": SIZE, "nz": NZ, "ngf": WIDTH, "ndf": WIDTH, "n_extra_layers": EXTRA,
                                "block_order": order, "init": init})
    randomise(net, seed + 1)
    critic, generator = critic_cls(SIZE, NC, WIDTH, EXTRA), gen_cls(SIZE, NZ, NC, WIDTH, EXTRA)
    copy_into(net.critic, critic)
    copy_into(net.generator, generator)
    return net, critic, generator


def _mode(train, *modules):
    for m in modules:
        m.train(train)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("reference", sorted(REFERENCES))
def test_generator_matches_the_reference(reference, train):
    net, _, generator = pair(reference)
    _mode(train, net.generator, generator)
    z = torch.randn(6, NZ, 1, 1, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = generator(z), net.generator(z)
    assert got.shape == (6, NC, SIZE, SIZE)
    assert float(want.std()) > 0.01  # a live output, so the tolerance below means something
    assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("reference", sorted(REFERENCES))
def test_critic_matches_the_reference(reference, train):
    """In train mode the reference's number is its batch mean (BatchNorm sees the whole batch); in eval mode
    every image's score is checked, one image at a time through the reference."""
    net, critic, _ = pair(reference)
    _mode(train, net.critic, critic)
    x = torch.rand(6, NC, SIZE, SIZE, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        got = net.critic(x)
        assert got.shape == (6,)  # one score per image; the loss averages them
        if train:
            want = critic(x)
            assert_close(got.mean().view(1), want, rtol=1e-5, atol=1e-6)
        else:
            want = torch.cat([critic(x[i:i + 1]) for i in range(6)])
            assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert float(want.abs().max()) > 0.005  # a live output, so the tolerance means something


def test_the_two_references_are_different_networks():
    """The block order is the one architectural difference at equal n_extra_layers: our paper-order generator's
    weights, loaded into the lesson's network (same tensors, same order), give other images, so the tests
    above can tell the two apart."""
    net, _, _ = pair("paper")
    lesson = LessonGenerator(SIZE, NZ, NC, WIDTH, EXTRA)
    lesson.load_state_dict(dict(zip(lesson.state_dict(), net.generator.state_dict().values())), strict=True)
    z = torch.randn(4, NZ, 1, 1, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert (lesson.eval()(z) - net.generator.eval()(z)).abs().max() > 1e-2
