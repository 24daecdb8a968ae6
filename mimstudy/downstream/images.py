"""Grey image files shared by the benchmark layouts (COCO keypoints, NYUv2 depth, GOT-10k tracking).

Writing goes through :func:`~mimstudy.atomic.atomic_path`, so a file is either whole or absent;
reading raises :class:`~mimstudy.data.fashion_mnist.DatasetError` naming the file and what to do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mimstudy.atomic import atomic_path
from mimstudy.data.fashion_mnist import DatasetError


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


def read_grey(path: Path, what: str = "image", named_in: str = "the split's list file") -> np.ndarray:
    """The image at ``path`` as grey float32 in [0, 1] (colour images converted to luminance)."""
    return np.asarray(open_image(path, what, named_in).convert("L"), dtype=np.float32) / 255.0
