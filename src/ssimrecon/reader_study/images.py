"""Slices -> 8-bit greyscale PNG data URIs that the page embeds (no file names, no metadata).

Every image of a trial uses one grey window, 0 (black) .. ``data_range`` (white): the window of
Figure 2, so no reconstruction looks brighter or darker by its display. A PNG holds only its
IHDR, IDAT and IEND chunks (Pillow writes no text chunk unless asked).
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image


def to_uint8(image: np.ndarray, data_range: float) -> np.ndarray:
    """(H, W) float -> (H, W) uint8: ``image / data_range`` clipped to [0, 1], x 255, rounded."""
    scaled = np.clip(np.asarray(image, dtype=np.float64) / data_range, 0.0, 1.0)
    return np.round(scaled * 255).astype(np.uint8)


def png_data_uri(image: np.ndarray, data_range: float) -> str:
    """``data:image/png;base64,...`` of the (H, W) slice in the grey window ``[0, data_range]``."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image, data_range)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_data_uri(uri: str) -> np.ndarray:
    """The (H, W) uint8 pixels of a :func:`png_data_uri` (for checks and tests)."""
    head, _, payload = uri.partition(",")
    if head != "data:image/png;base64":
        raise ValueError(f"not a PNG data URI: {head[:40]!r}")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))))
