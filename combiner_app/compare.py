"""Squoosh-style before/after comparison: two images in one view, a draggable vertical divider (left image on
the left of it, right image on the right), zoom and pan shared by both sides (and by any view linked to it),
the zoom as a percentage, "Fit" and "1:1" buttons, and a choice of which versions sit on either side
(original, COMBINER's decoded image, JPEG / WebP / AVIF at the same file size)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QPen
from PySide6.QtWidgets import (QComboBox, QGraphicsItem, QGraphicsRectItem, QHBoxLayout, QLabel, QPushButton,
                               QVBoxLayout, QWidget)

from .image_panels import show_rgb

DIVIDER_PEN = pg.mkPen((255, 255, 255), width=2)
DIVIDER_HOVER = pg.mkPen((255, 200, 60), width=3)


def box_state(box: pg.ViewBox, shape: tuple[int, int]):
    """"fit" while the whole (h, w) image is in the view box, else (centre x, centre y, screen pixels per
    image pixel): what a linked view needs to show the same place at the same zoom."""
    h, w = shape
    r = box.viewRect()
    if r.left() <= 0.5 and r.top() <= 0.5 and r.right() >= w - 0.5 and r.bottom() >= h - 0.5:
        return "fit"
    z = box.width() / r.width() if r.width() > 0 and box.width() > 0 else 1.0
    return (r.center().x(), r.center().y(), z)


def set_box_state(box: pg.ViewBox, state, shape: tuple[int, int]) -> None:
    """Show `box_state`'s answer of another view in this (laid out) view box."""
    h, w = shape
    if state == "fit":
        box.setRange(xRange=(0, w), yRange=(0, h), padding=0)
        return
    cx, cy, z = state
    hw, hh = box.width() / z / 2, box.height() / z / 2
    box.setRange(xRange=(cx - hw, cx + hw), yRange=(cy - hh, cy + hh), padding=0)


