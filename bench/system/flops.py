"""Model FLOPs per image and model FLOPs utilisation (MFU).

Counts come from torch.utils.flop_counter.FlopCounterMode, which counts only the
matmul/conv family (mm, addmm, bmm, convolution and their backward, SDPA) with the
2*M*N*K convention: one multiply-add is 2 FLOPs. Norms, activations, pooling and the
optimizer step are not counted, which is the usual "model FLOPs" for MFU.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.core.errors import BenchError

_BATCH = 2  # >1 so BatchNorm-style layers accept it; counts are linear in batch size

_V100 = "NVIDIA Tesla V100 datasheet (SXM2)"
_A100 = "NVIDIA A100 Tensor Core GPU datasheet (dense, SXM and PCIe alike)"
_H100 = "NVIDIA H100 Tensor Core GPU Architecture whitepaper, H100 SXM5 (dense, not sparsity)"
_H200 = "NVIDIA H200 datasheet, H200 SXM (sparsity figures halved to dense)"

# Dense peak FLOP/s, all from NVIDIA datasheets/whitepapers named in `source`.
# "fp32" is the non-tensor-core rate; "tf32" the tensor-core rate with TF32 enabled.
# Rows are tried in order; `exclude` keeps a variant with different clocks (PCIe, NVL)
# from inheriting the SXM numbers.
PEAK_FLOPS = [
    {"match": "V100-SXM2", "exclude": (), "source": _V100,
     "peak": {"fp16": 125e12, "fp32": 15.7e12}},
    {"match": "A100", "exclude": (), "source": _A100,
     "peak": {"fp16": 312e12, "bf16": 312e12, "tf32": 156e12, "fp32": 19.5e12}},
    {"match": "H100", "exclude": ("PCIE", "NVL"), "source": _H100,
     "peak": {"fp16": 989.4e12, "bf16": 989.4e12, "tf32": 494.7e12, "fp32": 66.9e12}},
    {"match": "H200", "exclude": ("NVL",), "source": _H200,
     "peak": {"fp16": 989.5e12, "bf16": 989.5e12, "tf32": 494.5e12, "fp32": 67e12}},
]
PRECISIONS = ("fp16", "bf16", "tf32", "fp32")


def peak_flops(device_name: str, precision: str) -> tuple[float | None, str]:
    """(dense peak FLOP/s, where the number comes from) or (None, why there is none)."""
    if precision not in PRECISIONS:
        raise BenchError(f"precision {precision!r} unknown; use one of {PRECISIONS}")
    name = (device_name or "").upper()
    if not name or name.startswith("CPU") or "CPU" in name.split():
        return None, "no peak table for CPUs"
    for row in PEAK_FLOPS:
        if row["match"] in name and not any(x in name for x in row["exclude"]):
            value = row["peak"].get(precision)
            if value is None:
                return None, f"{row['match']} has no {precision} tensor-core rate in {row['source']}"
            return value, row["source"]
    known = ", ".join(r["match"] for r in PEAK_FLOPS)
    return None, f"no peak table entry for {device_name!r} (known: {known})"


def mfu(flops_per_image_train: float, images_per_s: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: achieved model FLOP/s over the datasheet peak."""
    if peak is None or peak <= 0 or flops_per_image_train is None or images_per_s is None:
        return None
    return flops_per_image_train * images_per_s / peak


def flops_per_image(model: torch.nn.Module, input_shape=(3, 32, 32), device="cpu") -> dict:
    """Counted FLOPs per image for a forward pass and for a training step (forward + backward).

    Both passes run in eval mode: the counted ops are the same in train mode, and eval
    mode leaves BatchNorm running statistics untouched. The backward is measured, not
    assumed to be 2x forward (the first layer needs no input gradient, so it is less).
    The model's mode and any existing .grad are restored.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise BenchError("flops_per_image: the model has no trainable parameters, so no train step")
    was_training = model.training
    saved_grads = [p.grad for p in params]
    dtype = params[0].dtype
    x = torch.randn(_BATCH, *input_shape, device=device, dtype=dtype)
    try:
        model.eval()
        with FlopCounterMode(display=False) as fwd:
            with torch.no_grad():
                model(x)
        for p in params:
            p.grad = None
        with FlopCounterMode(display=False) as step_fwd:
            out = model(x)
        # The loss is a plain sum: any scalar loss seeds the same counted backward ops.
        loss = out.float().sum()
        with FlopCounterMode(display=False) as bwd:
            loss.backward()
    finally:
        for p, g in zip(params, saved_grads):
            p.grad = g
        model.train(was_training)
    forward = fwd.get_total_flops() / _BATCH
    backward = bwd.get_total_flops() / _BATCH
    train_step = step_fwd.get_total_flops() / _BATCH + backward
    return {"forward": forward, "backward": backward, "train_step": train_step,
            "train_to_forward": train_step / forward if forward else None}
