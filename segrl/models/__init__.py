"""Policies: the embedded tiny offline VLM and loading any image-text-to-text model (path or hub id)."""

from segrl.models.loading import load_policy, save_policy_atomic
from segrl.models.tiny import build_tiny_vlm, image_tokens_per_image, texts_from_dataset

__all__ = [
    "build_tiny_vlm",
    "image_tokens_per_image",
    "load_policy",
    "save_policy_atomic",
    "texts_from_dataset",
]
