import math

import pytest
import torch
from conftest import tiny_parts
from torch.nn import functional as F

from gandistill.evaluation.metrics import (
    COS_MEAN,
    COS_STD,
    IMAGE_BYTES_RATIO,
    IMAGE_RATIO,
    JS,
    KL,
    L2_MEAN,
    LATENT_BYTES_RATIO,
    LATENT_GENERATOR_BYTES_RATIO,
    class_proportion_js,
    compression,
    gradient_similarity,
    js_divergence,
    kl_divergence,
    pixel_mmd,
    sliced_wasserstein,
    softmax_divergences,
    tensor_bytes,
)
from gandistill.evaluation.nearest_real import (
    DCR_RATIO,
    DCR_SYN_MIN,
    NEAR_COPIES,
    NEAR_COPY_THRESHOLD,
    closest_record_distances,
    nearest_real_ssim,
    privacy_report,
    ssim,
)
from gandistill.models import ConvNet

LN2 = math.log(2.0)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def tiny_images():
    """Train and test images in [0, 1] (N, 1, 28, 28) with labels, 3 classes."""
    train, test, _ = tiny_parts(per_class=6, seed=0)
    other, _, _ = tiny_parts(per_class=6, seed=1)  # same classes, fresh noise
    return train.images.float() / 255, train.labels, other.images.float() / 255, other.labels


# --- distribution ------------------------------------------------------------------------------


def test_pixel_mmd_zero_for_identical_and_positive_for_shifted(tiny_images):
    x = tiny_images[0]
    assert pixel_mmd(x, x).abs() < 1e-6
    assert pixel_mmd(x, (x + 0.3).clamp(0, 1)) > 1e-2


def test_sliced_wasserstein_identical_is_zero_and_deterministic():
    x = torch.randn(50, 8, generator=_gen())
    assert sliced_wasserstein(x, x, generator=_gen(1)) == 0
    y = torch.randn(30, 8, generator=_gen(2))
    a = sliced_wasserstein(x, y, generator=_gen(3))
    assert a == sliced_wasserstein(x, y, generator=_gen(3))
    assert a > 0
    assert torch.isclose(a, sliced_wasserstein(y, x, generator=_gen(3)), rtol=1e-5)


def test_sliced_wasserstein_one_dimensional_shift_is_exact():
    x = torch.randn(40, 1, generator=_gen())
    sw = sliced_wasserstein(x, x + 0.7, n_projections=4, generator=_gen(1))
    assert torch.isclose(sw, torch.tensor(0.7), atol=1e-5)


def test_sliced_wasserstein_different_sizes_is_exact_in_one_dimension():
    x = torch.randn(5, 1, generator=_gen())
    y = torch.randn(3, 1, generator=_gen(1))
    # the same empirical distributions with equal sizes: every point repeated, then sorted
    xs, ys = x.repeat(3, 1).sort(0).values, y.repeat(5, 1).sort(0).values
    expected = (xs - ys).pow(2).mean().sqrt()
    assert torch.isclose(sliced_wasserstein(x, y, n_projections=3, generator=_gen()), expected)
    assert sliced_wasserstein(x, x.repeat(4, 1), generator=_gen()) < 1e-6  # same distribution
    shifted = sliced_wasserstein(x, x.repeat(2, 1) + 0.25, generator=_gen())
    assert torch.isclose(shifted, torch.tensor(0.25))


def test_sliced_wasserstein_of_shifted_cloud_matches_expected_slice():
    # each slice is |<v, θ>|, so SW₂² = E[<v, θ>²] = ‖v‖² / D for θ uniform on the sphere
    d = 16
    x = torch.randn(64, d, generator=_gen())
    v = torch.randn(d, generator=_gen(1))
    sw = sliced_wasserstein(x, x + v, n_projections=4000, generator=_gen(2))
    assert torch.isclose(sw, v.norm() / math.sqrt(d), rtol=0.05)


def test_sliced_wasserstein_rejects_mismatched_features():
    with pytest.raises(ValueError, match="features"):
        sliced_wasserstein(torch.zeros(4, 3), torch.zeros(4, 2))


