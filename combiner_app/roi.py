"""Region of interest: the user paints over the original image; each patch's share of the painted area raises
the weight its measured content cost (KL) gets in the content-adaptive allocation
(`engine.patch_codec.encode_image(..., importance=...)`), so the painted region gets more blocks. Only the
encoder's allocation changes: the files are ordinary `.cmb` files."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

GAIN = 4.0      # a fully painted patch counts its content cost this many times


def _lut() -> np.ndarray:
    lut = np.zeros((256, 4), np.uint8)
    lut[:, 0] = 235
    lut[:, 1] = 60
    lut[:, 2] = 40
    lut[:, 3] = np.linspace(0, 120, 256).astype(np.uint8)
    return lut


class RoiLayer:
    """A paintable mask over an image shown in `box` (left button paints while enabled)."""

    def __init__(self, box: pg.ViewBox):
        self.box = box
        self.item = pg.ImageItem()
        self.item.setZValue(5)
        self.item.setLookupTable(_lut())
        box.addItem(self.item)
        self.mask: np.ndarray | None = None
        self.enabled = False
        self.item.hide()

    def reset(self, h: int, w: int) -> None:
        self.mask = np.zeros((h, w), np.float32)
        self.item.setImage(self.mask, levels=(0.0, 1.0), autoLevels=False)
        self.mask = self.item.image          # the array the item paints into
        r = max(2, min(h, w) // 24)
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        disk = ((yy * yy + xx * xx) <= r * r).astype(np.float32)
        self._kernel = (np.ones_like(disk), disk, (r, r))
        self.enable(self.enabled)

    def enable(self, on: bool) -> None:
        self.enabled = on
        if self.mask is None:
            return
        if on:
            k, m, c = self._kernel
            self.item.setDrawKernel(k, mask=m, center=c, mode="set")
        else:
            self.item.setDrawKernel(None)
        self.box.setMouseEnabled(not on, not on)   # while painting, a drag paints instead of panning
        self.item.setVisible(on or self.painted())

    def clear(self) -> None:
        if self.mask is not None:
            self.mask[:] = 0
            self.item.updateImage()

    def paint_rect(self, y0: int, y1: int, x0: int, x1: int) -> None:
        """Paint a rectangle (what a drag over it does; tests and scripts use this)."""
        if self.mask is not None:
            self.mask[y0:y1, x0:x1] = 1.0
            self.item.updateImage()

    def painted(self) -> bool:
        return self.mask is not None and bool(self.mask.any())

    def weights(self, patch: int) -> np.ndarray | None:
        """(rows, cols) weights over the patch grid: 1 + (GAIN - 1) x the painted share of each patch; None when
        nothing is painted."""
        if not self.painted():
            return None
        h, w = self.mask.shape
        rows, cols = -(-h // patch), -(-w // patch)
        m = np.zeros((rows * patch, cols * patch), np.float32)
        m[:h, :w] = self.mask
        share = m.reshape(rows, patch, cols, patch).mean(axis=(1, 3))
        return 1.0 + (GAIN - 1.0) * share
