"""Image files shared by the benchmark layouts: written atomically, read with the channels a backbone takes.

Writing goes through :func:`~mimstudy.atomic.atomic_path`, so a file is either whole or absent.
Reading keeps what the backbone needs: ``channels = 1`` converts to grey (luminance, PIL's ``L``:
our micro models and our generated analogs), ``channels = 3`` to RGB (the paper's checkpoints and
the real benchmarks' JPEGs; a grey file gives three equal channels). Images come back as float32
``[C, H, W]`` in [0, 1]; :func:`resized` brings an image (or a label map) to the square input size.
A missing or unreadable file raises :class:`~mimstudy.data.fashion_mnist.DatasetError` naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from mimstudy.atomic import atomic_path
from mimstudy.data.fashion_mnist import DatasetError

CHANNEL_MODES = {1: "L", 3: "RGB"}  # channels a backbone takes -> the PIL mode images are read in


def write_grey(path: str | Path, image: np.ndarray, format: str = "PNG", **options) -> Path:
    """Save a grey float image in [0, 1] as 8-bit ``format`` (``PNG``, ``JPEG``), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), mode="L").save(tmp, format=format,
                                                                                             **options)
    return path


def open_image(path: Path, what: str = "image", named_in: str = "the split's list file") -> Image.Image:
    """Open and decode ``path``; a missing or unreadable file raises :class:`DatasetError` naming it."""
    if not path.is_file():
        raise DatasetError(f"{what} {path} is missing (named in {named_in})")
    try:
        image = Image.open(path)
        image.load()
        return image
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"{what} {path} cannot be read ({err}); re-generate or replace it") from err


def check_channels(channels: int) -> int:
    """``channels`` when images can be read with that many (1: grey, 3: RGB); else a ValueError saying so."""
    if channels not in CHANNEL_MODES:
        raise ValueError(f"images can be read with 1 (grey) or 3 (RGB) channels; the backbone takes {channels}")
    return channels


def read_image(path: Path, channels: int = 1, what: str = "image", named_in: str = "the split's list file") -> np.ndarray:
    """The image at ``path`` as float32 ``[channels, H, W]`` in [0, 1] (converted to grey or RGB as ``channels`` says)."""
    image = open_image(path, what, named_in)
    try:
        converted = image.convert(CHANNEL_MODES[check_channels(channels)])
    except (ValueError, OSError) as err:
        raise DatasetError(f"{what} {path} (mode {image.mode}) cannot be converted to {channels} channel(s): {err}") from err
    pixels = np.asarray(converted, dtype=np.float32) / 255.0
    return pixels[None] if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(2, 0, 1))


def resized(image: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """``[C, H, W]`` at ``size x size``: unchanged when it is already, else bilinear with antialiasing
    (images) or ``nearest`` (label and depth maps)."""
    if tuple(image.shape[-2:]) == (size, size):
        return image
    smooth = {"align_corners": False, "antialias": True} if mode == "bilinear" else {}
    return F.interpolate(image[None], size=(size, size), mode=mode, **smooth)[0]
