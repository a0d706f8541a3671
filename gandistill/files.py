"""Saving and loading gandistill files: atomic writes, ``weights_only`` loads, kind checks.

Every file is a plain dict with ``kind`` and ``format_version`` so that a distilled set given as
a generator (or a truncated download) is refused with one clear line instead of a traceback.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid, save_image

from gandistill.config import GENERATOR_SPACES, Config, config_from_dict, to_dict
from gandistill.data import DatasetInfo
from gandistill.errors import ArtifactError, GandistillError
from gandistill.models import Generator, build_model, from_gan_range
from gandistill.runtime import library_versions

FORMAT_VERSION = 1
KIND_GENERATOR = "gandistill.generator"
KIND_CLASSIFIER = "gandistill.classifier"
GENERATOR_FILE = "generator.pt"


def to_uint8(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] images as uint8 pixels (values outside are clamped)."""
    return (x01.clamp(0, 1) * 255).round().to(torch.uint8)


def image_grid(images01: torch.Tensor, nrow: int) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] as one (C, H', W') picture, ``nrow`` per row, cells
    parted by 2 white pixels: every grid gandistill writes (TensorBoard, PNG exports)."""
    return make_grid(images01, nrow=nrow, padding=2, pad_value=1.0)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(fh)`` on a temporary file in the target folder, then rename it over
    ``path``: a kill at any moment leaves the old file or the new one, never a partial one.

    Durable too: the data reaches the disk (fsync) before the rename, and the rename before the
    function returns (fsync of the folder), so a power loss after it cannot leave an empty file
    behind the new name. The file gets the mode the user's umask gives a new file.

    Raises:
        ArtifactError: the folder or the file cannot be written (read-only, full, no
            permission); the old file is left as it was and no temporary file remains.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, a device (/dev/null), a pipe
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise ArtifactError(f"cannot write {path}: it is {kind}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ArtifactError(f"cannot write to {path.parent}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from the group
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ArtifactError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    _fsync_folder(path.parent)
    return path


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse to fsync a folder; the rename still happened
        pass
    finally:
        os.close(fd)


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`atomic_write`."""

    def write(fh: BinaryIO) -> None:
        failed: list[OSError] = []

        class Sink:  # torch reports a failed write (a full disk) as a RuntimeError: keep the cause
            def write(self, data: bytes) -> int:
                try:
                    return fh.write(data)
                except OSError as exc:
                    failed.append(exc)
                    raise

            def flush(self) -> None:
                fh.flush()

        try:
            torch.save(obj, Sink())
        except RuntimeError:
            if failed:
                raise failed[0] from None
            raise

    return atomic_write(path, write)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_failure(exc: Exception) -> str:
    """One short reason for a failed ``weights_only`` load (torch's own text spans paragraphs
    and suggests ``weights_only=False``, which is exactly what must not be done)."""
    text = str(exc).strip()
    if isinstance(exc, pickle.UnpicklingError):  # the safe unpickler refused something
        found = re.search(r"GLOBAL (\S+)", text)
        return (
            f"unsafe content refused: it would import {found.group(1)}"
            if found
            else "content the weights-only loader refuses"
        )
    return text.splitlines()[0].split(". ")[0][:120] if text else type(exc).__name__


