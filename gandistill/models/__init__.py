"""Networks: the conditional generator and discriminator, and the DC-style evaluation ConvNet.

Every model keeps the keyword arguments it was built with in ``self.kwargs`` so that a checkpoint
can rebuild it from the file alone (:func:`build_model`).
"""

from __future__ import annotations

from torch import nn

from gandistill.models.convnet import ConvNet
from gandistill.models.discriminator import Discriminator
from gandistill.models.generator import Generator, from_gan_range, to_gan_range

MODELS: dict[str, type[nn.Module]] = {
    "generator": Generator,
    "discriminator": Discriminator,
    "convnet": ConvNet,
}


def build_model(kind: str, kwargs: dict) -> nn.Module:
    """Rebuild a model from its registry name and saved constructor arguments."""
    return MODELS[kind](**kwargs)


__all__ = [
    "MODELS",
    "ConvNet",
    "Discriminator",
    "Generator",
    "build_model",
    "from_gan_range",
    "to_gan_range",
]
