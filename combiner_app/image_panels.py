"""Shared pyqtgraph set-up for pixel images: row-major arrays, y pointing down, square pixels, no smoothing."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)


def image_box(layout: pg.GraphicsLayout | pg.GraphicsLayoutWidget, row: int, col: int,
              title: str = "") -> tuple[pg.ViewBox, pg.ImageItem, pg.LabelItem]:
    """A ViewBox holding one ImageItem, with a title above it, as one cell (row, col) of `layout`."""
    sub = layout.addLayout(row=row, col=col)
    label = sub.addLabel(title, row=0, col=0)
    vb = sub.addViewBox(row=1, col=0, invertY=True, lockAspect=True, enableMenu=False)
    item = pg.ImageItem()
    vb.addItem(item)
    return vb, item, label


def show_rgb(item: pg.ImageItem, img: np.ndarray | None) -> None:
    """(H, W, 3|1) uint8 at fixed levels 0..255 (never auto-stretched)."""
    if img is None:
        item.clear()
        return
    a = np.ascontiguousarray(img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img)
    item.setImage(a, levels=(0, 255), autoLevels=False)


def link(boxes: list[pg.ViewBox]) -> None:
    """Zoom and pan of every box follows the first."""
    for vb in boxes[1:]:
        vb.setXLink(boxes[0])
        vb.setYLink(boxes[0])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)