def test_kl_and_js_known_values():
    p = torch.tensor([0.5, 0.5])
    q = torch.tensor([0.25, 0.75])
    assert kl_divergence(p, p).abs() < 1e-7
    assert torch.isclose(kl_divergence(p, q), torch.tensor(0.5 * LN2 + 0.5 * math.log(2 / 3)))
    assert js_divergence(p, p).abs() < 1e-7
    assert torch.isclose(js_divergence(p, q), js_divergence(q, p))
    assert 0 < js_divergence(p, q) < LN2


def test_js_of_disjoint_distributions_is_ln2_and_batched():
    a = torch.eye(3)  # rows are one-hot
    b = torch.eye(3).roll(1, dims=1)  # disjoint from a, row by row
    js = js_divergence(a, b)
    assert js.shape == (3,)
    assert torch.allclose(js, torch.full((3,), LN2))
    assert torch.isfinite(kl_divergence(a, b)).all()  # zeros in q are floored, not inf


def test_class_proportion_js():
    a = torch.tensor([0, 0, 1, 1, 2, 2])
    assert class_proportion_js(a, a.repeat(3), 3).abs() < 1e-7  # same proportions
    assert torch.isclose(
        class_proportion_js(torch.tensor([0, 0]), torch.tensor([1, 2]), 3), torch.tensor(LN2)
    )
    with pytest.raises(ValueError, match="0..2"):
        class_proportion_js(a, torch.tensor([3]), 3)


def test_softmax_divergences():
    logits = torch.randn(20, 5, generator=_gen())
    same = softmax_divergences(logits, logits + 3.0)  # softmax ignores a constant shift
    assert set(same) == {KL, JS}
    assert abs(same[KL]) < 1e-9 and abs(same[JS]) < 1e-9
    other = torch.randn(20, 5, generator=_gen(1))
    d = softmax_divergences(logits, other)
    p, q = F.softmax(logits, -1), F.softmax(other, -1)
    assert math.isclose(d[KL], kl_divergence(p, q).mean().item(), rel_tol=1e-4)
    assert math.isclose(d[JS], js_divergence(p, q).mean().item(), rel_tol=1e-4)
    assert 0 < d[JS] < LN2


# --- structure -----------------------------------------------------------------------------


def _naive_ssim(x, y):
    """Direct 2-D formula on one single-channel image pair, window by window."""
    r = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(r**2) / (2 * 1.5**2))
    w = torch.outer(g, g) / torch.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    px = x.double().unfold(0, 11, 1).unfold(1, 11, 1)  # (h, w, 11, 11)
    py = y.double().unfold(0, 11, 1).unfold(1, 11, 1)
    mx, my = (px * w).sum((-2, -1)), (py * w).sum((-2, -1))
    vx = (px * px * w).sum((-2, -1)) - mx**2
    vy = (py * py * w).sum((-2, -1)) - my**2
    cov = (px * py * w).sum((-2, -1)) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean()


def test_ssim_identical_is_one_and_matches_direct_formula(tiny_images):
    x, y = tiny_images[0][:4], tiny_images[2][:4]
    assert torch.allclose(ssim(x, x), torch.ones(4), atol=1e-5)
    s = ssim(x, y)
    assert s.shape == (4,)
    for i in range(4):
        assert torch.isclose(s[i].double(), _naive_ssim(x[i, 0], y[i, 0]), atol=1e-5)


def test_ssim_of_very_different_images_is_low_and_symmetric():
    x = torch.rand(3, 3, 16, 16, generator=_gen())  # colour noise
    y = 1.0 - x  # inverted
    assert (ssim(x, y) < 0.5).all()
    assert torch.allclose(ssim(x, y), ssim(y, x), atol=1e-6)
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-5)


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="11"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


def test_nearest_real_ssim_copies_score_one(tiny_images):
    real, real_labels = tiny_images[0], tiny_images[1]
    idx = torch.tensor([0, 7, 13, 14])
    s = nearest_real_ssim(real[idx], real_labels[idx], real, real_labels)
    assert torch.allclose(s, torch.ones(4), atol=1e-5)


def test_nearest_real_ssim_is_the_max_over_the_class(tiny_images):
    real, real_labels, syn, syn_labels = tiny_images
    syn, syn_labels = syn[::3], syn_labels[::3]
    got = nearest_real_ssim(syn, syn_labels, real, real_labels, max_pairs=5)  # several chunks
    for i in range(len(syn)):
        same = real[real_labels == syn_labels[i]]
        expected = ssim(syn[i : i + 1], same).max()
        assert torch.isclose(got[i], expected, atol=1e-5)
    assert (got < 0.999).all()


