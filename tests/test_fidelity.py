import math

import pytest
import torch
import torch_fidelity
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from conftest import tiny_parts
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from gandistill.classifier import RealClassifier
from gandistill.errors import ArtifactError, ConfigError, DataError
from gandistill.evaluation.fidelity import (
    EXTRACTOR_INCEPTION,
    EXTRACTORS,
    KEY_EXTRACTOR,
    KEY_FID,
    KEY_IS_MEAN,
    KEY_IS_STD,
    KEY_KID_MEAN,
    KEY_KID_STD,
    KEY_PRECISION,
    KEY_RECALL,
    classifier_extractor_name,
    fidelity_metrics,
    register_classifier_extractor,
    resolve_inception_weights,
)
from gandistill.models import ConvNet

NUM_CLASSES = 3
SIZE = 16


def tiny_classifier(seed: int = 0) -> RealClassifier:
    _, _, info = tiny_parts(num_classes=NUM_CLASSES, size=SIZE)
    torch.manual_seed(seed)
    net = ConvNet(NUM_CLASSES, info.channels, SIZE, width=8, depth=2).eval().requires_grad_(False)
    return RealClassifier(net, info, val_accuracy=0.0)


@pytest.fixture(scope="module")
def clf() -> RealClassifier:
    return tiny_classifier()


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    """Real images (60, 1, 16, 16), three classes, and noise images of the same shape."""
    split, _, _ = tiny_parts(per_class=20, num_classes=NUM_CLASSES, size=SIZE, seed=1)
    noise = torch.randint(0, 256, split.images.shape, generator=torch.Generator().manual_seed(2))
    return split.images, noise.to(torch.uint8)


def test_fid_near_zero_on_itself_and_grows_with_noise(clf, images):
    real, noise = images
    same = fidelity_metrics(real, real, clf, metrics=("fid",))[KEY_FID]
    quarter = fidelity_metrics(real, torch.cat([real[15:], noise[:15]]), clf, metrics=("fid",))
    half = fidelity_metrics(real, torch.cat([real[30:], noise[:30]]), clf, metrics=("fid",))
    assert abs(same) < 1e-3 * half[KEY_FID]
    assert 0 < quarter[KEY_FID] < half[KEY_FID]


def test_fid_grows_when_other_classes_are_mixed_in(clf, images):
    real, _ = images
    class0, class1 = real[:20], real[20:40]
    same = fidelity_metrics(class0, class0, clf, metrics=("fid",))[KEY_FID]
    mixed = fidelity_metrics(class0, torch.cat([class0[:10], class1[:10]]), clf, metrics=("fid",))
    assert abs(same) < 1e-3 * mixed[KEY_FID]


def test_all_metrics_keys_and_ranges(clf, images):
    real, noise = images
    same = fidelity_metrics(real, real, clf, kid_subsets=20)
    other = fidelity_metrics(noise, real, clf, kid_subsets=20)
    keys = {KEY_EXTRACTOR, KEY_FID, KEY_KID_MEAN, KEY_KID_STD, KEY_IS_MEAN, KEY_IS_STD}
    assert keys | {KEY_PRECISION, KEY_RECALL} <= set(same)
    assert same[KEY_EXTRACTOR] == classifier_extractor_name(clf, "independent")
    for result in (same, other):
        assert result[KEY_KID_STD] >= 0 and result[KEY_IS_STD] >= 0
        assert 1 - 1e-6 <= result[KEY_IS_MEAN] <= NUM_CLASSES + 1e-6
        assert all(math.isfinite(v) for k, v in result.items() if k != KEY_EXTRACTOR)
    # the unbiased MMD estimate of a set against itself is slightly negative (self-pairs count in
    # the cross term only), of order 1/N, so "near 0" is relative to a real difference
    assert -0.25 * other[KEY_KID_MEAN] < same[KEY_KID_MEAN] <= 0
    assert same[KEY_PRECISION] == same[KEY_RECALL] == 1.0
    assert other[KEY_PRECISION] < 1.0


def test_inception_score_of_a_trained_classifier(images):
    real, _ = images
    labels = torch.arange(NUM_CLASSES).repeat_interleave(20)
    clf = tiny_classifier(seed=4)
    clf.net.train().requires_grad_(True)
    opt = torch.optim.Adam(clf.net.parameters(), lr=0.01)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(clf.logits(real.float() / 255), labels).backward()
        opt.step()
    clf.net.eval().requires_grad_(False)
    balanced = fidelity_metrics(real, real, clf, metrics=("isc",))[KEY_IS_MEAN]
    one_class = fidelity_metrics(real[:20], real, clf, metrics=("isc",))[KEY_IS_MEAN]
    assert 1 <= one_class < 1.5 < 2.5 < balanced <= NUM_CLASSES + 1e-6


