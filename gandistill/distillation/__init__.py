"""Stage 2: distil a small synthetic set (latents through the frozen generator, or pixels)."""

from gandistill.distillation.loop import Distiller, distill, state_path

__all__ = ["Distiller", "distill", "state_path"]
