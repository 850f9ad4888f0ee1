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


def for_display(img: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8, C in 1..4 -> what an ImageItem shows: gray (H, W) or RGB (H, W, 3). Alpha (C = 2 or 4)
    is composited over a light checkerboard, so transparent parts read as such."""
    if img.ndim == 2:
        return img
    c = img.shape[2]
    if c == 1:
        return img[:, :, 0]
    if c == 3:
        return img
    colour = img[:, :, :-1].astype(np.uint16)      # integer blend: no float copies of a large image
    if c == 2:
        colour = np.repeat(colour, 3, axis=2)
    a = img[:, :, -1:].astype(np.uint16)
    h, w = img.shape[:2]
    check = ((np.arange(h)[:, None] // 8 + np.arange(w)[None, :] // 8) % 2).astype(np.uint16)
    back = (204 + 51 * check)[:, :, None]
    return ((colour * a + back * (255 - a) + 127) // 255).astype(np.uint8)


def show_rgb(item: pg.ImageItem, img: np.ndarray | None) -> None:
    """(H, W, C) uint8 at fixed levels 0..255 (never auto-stretched); gray as gray, alpha composited
    (see `for_display`)."""
    if img is None:
        item.clear()
        return
    a = np.ascontiguousarray(for_display(img))
    item.setImage(a, levels=(0, 255), autoLevels=False)


def link(boxes: list[pg.ViewBox]) -> None:
    """Zoom and pan of every box follows the first."""
    for vb in boxes[1:]:
        vb.setXLink(boxes[0])
        vb.setYLink(boxes[0])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)