def test_nearest_real_ssim_needs_real_images_of_every_class(tiny_images):
    real, real_labels = tiny_images[0], tiny_images[1]
    keep = real_labels != 2
    with pytest.raises(ValueError, match="class 2"):
        nearest_real_ssim(real, real_labels, real[keep], real_labels[keep])


# --- privacy -------------------------------------------------------------------------------


def test_closest_record_distances_brute_force_and_exact_copies():
    records = torch.rand(70, 3, 8, 8, generator=_gen()) * 255
    queries = torch.cat([records[[3, 40, 69]], torch.rand(30, 3, 8, 8, generator=_gen(1)) * 255])
    got = closest_record_distances(queries, records, batch_size=16)
    expected = (
        torch.cdist(
            queries.flatten(1).double(),
            records.flatten(1).double(),
            compute_mode="donot_use_mm_for_euclid_dist",
        )
        .min(1)
        .values
    )
    assert torch.allclose(got.double(), expected, rtol=1e-5)
    assert (got[:3] == 0).all()  # exactly, despite matrix-product distances


def test_closest_record_distances_accepts_uint8_records():
    records = torch.randint(0, 256, (10, 1, 4, 4), generator=_gen(), dtype=torch.uint8)
    got = closest_record_distances(records[:2].float(), records)
    assert (got == 0).all()


def test_privacy_report_counts_copies_of_training_images(tiny_images):
    train, _, test, _ = tiny_images
    noise = torch.rand(4, 1, 28, 28, generator=_gen())
    report = privacy_report(torch.cat([train[:3], noise]), train, test)
    assert report[DCR_SYN_MIN] == 0
    assert report[NEAR_COPIES] == 3  # the copies; noise images are far from every record
    assert report[NEAR_COPY_THRESHOLD] > 0
    copies = privacy_report(train[:5], train, test)
    assert copies[DCR_RATIO] == 0 and copies[NEAR_COPIES] == 5
    strict = privacy_report(train[:5] + 0.01, train, test, near_copy_threshold=0.1)
    assert strict[NEAR_COPIES] == 0 and strict[NEAR_COPY_THRESHOLD] == 0.1


# --- gradient similarity -------------------------------------------------------------------


def _make_net(seed: int) -> ConvNet:
    torch.manual_seed(seed)
    return ConvNet(num_classes=3, channels=1, image_size=28, width=8, depth=2)


def test_gradient_similarity_of_identical_sets(tiny_images):
    real, labels = tiny_images[0][:6], tiny_images[1][:6]
    r = gradient_similarity(_make_net, real, labels, real.clone(), labels, k=3, generator=_gen())
    assert r[COS_MEAN] == pytest.approx(1.0, abs=1e-5)
    assert r[COS_STD] < 1e-5 and r[L2_MEAN] < 1e-6


def test_gradient_similarity_of_different_sets_is_deterministic(tiny_images):
    real, labels, syn, syn_labels = tiny_images
    r = gradient_similarity(
        _make_net, syn[::4], syn_labels[::4], real, labels, k=3, generator=_gen()
    )
    assert -1 <= r[COS_MEAN] < 0.999 and r[L2_MEAN] > 0
    again = gradient_similarity(
        _make_net, syn[::4], syn_labels[::4], real, labels, k=3, generator=_gen()
    )
    assert again == r


# --- compression ---------------------------------------------------------------------------


def test_compression_ratios():
    full = torch.zeros(100, 1, 28, 28, dtype=torch.uint8)
    distilled = torch.zeros(10, 1, 28, 28)  # float32: 4 bytes a pixel
    latents = torch.zeros(10, 64)
    r = compression(
        len(full),
        len(distilled),
        tensor_bytes(full),
        tensor_bytes(distilled),
        tensor_bytes(latents),
        1000,
    )
    assert r[IMAGE_RATIO] == 10
    assert r[IMAGE_BYTES_RATIO] == pytest.approx(2.5)
    assert r[LATENT_BYTES_RATIO] == pytest.approx(78400 / 2560)
    assert r[LATENT_GENERATOR_BYTES_RATIO] == pytest.approx(78400 / 3560)
    assert LATENT_BYTES_RATIO not in compression(100, 10, 100, 10)
    with pytest.raises(ValueError, match="positive"):
        compression(100, 0, 100, 10)
