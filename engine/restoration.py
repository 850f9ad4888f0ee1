"""Restoration of a decoded photo: the filters its sender picks once every patch is coded, and the receiver
runs on the rendered image. First the spectral floors (engine/image_floors.py, 18 bytes), then the
class-adaptive Wiener filters (engine/image_wiener.py, a budget of about 0.002 bpp). Only kind-15 files (images
of more than one delta group) carry them; the budget reserves their bytes before coding starts.

Sender/receiver contract: the receiver applies, to the (H, W, 3) uint8 RGB image rendered from the patches, the
floors of the header (if any) and then its Wiener filters (if any), each as its module's contract states.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import image_floors, image_wiener

WIENER_BPP = 0.002      # the Wiener filters' byte budget per pixel, in bits: about 100 bytes on a Kodak image,
                        # where the first 100 bytes of filters bring +0.16 dB at 0.3 bpp and the next 50 only
                        # +0.01 (docs/results.md, session of 2026-12-06, thirteenth)
WIENER_MIN_BYTES = 12   # below this a budget holds about one filter: none is sent
WIENER_MAX_BYTES = 256  # every filter of a large image fits in about this


@dataclass(frozen=True)
class Restoration:
    """Which restoration filters the sender of a kind-15 image picks (both by default)."""

    floors: bool = True
    wiener: bool = True

    def wiener_bytes(self, shape) -> int:
        """Bytes the Wiener filters of an image of `shape` (H, W, ...) may take (0: none sent)."""
        if not self.wiener:
            return 0
        n = min(WIENER_MAX_BYTES, int(shape[0] * shape[1] * WIENER_BPP / 8))
        return n if n >= WIENER_MIN_BYTES else 0

    def room(self, shape) -> int:
        """Header bytes the budget of a kind-15 image of `shape` reserves for these filters."""
        n = self.wiener_bytes(shape)
        return ((image_floors.N_CODES * image_floors.BITS + 7) // 8 if self.floors else 0) + (
            n + 2 if n else 0)   # the field and its length varint (n < 2**14)

    def choose(self, original: np.ndarray, decoded: np.ndarray):
        """Sender side: (H, W, 3) uint8 RGB original and rendered decode -> (restored decode, floor codes or
        None, Wiener coefficients or None): the header's fields and what the receiver will show."""
        floors = wiener = None
        out = decoded
        if self.floors:
            floors = tuple(int(v) for v in image_floors.choose(original, out))
            out = image_floors.apply(out, floors)
        n = self.wiener_bytes(decoded.shape)
        if n:
            q = image_wiener.choose(original, out, n)
            if q is not None:
                wiener = tuple(tuple(int(v) for v in row) for row in q)
                out = image_wiener.apply(out, wiener)
        return out, floors, wiener


NONE = Restoration(floors=False, wiener=False)


def restore(rgb: np.ndarray, floors, wiener) -> np.ndarray:
    """Receiver side: the rendered (H, W, 3) uint8 RGB image and the header's floor codes and Wiener filters
    (either None) -> the image to show."""
    if floors is not None:
        rgb = image_floors.apply(rgb, floors)
    if wiener is not None:
        rgb = image_wiener.apply(rgb, wiener)
    return rgb
