"""Augmentations shared by GAN training, distillation and evaluation.

Three families, each matching a published protocol:

- :func:`diff_augment` -- DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for
  Data-Efficient GAN Training"): colour, translation, cutout applied to real and fake images
  before the discriminator, one draw per image.
- :func:`dsa_augment` -- Differentiable Siamese Augmentation (Zhao & Bilen 2021, "Dataset
  Condensation with Differentiable Siamese Augmentation"), reproduced from a ``seed``: one draw
  per call in Siamese mode, so that a real and a synthetic batch receive the same
  transformation (distillation), or one draw per image (training evaluation networks).
- :func:`dc_augment` -- the evaluation-time augmentation of Dataset Condensation (Zhao et al.
  2021, "Dataset Condensation with Gradient Matching") for MNIST-like data.

All randomness comes from an explicit CPU ``torch.Generator``: parameters are drawn on the CPU
and then moved to the images' device, so results are identical on every device and a run can be
resumed by restoring the generator state. The global RNG is never touched. Every transformation
is built from differentiable tensor operations (indexing, masking, ``grid_sample``), so gradients
flow back to the input images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

DIFF_AUGMENT_OPS = ("color", "translation", "cutout")
DSA_FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")
DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"  # reference strategy; MNIST drops "flip"

TRANSLATION_FRAC = 0.125  # DiffAugment: shift up to 1/8 of the image size per axis
CUTOUT_FRAC = 0.5  # DiffAugment: cutout square of half the image size
DC_CROP_PAD = 4  # DC protocol: pad 4 px, crop back at a random offset
DC_SCALE = 0.2  # DC protocol: scale x U(0.8, 1.2) per axis
DC_ROTATE_DEG = 45.0  # DC protocol: rotation U(-45, 45) degrees


@dataclass(frozen=True)
class DSAParams:
    """Parameters of DSA (defaults of the reference implementation, Zhao & Bilen 2021)."""

    scale: float = 1.2  # per-axis scale factor drawn from U(1/scale, scale)
    rotate_deg: float = 15.0  # rotation angle drawn from U(-rotate_deg, rotate_deg)
    crop_frac: float = 0.125  # translation of up to round(crop_frac * size) px per axis
    cutout_frac: float = 0.5  # side of the cutout square as a fraction of the image side
    brightness: float = 1.0  # additive brightness U(-0.5, 0.5) * brightness
    saturation: float = 2.0  # saturation factor U(0, saturation) around the channel mean
    contrast: float = 0.5  # contrast factor U(1 - contrast, 1 + contrast) around the image mean


# ---------------------------------------------------------------------------------------------
# Random draws (CPU generator only) and deterministic building blocks


def _check_generator(generator: torch.Generator) -> None:
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError("augmentations need a CPU torch.Generator (draws are made on the CPU)")


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    """(n,) float64 draws from U(low, high) on the CPU."""
    return torch.rand(n, generator=generator, dtype=torch.float64) * (high - low) + low


def _randint(n: int, low: int, high: int, generator: torch.Generator) -> Tensor:
    """(n,) int64 draws from {low, ..., high - 1} on the CPU."""
    return torch.randint(low, high, (n,), generator=generator)


def _per_image(values: Tensor, x: Tensor) -> Tensor:
    """Reshape (B,) CPU values to (B, 1, 1, 1) on x's device and dtype, for broadcasting."""
    return values.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _half_up(size: int, frac: float) -> int:
    """``round(frac * size)`` with halves rounded up, as the reference code does."""
    return int(size * frac + 0.5)


def _adjust_color(x: Tensor, brightness: Tensor, saturation: Tensor, contrast: Tensor) -> Tensor:
    """Brightness shift, then saturation and contrast factors; each argument is (B, 1, 1, 1)."""
    x = x + brightness
    channel_mean = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
    x = (x - channel_mean) * saturation + channel_mean
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (x - image_mean) * contrast + image_mean


