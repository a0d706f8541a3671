"""A reusable real-data classifier: trained once per dataset and config, cached on disk.

It scores generators (class consistency: the share of samples classified as the class they were
generated for) and is the offline feature extractor and teacher of later stages. It takes images
in [0, 1] and normalises them itself, so callers never have to know the dataset's statistics.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from gandistill.config import ClassifierConfig, DataConfig, to_dict
from gandistill.data import DatasetInfo, ImageTensors, Splits
from gandistill.errors import ArtifactError
from gandistill.files import KIND_CLASSIFIER, atomic_save, load_payload
from gandistill.fit import fit, test_accuracy
from gandistill.models import ConvNet, build_model, from_gan_range
from gandistill.models.convnet import check_depth
from gandistill.runtime import library_versions, step_generator

CLASSIFIER_DIR = "classifiers"
INDEPENDENT_SEED = 7919  # seed offset of the fidelity scores' own network
MIN_WIDTH = 4  # narrowest independent network; a narrower classifier's gets twice its width
ARCH_VERSION = 2  # bump when ConvNet changes shape, so stale cached classifiers are not reused


@dataclass
class RealClassifier:
    """A trained ConvNet with its dataset's normalisation; inputs are images in [0, 1]."""

    net: ConvNet
    info: DatasetInfo
    val_accuracy: float  # on the validation split (the test split when there is none)

    def logits(self, x01: Tensor) -> Tensor:
        return self.net(self.info.normalize(x01))

    def features(self, x01: Tensor) -> Tensor:
        return self.net.embed(self.info.normalize(x01))

    def features_and_logits(self, x01: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`features` and :meth:`logits` from one pass through the network."""
        feats = self.features(x01)
        return feats, self.net.classifier(feats)

    @torch.no_grad()
    def predict(self, x01: Tensor, batch_size: int = 500) -> Tensor:
        self.net.eval()
        device = next(self.net.parameters()).device
        return torch.cat([self.logits(b.to(device)).argmax(1).cpu() for b in x01.split(batch_size)])


def cache_key(data_cfg: DataConfig, cc: ClassifierConfig, seed: int) -> str:
    """Stable key of everything that determines the classifier."""
    key = {"data": to_dict(data_cfg), "clf": to_dict(cc), "seed": seed, "arch": ARCH_VERSION}
    blob = json.dumps(key, sort_keys=True)
    return f"{data_cfg.name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def train_classifier(
    train_set: ImageTensors,
    val_set: ImageTensors,
    info: DatasetInfo,
    cc: ClassifierConfig,
    seed: int,
    device: torch.device,
    progress: bool = True,
) -> RealClassifier:
    """Train a ConvNet on the real train split (SGD + cosine schedule) and measure its accuracy
    on ``val_set`` (the validation split: the classifier chooses, so it never sees the test
    split)."""
    torch.manual_seed(seed)
    net = ConvNet(info.num_classes, info.channels, info.image_size, cc.width, cc.depth).to(device)
    loader = DataLoader(
        train_set,
        batch_size=cc.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    opt = torch.optim.SGD(net.parameters(), lr=cc.lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cc.epochs * len(loader))

    def prepare(batch, device, non_blocking):
        x, y = batch
        return info.normalize(x.to(device)), y.to(device)

    desc = "classifier" if progress else ""
    fit(
        net,
        opt,
        loader,
        cc.epochs,
        device,
        nn.CrossEntropyLoss(),
        prepare,
        None,
        sched,
        "iteration",
        desc,
    )
    accuracy = test_accuracy(net, val_set, info, device) if len(val_set) else 0.0
    return RealClassifier(net, info, accuracy)


def save_classifier(path: str | Path, clf: RealClassifier, key: str) -> Path:
    payload = {
        "kind": KIND_CLASSIFIER,
        "format_version": 1,
        "key": key,
        "model_kwargs": dict(clf.net.kwargs),
        "state_dict": {k: v.detach().cpu() for k, v in clf.net.state_dict().items()},
        "dataset": clf.info.to_dict(),
        "val_accuracy": clf.val_accuracy,
        "versions": library_versions(),
    }
    return atomic_save(payload, path)


def load_classifier(path: str | Path, device: torch.device | str = "cpu") -> RealClassifier:
    payload = load_payload(path, KIND_CLASSIFIER)
    try:
        net = build_model("convnet", payload["model_kwargs"])
        net.load_state_dict(payload["state_dict"])
        info = DatasetInfo.from_dict(payload["dataset"])
        accuracy = float(payload["val_accuracy"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path} is a damaged classifier file ({exc})") from None
    net.to(device).eval().requires_grad_(False)
    return RealClassifier(net, info, accuracy)


def get_classifier(
    data_cfg: DataConfig,
    cc: ClassifierConfig,
    seed: int,
    cache_dir: str | Path,
    data: Splits,
    device: torch.device,
    progress: bool = True,
) -> RealClassifier:
    """The cached classifier for this dataset and config, training (and caching) it if needed."""
    check_depth(cc.depth, data.info.image_size, "classifier.depth")
    key = cache_key(data_cfg, cc, seed)
    path = Path(cache_dir) / CLASSIFIER_DIR / f"{key}.pt"
    if path.is_file():
        return load_classifier(path, device)
    clf = train_classifier(data.train, data.val, data.info, cc, seed, device, progress)
    save_classifier(path, clf, key)
    clf.net.requires_grad_(False)
    return clf


def get_independent_network(
    data_cfg: DataConfig,
    cc: ClassifierConfig,
    seed: int,
    cache_dir: str | Path,
    data: Splits,
    device: torch.device,
    progress: bool = True,
) -> RealClassifier:
    """The fidelity scores' feature network: trained like the classifier on the training split
    but of half its width (twice a narrow one's) and from another seed, so that it is not the
    network that picked the sets it scores (coreset and best-of-K starts) or gave them soft
    labels. Cached likewise."""
    half = cc.width // 2
    own = replace(cc, width=half if half >= MIN_WIDTH else 2 * cc.width)
    return get_classifier(data_cfg, own, seed + INDEPENDENT_SEED, cache_dir, data, device, progress)


@torch.no_grad()
def class_consistency(
    generator: nn.Module, clf: RealClassifier, n_per_class: int, seed: int, batch_size: int = 500
) -> float:
    """Share of generated samples that the classifier assigns to their conditioning class."""
    generator.eval()
    device = next(generator.parameters()).device
    gen = step_generator(seed, -2)
    labels = torch.arange(clf.info.num_classes).repeat_interleave(n_per_class)
    correct = 0
    for y in labels.split(batch_size):
        z = generator.sample_latents(len(y), gen)
        images = from_gan_range(generator(z, y.to(device)))
        correct += (clf.logits(images).argmax(1).cpu() == y).sum().item()
    return correct / len(labels)
