import torch

from gandistill.classifier import (
    CLASSIFIER_DIR,
    class_consistency,
    get_classifier,
    get_independent_network,
    load_classifier,
)
from gandistill.config import ClassifierConfig, DataConfig
from gandistill.models import Generator, to_gan_range

CC = ClassifierConfig(width=8, epochs=3, batch_size=4, lr=0.05)


def test_trains_caches_and_reloads(tmp_path, tiny_data):
    device = torch.device("cpu")
    clf = get_classifier(DataConfig(name="tiny"), CC, 0, tmp_path, tiny_data, device, False)
    assert clf.val_accuracy >= 0.9  # bands are trivially separable
    files = list((tmp_path / CLASSIFIER_DIR).glob("*.pt"))
    assert len(files) == 1
    again = load_classifier(files[0])
    x = tiny_data.test.images.float() / 255
    assert torch.equal(again.predict(x), clf.predict(x))
    cached = get_classifier(DataConfig(name="tiny"), CC, 0, tmp_path, tiny_data, device, False)
    assert cached.val_accuracy == clf.val_accuracy


def test_the_fidelity_network_is_not_the_selection_classifier(tmp_path, tiny_data):
    device, cfg = torch.device("cpu"), DataConfig(name="tiny")
    clf = get_classifier(cfg, CC, 0, tmp_path, tiny_data, device, False)
    own = get_independent_network(cfg, CC, 0, tmp_path, tiny_data, device, False)
    assert own.net.kwargs["width"] == CC.width // 2 != clf.net.kwargs["width"]  # 4 against 8
    assert len(list((tmp_path / CLASSIFIER_DIR).glob("*.pt"))) == 2  # cached apart
    x = tiny_data.test.images.float() / 255
    assert not torch.equal(own.features(x)[:, :4], clf.features(x)[:, :4])
    assert own.val_accuracy >= 0.9


class ReplayGenerator(Generator):
    """Returns a real image of the requested class (or of the next class when ``wrong``)."""

    def __init__(self, data, wrong=False):
        super().__init__(num_classes=data.num_classes, latent_dim=4, width=4)
        self.data, self.wrong = data, wrong

    def forward(self, z, y):
        y = (y + 1) % self.num_classes if self.wrong else y
        return to_gan_range(torch.stack([self.data.get_class(int(c))[0] for c in y]))


def test_class_consistency_separates_right_from_wrong(tmp_path, tiny_data):
    clf = get_classifier(
        DataConfig(name="tiny"), CC, 0, tmp_path, tiny_data, torch.device("cpu"), False
    )
    train_set = tiny_data.train
    assert class_consistency(ReplayGenerator(train_set), clf, 4, seed=0) == 1.0
    assert class_consistency(ReplayGenerator(train_set, wrong=True), clf, 4, seed=0) == 0.0