def load_payload(path: str | Path, kind: str) -> dict:
    """Load a gandistill file with ``weights_only=True`` and check that it is of ``kind``."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"file not found: {path}")
    try:
        with warnings.catch_warnings():  # e.g. on foreign pickle protocols: the error says it
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, code-carrying pickle
        reason = _load_failure(exc)
        raise ArtifactError(f"{path} is not a readable gandistill file ({reason})") from None
    if not isinstance(payload, dict) or "kind" not in payload:
        raise ArtifactError(f"{path} is not a gandistill file (expected a {kind})")
    if payload["kind"] != kind:
        raise ArtifactError(f"{path} is a {payload['kind']}, not a {kind}")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format version {version!r}; this gandistill reads up to {FORMAT_VERSION}"
        )
    return payload


def _header(kind: str, config: Config) -> dict:
    return {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "config": to_dict(config),
        "versions": library_versions(),
    }


def save_generator(
    path: str | Path,
    generator: Generator,
    ema_state: dict,
    config: Config,
    info: DatasetInfo,
    iteration: int,
    derived_from: dict | None = None,
) -> Path:
    """Write a self-describing generator checkpoint (raw and EMA weights); ``derived_from``
    names the generator file whose training this one continued (path, sha256, iteration)."""
    payload = _header(KIND_GENERATOR, config) | {
        "model_kwargs": dict(generator.kwargs),
        "state_dict": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
        "ema_state_dict": {k: v.detach().cpu() for k, v in ema_state.items()},
        "dataset": info.to_dict(),
        "iteration": iteration,
    }
    if derived_from:
        payload["derived_from"] = dict(derived_from)
    return atomic_save(payload, path)


@dataclass
class GeneratorCheckpoint:
    """A loaded generator file: the network plus everything needed to interpret its output."""

    generator: Generator
    info: DatasetInfo
    config: Config
    iteration: int
    path: Path
    sha256: str
    # the generator file this one was distilled from ({"path", "sha256", "iteration"}); None for
    # a generator trained from scratch
    derived_from: dict | None = None

    @property
    def distilled(self) -> bool:
        """Whether the pool-matching term shaped this generator (``match.weight`` > 0)."""
        return self.config.match.weight > 0


def load_generator_checkpoint(
    path: str | Path, ema: bool = True, device: str | torch.device = "cpu"
) -> GeneratorCheckpoint:
    """Rebuild the generator from its file alone (EMA weights by default), in eval mode."""
    payload = load_payload(path, KIND_GENERATOR)
    try:
        generator = build_model("generator", payload["model_kwargs"])
        generator.load_state_dict(payload["ema_state_dict" if ema else "state_dict"])
        info = DatasetInfo.from_dict(payload["dataset"])
        config = config_from_dict(payload["config"])
    except (KeyError, TypeError, RuntimeError, GandistillError) as exc:
        raise ArtifactError(f"{path} is a damaged generator file ({exc})") from None
    generator.requires_grad_(False).eval().to(device)
    return GeneratorCheckpoint(
        generator=generator,
        info=info,
        config=config,
        iteration=int(payload.get("iteration", 0)),
        path=Path(path),
        sha256=sha256_file(path),
        derived_from=payload.get("derived_from"),
    )


def load_generator(
    path: str | Path, ema: bool = True, device: str | torch.device = "cpu"
) -> Generator:
    """The generator of a checkpoint, ready to sample (``G(z, y)`` in [-1, 1])."""
    return load_generator_checkpoint(path, ema=ema, device=device).generator


# --- distilled sets ----------------------------------------------------------------------------

KIND_DISTILLED = "gandistill.distilled"
KIND_DISTILL_STATE = "gandistill.distill_state"  # a resumable distillation, see distill.py


@dataclass
class DistilledSet:
    """A distilled training set: what was optimised, the images it decodes to, and provenance.

    ``images_float`` are the normalised images exactly as optimised (pixel-space sets may leave
    the [0, 1] pixel range); ``images_uint8`` are the same clamped to pixels, for viewing and
    export. Latent-space sets also keep the latents (plus the feature offsets and residuals
    when those were optimised) and the sha256 of the generator they decode through.
    """

    labels: torch.Tensor  # (N,) int64, sorted by class
    images_float: torch.Tensor  # (N, C, H, W) normalised
    images_uint8: torch.Tensor  # (N, C, H, W) pixels
    info: DatasetInfo
    config: Config
    space: str  # "latent", "hybrid", "pixel" or "real" (a coreset baseline of real images)
    latents: torch.Tensor | None = None  # (N, latent_dim)
    feature_offsets: torch.Tensor | None = None  # (N, ...) at config.distill.feature_level
    residuals: torch.Tensor | None = None  # (N, C, H, W) normalised
    teacher_logits: torch.Tensor | None = None  # (N, K) of the real-data classifier: soft labels
    generator_path: str | None = None
    generator_sha256: str | None = None
    stop_reason: str = ""
    history: list | None = None  # [{"iteration", "seconds", "match_loss", "accuracy"?}, ...]
    versions: dict | None = None

    @property
    def ipc(self) -> int:
        return int(torch.bincount(self.labels).max())

    def images(self, normalized: bool = False) -> torch.Tensor:
        """The images as optimised: normalised, or denormalised to [0, 1] pixels (clamped)."""
        if normalized:
            return self.images_float.clone()
        return self.info.denormalize(self.images_float).clamp(0.0, 1.0)

    def decode(self, generator_path: str | Path | None = None) -> torch.Tensor:
        """Re-decode the latents through the generator (checked by hash); normalised images."""
        if self.space not in GENERATOR_SPACES or self.latents is None:
            what = (
                "holds real training images (a coreset baseline)"
                if self.space == "real"
                else "was optimised in pixel space"
            )
            raise ArtifactError(f"this distilled set {what}: nothing to decode")
        path = generator_path or self.generator_path
        if path is None or not Path(path).is_file():
            raise ArtifactError(f"generator file not found: {path} (pass its current path)")
        ckpt = load_generator_checkpoint(path)
        if ckpt.sha256 != self.generator_sha256:
            raise ArtifactError(
                f"generator {path} (sha256 {ckpt.sha256[:12]}) is not the one this set was "
                f"distilled with (sha256 {str(self.generator_sha256)[:12]})"
            )
        return decode_latents(self, ckpt.generator)

    def to_dataset(self) -> torch.utils.data.TensorDataset:
        """A torch Dataset of (normalised image, label) pairs to train on."""
        return torch.utils.data.TensorDataset(self.images_float.clone(), self.labels.clone())

    def save(self, path: str | Path) -> Path:
        optional = {
            k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v)
            for k, v in (
                ("latents", self.latents),
                ("feature_offsets", self.feature_offsets),
                ("residuals", self.residuals),
                ("teacher_logits", self.teacher_logits),
            )
        }
        payload = (
            _header(KIND_DISTILLED, self.config)
            | optional
            | {
                "labels": self.labels.cpu(),
                "images_float": self.images_float.detach().cpu(),
                "images_uint8": self.images_uint8.cpu(),
                "dataset": self.info.to_dict(),
                "space": self.space,
                "generator_path": self.generator_path,
                "generator_sha256": self.generator_sha256,
                "seed": self.config.seed,
                "stop_reason": self.stop_reason,
                "history": self.history or [],
            }
        )
        return atomic_save(payload, path)

    @classmethod
    def load(cls, path: str | Path) -> DistilledSet:
        payload = load_payload(path, KIND_DISTILLED)
        try:
            return cls(
                labels=payload["labels"],
                images_float=payload["images_float"],
                images_uint8=payload["images_uint8"],
                info=DatasetInfo.from_dict(payload["dataset"]),
                config=config_from_dict(payload["config"]),
                # a set saved before space hybrid had a name: latents with residuals
                space=(
                    "hybrid"
                    if payload["space"] == "latent" and payload.get("residuals") is not None
                    else payload["space"]
                ),
                latents=payload.get("latents"),
                feature_offsets=payload.get("feature_offsets"),
                residuals=payload.get("residuals"),
                teacher_logits=payload.get("teacher_logits"),
                generator_path=payload.get("generator_path"),
                generator_sha256=payload.get("generator_sha256"),
                stop_reason=payload.get("stop_reason", ""),
                history=payload.get("history", []),
                versions=payload.get("versions"),
            )
        except (KeyError, TypeError, GandistillError) as exc:
            raise ArtifactError(f"{path} is a damaged distilled-set file ({exc})") from None


@torch.no_grad()
def decode_latents(ds: DistilledSet, generator: Generator) -> torch.Tensor:
    """Normalised images (N, C, H, W) of a latent-space distilled set, decoded again through
    ``generator`` (feature offsets and pixel residuals added as the set stores them)."""
    generator.requires_grad_(False).eval()
    level = max(ds.config.distill.feature_level, 0)
    x = generator.render(ds.latents, ds.labels, level, ds.feature_offsets)
    x = ds.info.normalize(from_gan_range(x))
    if ds.residuals is not None:
        x = x + ds.residuals
    return x


# --- export formats -------------------------------------------------------------------------

EXPORT_FORMATS = ("png", "npz", "pt", "imagefolder")


def export_images(
    images: torch.Tensor, labels: torch.Tensor, class_names: list[str], fmt: str, out: Path
) -> None:
    """Write a set's uint8 images (N, C, H, W) with their labels in one of
    :data:`EXPORT_FORMATS`: a PNG grid (a row per class), a ``.pt`` or ``.npz`` file, or an
    image folder (a sub-folder of PNGs per class). Every format is written atomically."""
    if fmt == "png":
        ipc = int(torch.bincount(labels).max())
        grid = image_grid(images.float() / 255, ipc)
        atomic_write(out, lambda fh: save_image(grid, fh, format="png"))
    elif fmt == "pt":
        atomic_save({"images": images, "labels": labels, "class_names": list(class_names)}, out)
    elif fmt == "npz":
        atomic_write(out, lambda fh: np.savez(fh, images=images.numpy(), labels=labels.numpy()))
    else:
        _write_imagefolder(images, labels, class_names, out)


def _write_imagefolder(
    images: torch.Tensor, labels: torch.Tensor, class_names: list[str], out: Path
) -> None:
    """One sub-folder of PNGs per class, built aside and renamed into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the folder from the group
        for i, (img, y) in enumerate(zip(images, labels.tolist(), strict=True)):
            folder = tmp / class_names[y]
            folder.mkdir(exist_ok=True)
            arr = img.permute(1, 2, 0).squeeze(-1).numpy()
            Image.fromarray(arr).save(folder / f"{i:05d}.png")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