def translate(x: Tensor, shift_y: Tensor, shift_x: Tensor) -> Tensor:
    """Shift each image by whole pixels; the uncovered border is filled with zeros.

    Args:
        x: Images (B, C, H, W).
        shift_y: Integer shifts (B,) along H; positive moves the content down.
        shift_x: Integer shifts (B,) along W; positive moves the content right.

    Returns:
        The shifted images, same shape as ``x``; differentiable w.r.t. ``x``.
    """
    b, c, h, w = x.shape
    shift_y, shift_x = shift_y.long().cpu(), shift_x.long().cpu()
    pad = int(torch.cat([shift_y.abs(), shift_x.abs(), torch.zeros(1, dtype=torch.long)]).max())
    padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H + 2p, W + 2p)
    rows = torch.arange(h) + pad - shift_y[:, None]  # (B, H): source row of each output row
    cols = torch.arange(w) + pad - shift_x[:, None]  # (B, W)
    index = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).view(b, 1, h * w)
    index = index.to(x.device).expand(b, c, h * w)
    return padded.flatten(2).gather(2, index).view(b, c, h, w)


def cutout(x: Tensor, top: Tensor, left: Tensor, size: tuple[int, int]) -> Tensor:
    """Zero a (size_h, size_w) rectangle per image, clipped at the image border.

    Args:
        x: Images (B, C, H, W).
        top: Integer top rows (B,); may be negative or run past the border.
        left: Integer left columns (B,).
        size: Rectangle height and width in pixels.

    Returns:
        ``x`` times a 0/1 mask; differentiable w.r.t. ``x`` outside the rectangle.
    """
    _, _, h, w = x.shape
    top, left = top.to(x.device)[:, None], left.to(x.device)[:, None]
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (rows >= top) & (rows < top + size[0])  # (B, H)
    in_cols = (cols >= left) & (cols < left + size[1])  # (B, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (B, H, W)
    return x * keep[:, None].to(x.dtype)


def _draw_cutout(
    n: int, h: int, w: int, frac: float, generator: torch.Generator
) -> tuple[Tensor, Tensor, tuple[int, int]]:
    """Top-left corners and size of n cutout squares.

    Centres may sit on either edge (as in the DiffAugment reference), so clipping is symmetric.
    """
    size = (_half_up(h, frac), _half_up(w, frac))
    cy = _randint(n, 0, h + 1 - size[0] % 2, generator)
    cx = _randint(n, 0, w + 1 - size[1] % 2, generator)
    return cy - size[0] // 2, cx - size[1] // 2, size


def _warp(x: Tensor, inverse: Tensor, offset: Tensor, fill: Tensor | None = None) -> Tensor:
    """Bilinear resampling: output pixel p (pixels, about the centre) reads input at A p + t.

    ``inverse`` A is (B, 2, 2) and ``offset`` t is (B, 2), both in (x, y) order and pixel units,
    so rotations stay rigid on non-square images. Outside the input, ``fill`` (B, C, 1, 1) or
    zeros is read.
    """
    h, w = x.shape[-2:]
    half = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=torch.float64)  # pixels per unit
    linear = inverse.double() * half[None, None, :] / half[None, :, None]
    theta = torch.cat([linear, (offset.double() / half)[:, :, None]], dim=2)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=True)
    if fill is None:
        return F.grid_sample(x, grid, align_corners=True)
    return F.grid_sample(x - fill, grid, align_corners=True) + fill


