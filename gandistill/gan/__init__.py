"""Stage 1: train a class-conditional GAN with a class-conditional distribution-matching term."""

from gandistill.gan.trainer import GANTrainer, TrainResult, train

__all__ = ["GANTrainer", "TrainResult", "train"]
