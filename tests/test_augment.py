"""Tests of gandistill.augment: shapes, determinism, gradients, Siamese draws, geometry."""

from __future__ import annotations

import pytest
import torch

from gandistill.augment import (
    DIFF_AUGMENT_OPS,
    DSA_FAMILIES,
    DSA_STRATEGY,
    check_policy,
    cutout,
    dc_augment,
    diff_augment,
    dsa_augment,
    translate,
)

SHAPES = [(4, 1, 28, 28), (4, 3, 32, 32)]
FULL_POLICY = ",".join(DIFF_AUGMENT_OPS)


def _images(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Images in the GAN range [-1, 1]."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_grad_flows(x: torch.Tensor, out: torch.Tensor) -> None:
    (out * torch.linspace(0.5, 1.5, out.numel()).view_as(out)).sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


# ---- DiffAugment ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_diff_augment_keeps_shape_and_dtype(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = _images(shape).to(dtype)
    out = diff_augment(x, FULL_POLICY, _gen(0))
    assert out.shape == x.shape and out.dtype == dtype


def test_diff_augment_empty_policy_is_identity() -> None:
    x = _images(SHAPES[0])
    assert torch.equal(diff_augment(x, "", _gen(0)), x)


def test_diff_augment_is_deterministic_in_the_generator() -> None:
    x = _images(SHAPES[1])
    a = diff_augment(x, FULL_POLICY, _gen(1))
    b = diff_augment(x, FULL_POLICY, _gen(1))
    c = diff_augment(x, FULL_POLICY, _gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_diff_augment_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    diff_augment(_images(SHAPES[0]), FULL_POLICY, _gen(0))
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize("op", DIFF_AUGMENT_OPS)
def test_diff_augment_gradients_reach_input(op: str) -> None:
    x = _images(SHAPES[1]).requires_grad_(True)
    _assert_grad_flows(x, diff_augment(x, op, _gen(0)))


@pytest.mark.parametrize("op", ["translation", "cutout"])
def test_geometric_ops_move_content_within_range(op: str) -> None:
    x = _images((8, 1, 28, 28))
    out = diff_augment(x, op, _gen(3))
    assert (x - out).abs().sum() > 0
    assert out.min() >= -1 and out.max() <= 1


def test_translate_matches_roll_with_zero_border() -> None:
    x = _images((2, 3, 8, 8))
    out = translate(x, torch.tensor([2, -1]), torch.tensor([-3, 0]))
    want0 = torch.roll(x[0], shifts=(2, -3), dims=(1, 2))
    want0[:, :2] = 0
    want0[:, :, -3:] = 0
    want1 = torch.roll(x[1], shifts=-1, dims=1)
    want1[:, -1:] = 0
    assert torch.equal(out[0], want0)
    assert torch.equal(out[1], want1)


def test_cutout_zeros_one_clipped_square_per_image() -> None:
    x = torch.ones(32, 1, 28, 28)
    side = 14
    out = diff_augment(x, "cutout", _gen(4))
    for image in out[:, 0]:
        rows = (image == 0).any(dim=1).nonzero().flatten()
        cols = (image == 0).any(dim=0).nonzero().flatten()
        height, width = len(rows), len(cols)
        assert int((image == 0).sum()) == height * width  # zeros fill their bounding box
        for n, idx in ((height, rows), (width, cols)):
            touches_border = idx[0] == 0 or idx[-1] == 27
            assert n == side or (touches_border and 0 < n <= side)


def test_cutout_inside_has_exact_area() -> None:
    x = torch.ones(2, 3, 32, 32)
    out = cutout(x, torch.tensor([8, 0]), torch.tensor([8, 16]), (16, 16))
    assert int((out[:, 0] == 0).sum(dim=(1, 2))[0]) == 16 * 16
    assert torch.equal(out[1, :, :16, 16:], torch.zeros(3, 16, 16))
    assert int((out == 0).sum()) == 2 * 3 * 16 * 16


def test_unknown_diff_augment_op_raises() -> None:
    msg = "unknown augmentation 'xyz' \\(known: color, translation, cutout\\)"
    with pytest.raises(ValueError, match=msg):
        check_policy("color,xyz")
    with pytest.raises(ValueError, match=msg):
        diff_augment(_images(SHAPES[0]), "xyz", _gen(0))
    check_policy("translation, cutout,color")


# ---- DSA --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_dsa_keeps_shape_and_is_seeded(shape: tuple[int, ...]) -> None:
    x = _images(shape)
    a = dsa_augment(x, DSA_STRATEGY, seed=5, single=False)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, dsa_augment(x, DSA_STRATEGY, seed=5, single=False))
    assert not torch.equal(a, dsa_augment(x, DSA_STRATEGY, seed=6, single=False))
    assert torch.equal(dsa_augment(x, "", seed=5), x)


@pytest.mark.parametrize("family", DSA_FAMILIES)
def test_dsa_gradients_reach_input(family: str) -> None:
    x = _images(SHAPES[1]).requires_grad_(True)
    _assert_grad_flows(x, dsa_augment(x, family, seed=0))


@pytest.mark.parametrize("strategy", [*DSA_FAMILIES, DSA_STRATEGY])
@pytest.mark.parametrize("single", [True, False])
def test_dsa_is_siamese_across_batches(strategy: str, single: bool) -> None:
    real = _images((6, 3, 16, 16))
    syn = real[:3].clone()
    out_real = dsa_augment(real, strategy, seed=7, single=single)
    out_syn = dsa_augment(syn, strategy, seed=7, single=single)
    torch.testing.assert_close(out_syn, out_real[:3])


def test_dsa_flip_is_all_or_nothing() -> None:
    x = _images((3, 1, 8, 8))
    outcomes = {torch.equal(dsa_augment(x, "flip", seed=s), x.flip(3)) for s in range(12)}
    assert outcomes == {True, False}
    for s in range(12):
        out = dsa_augment(x, "flip", seed=s)
        assert torch.equal(out, x) or torch.equal(out, x.flip(3))


def test_unknown_dsa_family_raises() -> None:
    with pytest.raises(ValueError, match="unknown DSA family 'noise' .*known: color, crop"):
        dsa_augment(_images(SHAPES[0]), "color_noise", seed=0)


# ---- DC protocol ------------------------------------------------------------------------------


@pytest.mark.parametrize("single", [True, False])
def test_dc_augment_shape_and_determinism(single: bool) -> None:
    x = _images((8, 1, 28, 28))
    a = dc_augment(x, _gen(0), single=single)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, dc_augment(x, _gen(0), single=single))
    assert not torch.equal(a, dc_augment(x, _gen(1), single=single))


def test_dc_augment_fills_with_the_image_mean() -> None:
    x = torch.full((4, 3, 16, 16), 0.3)
    x[1] = -0.7
    out = dc_augment(x, _gen(0), single=False)
    torch.testing.assert_close(out, x)


def test_augmentations_reject_a_non_generator() -> None:
    with pytest.raises(ValueError, match="CPU torch.Generator"):
        dc_augment(_images(SHAPES[0]), 0)  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_draws_on_cuda() -> None:
    x = _images(SHAPES[1])
    cpu = diff_augment(x, FULL_POLICY, _gen(0))
    torch.testing.assert_close(diff_augment(x.cuda(), FULL_POLICY, _gen(0)).cpu(), cpu)
    dsa = dsa_augment(x, DSA_STRATEGY, seed=3, single=False)
    torch.testing.assert_close(dsa_augment(x.cuda(), DSA_STRATEGY, 3, single=False).cpu(), dsa)
    torch.testing.assert_close(dc_augment(x.cuda(), _gen(0)).cpu(), dc_augment(x, _gen(0)))
