"""Test-time augmentation (recipe `target.tta`), as airbench evaluates: logits averaged over views of each
test image, weighted as the training augmentation would draw them.

    none            the image
    flip            1/2 image + 1/2 its mirror
    flip_translate  1/2 flip(image) + 1/4 flip(window moved 1 px up-left) + 1/4 flip(window moved 1 px
                    down-right), the windows cut from the image padded by reflection (six forward passes)

Views keep the batch's memory format, so a tuned or compiled model sees the layout it was warmed up with.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("none", "flip", "flip_translate")


def _like(view: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
        else torch.contiguous_format
    return view.contiguous(memory_format=fmt)


def _mirrored(model, x: torch.Tensor) -> torch.Tensor:
    return 0.5 * model(x) + 0.5 * model(_like(x.flip(-1), x))


def predict(model, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Logits of (B, C, H, W) inputs under the TTA mode."""
    if tta == "none":
        return model(x)
    logits = _mirrored(model, x)
    if tta == "flip":
        return logits
    if tta != "flip_translate":
        raise ValueError(f"unknown tta mode {tta!r}; use one of {', '.join(MODES)}")
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = (_like(padded[..., i:i + h, i:i + w], x) for i in (0, 2))
    return 0.5 * logits + 0.25 * (_mirrored(model, up_left) + _mirrored(model, down_right))
