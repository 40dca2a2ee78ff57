"""Every rule on the built-in models' parameter values, in one place that imports no torch.

A builder calls `require(arch, values)` before it builds anything, and `bench validate` (through
bench.models.param_problems) calls `problems(arch, values)` on the recipe's model.params merged over the
builder's defaults: the same rule, the same words, so a value `bench validate` accepts is one the builder
takes, and a refused one is refused before any data is loaded. Each message names `model.params.<field>`,
the bad value and what is allowed. All of an arch's problems are reported at once; a rule that depends on
two fields (darknet's funnel against nf) runs only when both are individually fine.
"""
from __future__ import annotations

import math
from typing import Callable

from bench.core.errors import BenchError

# The choices each builder offers; its module imports them from here.
WRN_FORMS = ("entry", "entry_date", "fastai07")
AIRNET_ACTIVATIONS = ("gelu", "silu")
DCGAN_NORMS = ("batch", "layer", "none")
DCGAN_BLOCK_ORDERS = ("conv_act_norm", "conv_norm_act")  # the lesson's, the paper's
DCGAN_INITS = ("dcgan", "torch", "torch_0.3")


# ---------------------------------------------------------------- one value


def _fail(name: str, value, allowed: str):
    raise BenchError(f"model.params.{name} must be {allowed}, got {value!r}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_int(name: str, value, minimum: int = 1) -> int:
    if not _is_int(value) or value < minimum:
        _fail(name, value, f"an integer >= {minimum}")
    return value


def check_number(name: str, value, ok: Callable[[float], bool] = lambda v: True,
                 allowed: str = "a number") -> float:
    if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value) or not ok(value):
        _fail(name, value, allowed)
    return float(value)


def check_int_list(name: str, value, minimum: int = 1, min_len: int = 1, length: int | None = None,
                   odd: bool = False) -> list[int]:
    allowed = (f"a list of {length if length else f'at least {min_len}'} "
               f"{'odd ' if odd else ''}integers >= {minimum}")
    if not isinstance(value, (list, tuple)) or len(value) < min_len or (length and len(value) != length):
        _fail(name, value, allowed)
    if not all(_is_int(v) and v >= minimum and (not odd or v % 2 == 1) for v in value):
        _fail(name, value, allowed)
    return list(value)


def check_choice(name: str, value, choices: tuple[str, ...], allowed: str | None = None) -> str:
    # `in` on a tuple of strings: an unhashable value (a list) is simply not one of them
    if not isinstance(value, str) or value not in choices:
        _fail(name, value, allowed or f"one of {', '.join(choices)}")
    return value


class _Problems(list):
    """Runs checks, keeping each one's message instead of stopping at the first."""

    def __init__(self):
        super().__init__()
        self.bad: set[str] = set()

    def check(self, name: str, check: Callable, *args, **kwargs) -> bool:
        try:
            check(name, *args, **kwargs)
            return True
        except BenchError as exc:
            self.append(str(exc))
            self.bad.add(name)
            return False

    def ok(self, *names: str) -> bool:
        return not self.bad.intersection(names)


# ---------------------------------------------------------------- one rule list per architecture


def _wrn_depth(name: str, depth) -> None:
    if not _is_int(depth) or depth < 10 or (depth - 4) % 6:
        _fail(name, depth, "6*N+4 for a whole N >= 1 (10, 16, 22, 28, ...)")


def wrn(p: dict) -> list[str]:
    out = _Problems()
    out.check("form", check_choice, p["form"], WRN_FORMS)
    out.check("depth", _wrn_depth, p["depth"])
    out.check("width", check_int, p["width"])
    out.check("start_nf", check_int, p["start_nf"])
    out.check("drop", check_number, p["drop"], lambda v: 0 <= v < 1, "a number in [0, 1)")
    if p["branch_scale"] is not None:
        out.check("branch_scale", check_number, p["branch_scale"], allowed="a number, or null for the form's own")
    return out


def darknet(p: dict) -> list[str]:
    out = _Problems()
    out.check("layers", check_int_list, p["layers"], minimum=0)
    out.check("nf", check_int, p["nf"])
    out.check("funnel", check_number, p["funnel"], lambda v: v > 0, "a number > 0")
    out.check("kernel_sizes", check_int_list, p["kernel_sizes"], min_len=2, odd=True)
    nf, funnel = p["nf"], p["funnel"]
    if out.ok("nf", "funnel") and int(2 * nf * funnel) < 1:  # the narrowest residual layer works on 2*nf channels
        out.append(f"model.params.funnel must be at least {1 / (2 * nf):g} with nf={nf} "
                   f"(inner width int(2*nf*funnel) would be 0), got {funnel!r}")
    return out


def resnet9(p: dict) -> list[str]:
    out = _Problems()
    out.check("widths", check_int_list, p["widths"], length=4)
    out.check("scale", check_number, p["scale"], lambda v: v > 0, "a number > 0")
    return out


def airnet(p: dict) -> list[str]:
    out = _Problems()
    out.check("widths", check_int_list, p["widths"])
    out.check("whiten_kernel", check_int, p["whiten_kernel"])
    out.check("act", check_choice, p["act"], AIRNET_ACTIVATIONS)
    out.check("bn_momentum", check_number, p["bn_momentum"], lambda v: 0 <= v < 1, "a number in [0, 1)")
    out.check("bn_eps", check_number, p["bn_eps"], lambda v: v > 0, "a number > 0")
    if p["head_scale"] is not None:
        out.check("head_scale", check_number, p["head_scale"], lambda v: v > 0, "a number > 0 or null (1/last width)")
    out.check("whiten_images", check_int, p["whiten_images"])
    return out


def _power_of_two(name: str, value) -> None:
    check_int(name, value, 16)
    if value & (value - 1):
        _fail(name, value, "a power of two >= 16 (e.g. 32 for CIFAR-10, 64 for LSUN bedrooms)")


def dcgan(p: dict) -> list[str]:
    out = _Problems()
    out.check("image_size", _power_of_two, p["image_size"])
    out.check("nz", check_int, p["nz"])
    out.check("ngf", check_int, p["ngf"], 2)
    out.check("ndf", check_int, p["ndf"])
    out.check("n_extra_layers", check_int, p["n_extra_layers"], 0)
    out.check("critic_norm", check_choice, p["critic_norm"], DCGAN_NORMS, " | ".join(DCGAN_NORMS))
    out.check("block_order", check_choice, p["block_order"], DCGAN_BLOCK_ORDERS,
              "conv_act_norm (the lesson's blocks) | conv_norm_act (the WGAN paper's code)")
    out.check("init", check_choice, p["init"], DCGAN_INITS,
              "dcgan (the paper's N(0, 0.02) / N(1, 0.02)) | torch (the installed torch's defaults) "
              "| torch_0.3 (torch 0.3.1's defaults, the lesson's)")
    return out


# arch name (bench.models' registry) -> its rules
RULES: dict[str, Callable[[dict], list[str]]] = {
    "wrn": wrn, "darknet": darknet, "resnet9": resnet9, "airnet": airnet, "dcgan": dcgan,
}


def problems(arch: str, values: dict) -> list[str]:
    """Every value problem of `arch`'s parameters; `values` holds every parameter (defaults filled in)."""
    return list(RULES[arch](values))


def require(arch: str, values: dict) -> None:
    """What a builder calls first: the first problem, raised as the BenchError `bench validate` would print."""
    found = problems(arch, values)
    if found:
        raise BenchError(found[0])
