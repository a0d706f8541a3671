"""Tests of gandistill.augment: shapes, determinism, gradients, Siamese draws, geometry."""

from __future__ import annotations

import pytest
import torch

from gandistill.augment import (
    DIFF_AUGMENT_OPS,
    DSA_FAMILIES,
    DSA_STRATEGY,
    DSAParams,
    check_policy,
    cutout,
    dc_augment,
    diff_augment,
    dsa_augment,
    translate,
)
from gandistill.data import DatasetInfo
from gandistill.fit import _augmenter

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


def _distinct(images: torch.Tensor) -> int:
    """Number of distinct images in a batch."""
    return len({tuple(image.flatten().tolist()) for image in images})


def _same_image(n: int, shape: tuple[int, ...] = (3, 16, 16)) -> torch.Tensor:
    """A batch of n copies of one asymmetric image."""
    return _images((1, *shape), seed=11).expand(n, *shape).clone()


@pytest.mark.parametrize("strategy", [*DSA_FAMILIES, DSA_STRATEGY])
def test_dsa_siamese_shares_one_transformation(strategy: str) -> None:
    same = _same_image(5)
    for seed in range(4):
        out = dsa_augment(same, strategy, seed=seed)
        assert _distinct(out) == 1
    pair = _images((2, 3, 16, 16), seed=12)
    for seed in range(4):
        together = dsa_augment(pair, strategy, seed=seed)
        for i in range(2):
            alone = dsa_augment(pair[i : i + 1], strategy, seed=seed)
            torch.testing.assert_close(together[i : i + 1], alone, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_dsa_siamese_draws_follow_the_fixed_stream(seed: int) -> None:
    """The Siamese path reads one value per parameter from ``seed``, in a fixed order."""
    x = _images((3, 3, 16, 16), seed=13)
    p = DSAParams()

    gen = _gen(seed)
    b = torch.rand(1, generator=gen, dtype=torch.float64) - 0.5
    s = torch.rand(1, generator=gen, dtype=torch.float64) * p.saturation
    c = torch.rand(1, generator=gen, dtype=torch.float64) * 2 * p.contrast + 1 - p.contrast
    want = x + b.float()
    want = (want - want.mean(1, keepdim=True)) * s.float() + want.mean(1, keepdim=True)
    want = (want - want.mean((1, 2, 3), keepdim=True)) * c.float() + want.mean(
        (1, 2, 3), keepdim=True
    )
    torch.testing.assert_close(dsa_augment(x, "color", seed, single=False), want)

    gen = _gen(seed)
    dy, dx = torch.randint(-2, 3, (1,), generator=gen), torch.randint(-2, 3, (1,), generator=gen)
    want = translate(x, dy.expand(3), dx.expand(3))
    assert torch.equal(dsa_augment(x, "crop", seed, single=False), want)

    gen = _gen(seed)
    cy, cx = torch.randint(0, 17, (1,), generator=gen), torch.randint(0, 17, (1,), generator=gen)
    want = cutout(x, (cy - 4).expand(3), (cx - 4).expand(3), (8, 8))
    assert torch.equal(dsa_augment(x, "cutout", seed, single=False), want)

    flipped = bool(torch.rand(1, generator=_gen(seed)) < 0.5)
    want = x.flip(3) if flipped else x
    assert torch.equal(dsa_augment(x, "flip", seed, single=False), want)


@pytest.mark.parametrize("family", DSA_FAMILIES)
def test_dsa_per_image_draws_differ_across_the_batch(family: str) -> None:
    n = 16
    same = _same_image(n)
    out = dsa_augment(same, family, seed=3, siamese=False)
    assert out.shape == same.shape and out.dtype == same.dtype
    if family == "flip":
        flipped = [torch.equal(image, same[0].flip(2)) for image in out]
        assert all(f or torch.equal(image, same[0]) for f, image in zip(flipped, out, strict=True))
        assert set(flipped) == {True, False}
    elif family in ("color", "scale", "rotate"):  # continuous draws: all images differ
        assert _distinct(out) == n
    else:  # crop and cutout draw from a few hundred positions
        assert _distinct(out) > n // 2


def test_dsa_per_image_draws_share_the_family() -> None:
    """In single mode the family is drawn once per call, even with per-image parameters."""
    same = _same_image(8)
    plain = {tuple(same[0].flatten().tolist()), tuple(same[0].flip(2).flatten().tolist())}
    chose_flip = []
    for seed in range(16):
        out = dsa_augment(same, "color_flip", seed=seed, siamese=False)
        is_flip = [tuple(image.flatten().tolist()) in plain for image in out]
        assert len(set(is_flip)) == 1
        chose_flip.append(is_flip[0])
    assert set(chose_flip) == {True, False}


@pytest.mark.parametrize("strategy", [*DSA_FAMILIES, DSA_STRATEGY])
@pytest.mark.parametrize("siamese", [True, False])
def test_dsa_modes_are_differentiable_and_seeded(strategy: str, siamese: bool) -> None:
    x = _images((6, 3, 16, 16)).requires_grad_(True)
    for single in (True, False):
        a = dsa_augment(x, strategy, seed=9, single=single, siamese=siamese)
        assert torch.equal(a, dsa_augment(x, strategy, seed=9, single=single, siamese=siamese))
    x.grad = None
    _assert_grad_flows(x, dsa_augment(x, strategy, seed=9, siamese=siamese))


@pytest.mark.parametrize("channels", [1, 3])
def test_evaluation_dsa_augmenter_draws_per_image(channels: int) -> None:
    info = DatasetInfo("toy", 2, channels, 16, (0.5,) * channels, (0.5,) * channels, ("a", "b"))
    same = _same_image(16, (channels, 16, 16))
    augment = _augmenter("dsa", info, seed=4)
    for _ in range(6):  # one fresh seed per batch, whichever family it picks
        assert _distinct(augment(same)) > 1
    first = _augmenter("dsa", info, seed=4)(same)
    assert torch.equal(first, _augmenter("dsa", info, seed=4)(same))


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
    for family in DSA_FAMILIES:
        per_image = dsa_augment(x, family, seed=3, siamese=False)
        on_cuda = dsa_augment(x.cuda(), family, seed=3, siamese=False).cpu()
        torch.testing.assert_close(on_cuda, per_image)
    torch.testing.assert_close(dc_augment(x.cuda(), _gen(0)).cpu(), dc_augment(x, _gen(0)))