def test_small_sets_clamp_kid_and_need_two_images(clf, images):
    real, noise = images
    result = fidelity_metrics(real[:3], noise[:5], clf, isc_splits=10)  # default 1000 -> 3
    assert result[KEY_KID_STD] >= 0 and result[KEY_IS_STD] == 0.0  # one IS split
    with pytest.raises(ConfigError, match="KID subset size 1000 must lie in 2..3"):
        fidelity_metrics(real[:3], noise[:5], clf, kid_subset_size=1000)
    with pytest.raises(DataError, match="at least 2 images"):
        fidelity_metrics(real[:1], real, clf)


def test_wrong_images_are_refused(clf, images):
    real, _ = images
    with pytest.raises(DataError, match="channels"):
        fidelity_metrics(real.repeat(1, 3, 1, 1), real, clf)
    with pytest.raises(DataError, match="uint8"):
        fidelity_metrics(real.float(), real, clf)


def test_unknown_names_give_one_line(clf, images):
    real, _ = images
    with pytest.raises(ConfigError) as info:
        fidelity_metrics(real, real, clf, extractor="inception")
    assert "\n" not in str(info.value) and all(name in str(info.value) for name in EXTRACTORS)
    with pytest.raises(ConfigError, match="known"):
        fidelity_metrics(real, real, clf, metrics=("fid", "ppl"))
    with pytest.raises(ConfigError, match="needs its network"):
        fidelity_metrics(real, real)


def test_register_twice_and_name_tracks_weights(clf):
    name = register_classifier_extractor(clf)
    assert register_classifier_extractor(clf) == name  # a second registration is no error
    assert register_classifier_extractor(tiny_classifier()) == name  # same weights, same name
    assert issubclass(FEATURE_EXTRACTORS_REGISTRY[name], torch_fidelity.FeatureExtractorBase)
    assert classifier_extractor_name(tiny_classifier(seed=1)) != name
    other_norm = RealClassifier(
        clf.net, clf.info.from_dict({**clf.info.to_dict(), "std": [0.5]}), 0
    )
    assert classifier_extractor_name(other_norm) != name


def test_extraction_leaves_the_callers_network_alone(images):
    clf = tiny_classifier(seed=3)
    clf.net.train().requires_grad_(True)
    fidelity_metrics(images[0], images[0], clf, metrics=("fid",))
    assert clf.net.training and all(p.requires_grad for p in clf.net.parameters())


def test_nothing_cached_on_disk_and_results_repeat(clf, images, tmp_path, monkeypatch):
    """torch-fidelity would reload cache files with full pickle, so none may be written."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    real, noise = images
    first = fidelity_metrics(noise, real, clf, metrics=("fid", "kid"))
    assert fidelity_metrics(noise, real, clf, metrics=("fid", "kid")) == first
    assert not list(tmp_path.rglob("*.pt"))


def test_inception_weights_must_be_a_plain_state_dict(no_download, tmp_path, images):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "bad.pth"
    torch.save({"w": Payload()}, bad)
    real, _ = images
    with pytest.raises(ArtifactError, match="not a plain state dict"):
        fidelity_metrics(real, real, extractor=EXTRACTOR_INCEPTION, inception_weights=bad)


@pytest.fixture
def no_download(monkeypatch, tmp_path):
    """An empty torch hub cache, and any attempt at a download fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path / "hub"


def test_missing_inception_weights_is_one_line_and_offline(no_download, images):
    real, _ = images
    with pytest.raises(ConfigError) as info:
        fidelity_metrics(real, real, extractor=EXTRACTOR_INCEPTION)
    assert "--inception-weights" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ArtifactError, match="not found"):
        fidelity_metrics(real, real, extractor=EXTRACTOR_INCEPTION, inception_weights="/no/file")


def test_inception_weights_found_in_hub_cache(no_download):
    cached = no_download / "checkpoints" / tf_inception.URL_INCEPTION_V3.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert resolve_inception_weights() == cached


@pytest.mark.slow
def test_inception_from_local_weights_takes_gray_images(no_download, monkeypatch, tmp_path, images):
    # random weights stand in for the real file: build the module with loading disabled
    with monkeypatch.context() as patch:
        patch.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: {})
        patch.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda *a: None)
        torch.manual_seed(0)
        model = tf_inception.FeatureExtractorInceptionV3("x", ["2048"])
    torch.save(model.state_dict(), tmp_path / "inception.pth")
    real, noise = images
    result = fidelity_metrics(
        real[:6],
        noise[:6],
        extractor=EXTRACTOR_INCEPTION,
        inception_weights=tmp_path / "inception.pth",
        metrics=("fid", "isc"),
    )
    assert result[KEY_EXTRACTOR].startswith(f"{EXTRACTOR_INCEPTION}-")
    assert math.isfinite(result[KEY_FID]) and result[KEY_IS_MEAN] >= 1 - 1e-6