def _rotation_scale(angle: Tensor, scale_y: Tensor, scale_x: Tensor) -> Tensor:
    """(B, 2, 2) sampling matrix: undo a rotation by ``angle`` (radians) after a scaling."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    inv_rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    return inv_rot / torch.stack([scale_x, scale_y], -1)[:, :, None]


# ---------------------------------------------------------------------------------------------
# DiffAugment


def _parse_policy(policy: str) -> list[str]:
    ops = [op.strip() for op in policy.split(",") if op.strip()]
    for op in ops:
        if op not in DIFF_AUGMENT_OPS:
            raise ValueError(f"unknown augmentation '{op}' (known: {', '.join(DIFF_AUGMENT_OPS)})")
    return ops


def check_policy(policy: str) -> None:
    """Raise ``ValueError`` if a comma-separated DiffAugment policy names an unknown op."""
    _parse_policy(policy)


def diff_augment(x: Tensor, policy: str, generator: torch.Generator) -> Tensor:
    """DiffAugment (Zhao et al. 2020) with an independent draw per image.

    Ops, applied in the order given: ``color`` = brightness + U(-0.5, 0.5), saturation
    x U(0, 2) around each pixel's channel mean, contrast x U(0.5, 1.5) around the image mean;
    ``translation`` = integer shift of up to round(0.125 * size) px per axis with zero padding;
    ``cutout`` = a zeroed square of half the image size at a random centre, clipped at the border.

    Args:
        x: Images (B, C, H, W), typically in [-1, 1].
        policy: Comma-separated ops from :data:`DIFF_AUGMENT_OPS`; ``""`` is the identity.
        generator: CPU generator supplying every random draw.

    Returns:
        Augmented images of the same shape, differentiable w.r.t. ``x``.

    Raises:
        ValueError: On an unknown op or a non-CPU generator.
    """
    ops = _parse_policy(policy)
    _check_generator(generator)
    b, _, h, w = x.shape
    for op in ops:
        if op == "color":
            brightness = _uniform(b, -0.5, 0.5, generator)
            saturation = _uniform(b, 0.0, 2.0, generator)
            contrast = _uniform(b, 0.5, 1.5, generator)
            x = _adjust_color(x, *(_per_image(v, x) for v in (brightness, saturation, contrast)))
        elif op == "translation":
            sy, sx = _half_up(h, TRANSLATION_FRAC), _half_up(w, TRANSLATION_FRAC)
            dy, dx = _randint(b, -sy, sy + 1, generator), _randint(b, -sx, sx + 1, generator)
            x = translate(x, dy, dx)
        else:  # cutout
            top, left, size = _draw_cutout(b, h, w, CUTOUT_FRAC, generator)
            x = cutout(x, top, left, size)
    return x


# ---------------------------------------------------------------------------------------------
# Differentiable Siamese Augmentation


def _parse_strategy(strategy: str) -> list[str]:
    families = [f for f in strategy.split("_") if f] if strategy not in ("", "none") else []
    for family in families:
        if family not in DSA_FAMILIES:
            raise ValueError(f"unknown DSA family '{family}' (known: {', '.join(DSA_FAMILIES)})")
    return families


def _dsa_family(
    x: Tensor, family: str, params: DSAParams, generator: torch.Generator, siamese: bool = True
) -> Tensor:
    """Apply one DSA family to a batch.

    With ``siamese=True`` ONE draw is made and broadcast to every image (the Siamese property);
    with ``siamese=False`` each image gets its own draw. Either way the parameters are read from
    ``generator`` in the order written below, one value each (Siamese) or B values each.
    """
    b, _, h, w = x.shape
    n = 1 if siamese else b  # number of independent draws of each parameter

    def batch(values: Tensor) -> Tensor:  # (n,) -> (B,); repeats a shared draw
        return values.expand(b)

    if family == "color":
        brightness = (_uniform(n, 0.0, 1.0, generator) - 0.5) * params.brightness
        saturation = _uniform(n, 0.0, params.saturation, generator)
        contrast = _uniform(n, 1.0 - params.contrast, 1.0 + params.contrast, generator)
        return _adjust_color(x, *(_per_image(v, x) for v in (brightness, saturation, contrast)))
    if family == "crop":
        sy, sx = _half_up(h, params.crop_frac), _half_up(w, params.crop_frac)
        dy, dx = _randint(n, -sy, sy + 1, generator), _randint(n, -sx, sx + 1, generator)
        return translate(x, batch(dy), batch(dx))
    if family == "cutout":
        top, left, size = _draw_cutout(n, h, w, params.cutout_frac, generator)
        return cutout(x, batch(top), batch(left), size)
    if family == "flip":
        flip = torch.rand(n, generator=generator) < 0.5
        if siamese:
            return x.flip(3) if bool(flip) else x
        return torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)
    if family == "scale":
        sy = _uniform(n, 1.0 / params.scale, params.scale, generator)
        sx = _uniform(n, 1.0 / params.scale, params.scale, generator)
        inverse = _rotation_scale(torch.zeros(n, dtype=torch.float64), sy, sx)
    else:  # rotate
        angle = _uniform(n, -params.rotate_deg, params.rotate_deg, generator) * math.pi / 180
        inverse = _rotation_scale(angle, torch.ones(n), torch.ones(n))
    return _warp(x, inverse.expand(b, 2, 2), torch.zeros(b, 2))


def dsa_augment(
    x: Tensor,
    strategy: str,
    seed: int,
    params: DSAParams = DSAParams(),
    single: bool = True,
    siamese: bool = True,
) -> Tensor:
    """Differentiable Siamese Augmentation (Zhao & Bilen 2021).

    Every draw is fully determined by ``seed``. Two modes, as in the reference implementation:

    - ``siamese=True`` (for distillation): the parameters are drawn ONCE per call and shared by
      every image in the batch, so two calls with the same seed (for example the real batch of a
      class and its synthetic images, of different sizes) get the same transformation, which
      gradient or distribution matching needs.
    - ``siamese=False`` (for training evaluation networks): each image gets its own random
      parameters (colour factors, crop shift, cutout position, flip, per-axis scale, angle).
      In ``single`` mode the family is still drawn once per call, as the reference does.

    Callers should derive a fresh seed per step (matching step or training batch) from their own
    generator.

    Families: ``color`` (brightness, saturation, contrast), ``crop`` (integer translation of up to
    round(crop_frac * size) px, zero fill), ``cutout`` (zeroed square), ``flip`` (horizontal,
    p = 0.5), ``scale`` (per-axis x U(1/scale, scale)) and ``rotate`` (U(-rotate_deg,
    rotate_deg)); the last two resample bilinearly with ``align_corners=True`` and zero fill.

    Args:
        x: Images (B, C, H, W).
        strategy: Underscore-separated families, e.g. :data:`DSA_STRATEGY`; ``""`` or ``"none"``
            is the identity.
        seed: Seed of the draw; equal seeds give equal transformations.
        params: Ranges of the random parameters.
        single: Draw ONE family uniformly from ``strategy`` (the reference's default mode);
            if False, apply all of them in the given order.
        siamese: Share one draw of the parameters across the batch (True) or draw them per
            image (False). The family choice of ``single`` mode is shared in both modes.

    Returns:
        Augmented images of the same shape, differentiable w.r.t. ``x``.

    Raises:
        ValueError: On an unknown family.
    """
    families = _parse_strategy(strategy)
    if not families:
        return x
    generator = torch.Generator().manual_seed(seed)
    if single:
        families = [families[int(_randint(1, 0, len(families), generator))]]
    for family in families:
        x = _dsa_family(x, family, params, generator, siamese)
    return x


# ---------------------------------------------------------------------------------------------
# DC evaluation protocol


def dc_augment(x: Tensor, generator: torch.Generator, single: bool = True) -> Tensor:
    """Evaluation-time augmentation of the DC protocol for MNIST-like data ("crop_scale_rotate").

    Per image: ``crop`` = pad 4 px and crop back at a random offset (an integer shift in
    [-3, 4] px per axis, the reference's offset range); ``scale`` = x U(0.8, 1.2) per axis about
    the centre; ``rotate`` = U(-45, 45) degrees about the centre. The reference code applies ONE
    of the three per image, chosen uniformly (``single=True``); ``single=False`` composes all
    three (crop, then scale, then rotate). Everything is one affine ``grid_sample`` per batch
    (bilinear), and pixels from outside the image read the image's per-channel mean.

    Args:
        x: Images (B, C, H, W).
        generator: CPU generator supplying every random draw.
        single: One transformation per image (reference behaviour) or all three.

    Returns:
        Augmented images of the same shape.

    Raises:
        ValueError: On a non-CPU generator.
    """
    _check_generator(generator)
    b = x.shape[0]
    choice = _randint(b, 0, 3, generator)  # drawn in both modes: the stream does not depend on it
    shift = (DC_CROP_PAD - _randint(2 * b, 0, 2 * DC_CROP_PAD, generator)).view(b, 2).double()
    scale = _uniform(2 * b, 1 - DC_SCALE, 1 + DC_SCALE, generator).view(b, 2)
    angle = _uniform(b, -DC_ROTATE_DEG, DC_ROTATE_DEG, generator) * math.pi / 180
    if single:
        shift = torch.where((choice == 0)[:, None], shift, torch.zeros_like(shift))
        scale = torch.where((choice == 1)[:, None], scale, torch.ones_like(scale))
        angle = torch.where(choice == 2, angle, torch.zeros_like(angle))
    # forward map p_out = R S (p_in + shift), so p_in = S^-1 R^-1 p_out - shift
    inverse = _rotation_scale(angle, scale[:, 0], scale[:, 1])
    return _warp(x, inverse, -shift.flip(1), fill=x.mean(dim=(2, 3), keepdim=True))