class SplitCompare(QWidget):
    """`set_sources({name: (H, W, C) uint8})` then `set_pair(left, right)`; the user may change either side."""

    pair_changed = Signal(str, str)
    zoom_changed = Signal(float)      # screen pixels per image pixel

    def __init__(self, parent=None):
        super().__init__(parent)
        self.sources: dict[str, np.ndarray] = {}
        self.notes: dict[str, str] = {}
        self.shape: tuple[int, int] | None = None
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("splitGraphics")
        self.box = self.graphics.addViewBox(row=0, col=0, invertY=True, lockAspect=True, enableMenu=False)
        self.left_item = pg.ImageItem()
        self.box.addItem(self.left_item)
        self.clip = QGraphicsRectItem()        # the right image shows only inside this rectangle
        self.clip.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape, True)
        self.clip.setPen(QPen(Qt.PenStyle.NoPen))
        self.clip.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        self.box.addItem(self.clip)
        self.right_item = pg.ImageItem()
        self.right_item.setParentItem(self.clip)
        self.divider = pg.InfiniteLine(angle=90, movable=True, pen=DIVIDER_PEN, hoverPen=DIVIDER_HOVER)
        self.divider.setZValue(10)
        self.box.addItem(self.divider)
        self.divider.sigPositionChanged.connect(self._clip_to_divider)
        self.left_text = pg.TextItem("", anchor=(0, 0), color=(255, 255, 255), fill=pg.mkBrush(0, 0, 0, 150))
        self.right_text = pg.TextItem("", anchor=(1, 0), color=(255, 255, 255), fill=pg.mkBrush(0, 0, 0, 150))
        for t in (self.left_text, self.right_text):
            t.setZValue(11)
            self.box.addItem(t, ignoreBounds=True)
        self.box.sigRangeChanged.connect(self._on_range)

        self.left_combo = QComboBox()
        self.left_combo.setObjectName("splitLeft")
        self.right_combo = QComboBox()
        self.right_combo.setObjectName("splitRight")
        self.left_combo.currentTextChanged.connect(lambda _: self._show())
        self.right_combo.currentTextChanged.connect(lambda _: self._show())
        self.zoom_label = QLabel("")
        self.zoom_label.setObjectName("zoomLabel")
        self.zoom_label.setMinimumWidth(80)
        self.fit_button = QPushButton("Fit")
        self.fit_button.setObjectName("zoomFit")
        self.fit_button.setToolTip("Fit the whole image in the view")
        self.fit_button.clicked.connect(self.fit)
        self.one_button = QPushButton("1:1")
        self.one_button.setObjectName("zoomOne")
        self.one_button.setToolTip("One image pixel per screen pixel")
        self.one_button.clicked.connect(lambda: self.set_zoom(1.0))
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Left"))
        bar.addWidget(self.left_combo)
        bar.addWidget(QLabel("│ Right"))
        bar.addWidget(self.right_combo)
        bar.addStretch(1)
        bar.addWidget(QLabel("Drag the divider; wheel zooms, drag pans"))
        bar.addWidget(self.zoom_label)
        bar.addWidget(self.fit_button)
        bar.addWidget(self.one_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.graphics, 1)

    # -- content --------------------------------------------------------------------------------------
    def set_sources(self, sources: dict[str, np.ndarray], notes: dict[str, str] | None = None) -> None:
        """Versions of one image (same H and W); the current choice of sides is kept where still possible."""
        left, right = self.left_combo.currentText(), self.right_combo.currentText()
        new_shape = None
        for img in sources.values():
            new_shape = tuple(img.shape[:2])
            break
        refit = new_shape != self.shape
        self.sources, self.notes, self.shape = dict(sources), dict(notes or {}), new_shape
        for combo, keep in ((self.left_combo, left), (self.right_combo, right)):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(list(self.sources))
            if keep in self.sources:
                combo.setCurrentText(keep)
            combo.blockSignals(False)
        if self.shape is not None:
            h, w = self.shape
            self.divider.setBounds((0, w))
            if refit or not 0 <= self.divider.value() <= w:
                self.divider.setValue(w / 2)
        self._show()
        if refit:
            self.fit()

    def set_pair(self, left: str, right: str) -> None:
        for combo, name in ((self.left_combo, left), (self.right_combo, right)):
            if name in self.sources:
                combo.blockSignals(True)
                combo.setCurrentText(name)
                combo.blockSignals(False)
        self._show()

    def pair(self) -> tuple[str, str]:
        return self.left_combo.currentText(), self.right_combo.currentText()

    def clear(self) -> None:
        self.sources, self.shape = {}, None
        for combo in (self.left_combo, self.right_combo):
            combo.blockSignals(True)
            combo.clear()
            combo.blockSignals(False)
        show_rgb(self.left_item, None)
        show_rgb(self.right_item, None)
        self.left_text.setText("")
        self.right_text.setText("")

    def _label(self, name: str) -> str:
        note = self.notes.get(name)
        return f"{name} — {note}" if note else name

    def _show(self) -> None:
        left, right = self.pair()
        show_rgb(self.left_item, self.sources.get(left))
        show_rgb(self.right_item, self.sources.get(right))
        self.left_text.setText(self._label(left) if left else "")
        self.right_text.setText(self._label(right) if right else "")
        self._clip_to_divider()
        self._on_range()
        if left or right:
            self.pair_changed.emit(left, right)

    def _clip_to_divider(self) -> None:
        if self.shape is None:
            return
        h, w = self.shape
        x = float(np.clip(self.divider.value(), 0, w))
        self.clip.setRect(QRectF(x, 0, w - x, h))

    # -- zoom -----------------------------------------------------------------------------------------
    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        (x0, x1), _ = self.box.viewRange()
        width = self.box.width()
        return width / (x1 - x0) if x1 > x0 and width > 0 else 1.0

    def set_zoom(self, factor: float) -> None:
        """Zoom to `factor` screen pixels per image pixel, about the current centre."""
        (x0, x1), (y0, y1) = self.box.viewRange()
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        hw = self.box.width() / factor / 2
        hh = self.box.height() / factor / 2
        self.box.setRange(xRange=(cx - hw, cx + hw), yRange=(cy - hh, cy + hh), padding=0)

    def fit(self) -> None:
        if self.shape is not None:
            h, w = self.shape
            self.box.setRange(xRange=(0, w), yRange=(0, h), padding=0)
            # again once laid out (a hidden view has no size yet)
            self._pending = "fit" if not self.isVisible() or self.box.width() < 2 else None

    def view_state(self):
        """What a linked view should show: "fit" while the whole image is in view, else (centre x, centre y,
        zoom in screen pixels per image pixel); None when empty."""
        if self.shape is None:
            return None
        pending = getattr(self, "_pending", None)
        return pending if pending is not None else box_state(self.box, self.shape)

    def set_view_state(self, state) -> None:
        """Show what `view_state` of a linked view returned: the same centre at the same zoom percentage (or the
        whole image), now or once this view is laid out. This is the linked zoom between split views on
        different tabs (a live link to a hidden view would fight its aspect lock)."""
        if state is None or self.shape is None:
            return
        if state == "fit":
            self.fit()
            return
        if not self.isVisible() or self.box.width() < 2:
            self._pending = tuple(state)
            return
        self._pending = None
        set_box_state(self.box, state, self.shape)

    def _apply_pending(self) -> None:
        pending, self._pending = getattr(self, "_pending", None), None
        if pending is not None:
            self.set_view_state(pending)

    def showEvent(self, e) -> None:
        super().showEvent(e)
        if getattr(self, "_pending", None) is not None:
            from PySide6.QtCore import QTimer
            QTimer.singleShot(0, self._apply_pending)

    def resizeEvent(self, e) -> None:
        super().resizeEvent(e)
        if getattr(self, "_pending", None) is not None and self.isVisible():
            self._apply_pending()

    def _on_range(self, *_) -> None:
        (x0, x1), (y0, y1) = self.box.viewRange()
        self.left_text.setPos(x0, y0)
        self.right_text.setPos(x1, y0)
        z = self.zoom()
        self.zoom_label.setText(f"Zoom {100 * z:.0f}%")
        self.zoom_changed.emit(z)

    def link_to(self, box: pg.ViewBox) -> None:
        """Share zoom and pan with another view of the same image."""
        self.box.setXLink(box)
        self.box.setYLink(box)
