"""Classical codecs for comparison (Pillow): JPEG, WebP and, where Pillow has it, AVIF.

`at_size` finds the quality whose file is nearest a byte count, measured on the spot by encoding. They code the
colour planes of an image (`colour`: gray stays one channel, alpha is left out: COMBINER stores it losslessly).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, features

from .image_panels import psnr


@dataclass
class CodedImage:
    codec: str
    quality: int
    nbytes: int
    decoded: np.ndarray
    psnr: float

    def bpp(self, pixels: int) -> float:
        return 8.0 * self.nbytes / pixels


def codecs() -> list[str]:
    out = ["JPEG"]
    if features.check("webp"):
        out.append("WebP")
    if features.check("avif"):
        out.append("AVIF")
    return out


def colour(img: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8, C in 1..4 -> its colour planes: (H, W, 1) gray or (H, W, 3) RGB (alpha dropped)."""
    c = img.shape[2]
    return np.ascontiguousarray(img[:, :, :1] if c <= 2 else img[:, :, :3])


def encode(img: np.ndarray, codec: str, quality: int) -> CodedImage:
    """`img`: (H, W, 3) RGB or (H, W, 1) gray (see `colour`); the decoded image has the same shape."""
    buf = io.BytesIO()
    fmt = {"JPEG": "JPEG", "WebP": "WEBP", "AVIF": "AVIF"}[codec]
    gray = img.ndim == 3 and img.shape[2] == 1
    Image.fromarray(img[:, :, 0] if gray else img).save(buf, format=fmt, quality=int(quality))
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        dec = np.asarray(im.convert("L"))[:, :, None] if gray else np.asarray(im.convert("RGB"))
    return CodedImage(codec, int(quality), len(data), dec, psnr(img, dec))


def at_size(img: np.ndarray, codec: str, target_bytes: int) -> CodedImage:
    """Binary search on quality (file size grows with it), then the nearest of the two neighbours."""
    lo, hi = 1, 100
    cache: dict[int, CodedImage] = {}

    def get(q: int) -> CodedImage:
        if q not in cache:
            cache[q] = encode(img, codec, q)
        return cache[q]

    while lo < hi:
        mid = (lo + hi) // 2
        if get(mid).nbytes < target_bytes:
            lo = mid + 1
        else:
            hi = mid
    cands = [get(q) for q in {max(1, lo - 1), lo} ]
    return min(cands, key=lambda c: (abs(c.nbytes - target_bytes), -c.quality))


def rd_curve(img: np.ndarray, codec: str, qualities=(2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95),
             stop: Callable[[], bool] | None = None):
    """-> [(bpp, psnr)] over a quality sweep (the points made so far once `stop()` is true)."""
    px = img.shape[0] * img.shape[1]
    pts = []
    for q in qualities:
        if stop is not None and stop():
            break
        pts.append(encode(img, codec, q))
    return sorted((p.bpp(px), p.psnr) for p in pts)
