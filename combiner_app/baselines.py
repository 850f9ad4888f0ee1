"""Classical codecs for comparison (Pillow): JPEG, WebP and, where Pillow has it, AVIF.

`at_size` finds the quality whose file is nearest a byte count, measured on the spot by encoding.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

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


def encode(img: np.ndarray, codec: str, quality: int) -> CodedImage:
    buf = io.BytesIO()
    fmt = {"JPEG": "JPEG", "WebP": "WEBP", "AVIF": "AVIF"}[codec]
    Image.fromarray(img).save(buf, format=fmt, quality=int(quality))
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        dec = np.asarray(im.convert("RGB"))
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


def rd_curve(img: np.ndarray, codec: str, qualities=(2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)):
    """-> [(bpp, psnr)] over a quality sweep."""
    px = img.shape[0] * img.shape[1]
    pts = [encode(img, codec, q) for q in qualities]
    return sorted((p.bpp(px), p.psnr) for p in pts)
