"""“Explore rates”: encode the current image at a ladder of rates in the background, then flip among the
cached results with a slider. Each position also shows JPEG / WebP / AVIF at the nearest file size
(encoded on the spot with Pillow) and every point on a small rate–distortion plot."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget)

from engine.errors import CombinerError

from . import baselines
from .image_panels import image_box, show_rgb
from .ladder import LadderMixin
from .worker import EncodeRunner, EncodeResult, plan_encode

LADDER = (0.3, 0.5, 0.8, 1.2, 2.0, 3.0)
COLORS = {"COMBINER": (40, 110, 220), "JPEG": (200, 80, 40), "WebP": (40, 160, 90), "AVIF": (150, 60, 170)}


def feasible_rates(shape, ladder=LADDER, prior_dirs=None) -> list[float]:
    """Rates of the ladder the installed priors can code, each giving a distinct file (same prior and block
    count as an earlier rung, e.g. past a prior's capacity, is dropped)."""
    out, seen = [], set()
    for r in ladder:
        try:
            p = plan_encode(shape, r, prior_dirs)
        except CombinerError:
            continue
        key = (p.prior.id, min(p.n_blocks, p.prior.n_params))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


class RateExplorer(LadderMixin, QWidget):
    busy_changed = Signal(bool)
    ladder_done = Signal(bool)          # cancelled?
    result_added = Signal(int)          # number of cached results
    shown = Signal(int)                 # slider position shown
    failed = Signal(str)

    RATE_UNIT = "bpp"

    def has_signal(self) -> bool:
        return self.image is not None

    def __init__(self, settings: Callable[[], tuple], prior_dirs=None, ladder=LADDER, parent=None):
        """`settings()` -> (FitConfig, device) at the moment Explore is pressed."""
        super().__init__(parent)
        self.settings, self.prior_dirs, self.ladder = settings, prior_dirs, tuple(ladder)
        self.image: np.ndarray | None = None
        self.results: list[EncodeResult] = []
        self._baseline_cache: dict[int, list[baselines.CodedImage]] = {}   # by COMBINER file size
        self._curves_cache: dict[str, list] | None = None
        self.runner = EncodeRunner(self)
        self.runner.encoded.connect(self._on_encoded)
        self.runner.rate_failed.connect(self._on_rate_failed)
        self.runner.failed.connect(self.failed)
        self.runner.done.connect(self._on_done)
        self.codecs = baselines.codecs()

        self.explore_button = QPushButton("Explore rates")
        self.explore_button.setObjectName("exploreButton")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("exploreCancelButton")
        self.cancel_button.setEnabled(False)
        self.status = QLabel("Open an image, then encode it at a ladder of rates.")
        self.status.setObjectName("exploreStatus")
        self.explore_button.clicked.connect(self.explore)
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("rateSlider")
        self.slider.setEnabled(False)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(1)
        self.slider.setPageStep(1)
        self.slider.valueChanged.connect(self.show_position)
        self.rate_label = QLabel("")
        self.rate_label.setObjectName("rateLabel")
        self.rate_label.setMinimumWidth(90)

        self.graphics = pg.GraphicsLayoutWidget()
        self.panels = {}
        for col, name in enumerate(["COMBINER"] + self.codecs):
            self.panels[name] = image_box(self.graphics, 0, col, name)
            self.graphics.ci.layout.setColumnStretchFactor(col, 1)
            self.graphics.ci.layout.setColumnPreferredWidth(col, 10)
        self.table = QLabel("")
        self.table.setObjectName("exploreTable")
        self.table.setTextFormat(Qt.TextFormat.RichText)

        self.rd = pg.PlotWidget(title="Rate–distortion (this image)")
        self.rd.setObjectName("rdPlot")
        self.rd.setLabel("bottom", "rate", units="bpp")
        self.rd.setLabel("left", "PSNR", units="dB")
        self.rd.addLegend(offset=(-5, 5), labelTextSize="8pt")
        self.rd.showGrid(x=True, y=True, alpha=0.2)
        self.rd.hideButtons()
        self.rd_ladder = self.rd.plot([], [], pen=pg.mkPen(COLORS["COMBINER"], width=2), symbol="o",
                                      symbolBrush=COLORS["COMBINER"], symbolSize=7, name="COMBINER")
        self.rd_curves = {c: self.rd.plot([], [], pen=pg.mkPen(COLORS[c], width=1, style=Qt.PenStyle.DashLine),
                                          name=c) for c in self.codecs}
        self.rd_matched = pg.ScatterPlotItem(size=10, symbol="s", pen=pg.mkPen("k"))
        self.rd.addItem(self.rd_matched)
        self.rd_current = pg.ScatterPlotItem(size=16, symbol="o", brush=None,   # light ring: dark background
                                             pen=pg.mkPen((235, 235, 235), width=2))
        self.rd.addItem(self.rd_current)

        top = QHBoxLayout()
        top.addWidget(self.explore_button)
        top.addWidget(self.cancel_button)
        top.addWidget(self.status, 1)
        srow = QHBoxLayout()
        srow.addWidget(QLabel("Rate"))
        srow.addWidget(self.slider, 1)
        srow.addWidget(self.rate_label)
        grid = QGridLayout()
        grid.addWidget(self.graphics, 0, 0)
        grid.addWidget(self.rd, 0, 1, 2, 1)
        grid.addWidget(self.table, 1, 0)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(srow)
        lay.addLayout(grid, 1)

    # -- state ----------------------------------------------------------------------------------------
    def set_image(self, image: np.ndarray | None) -> None:
        self.runner.cancel()
        self.image = image
        self.results, self._baseline_cache, self._curves_cache = [], {}, None
        self.slider.setEnabled(False)
        self.slider.setRange(0, 0)
        self.rate_label.setText("")
        self.table.setText("")
        for _, item, _ in self.panels.values():
            show_rgb(item, None)
        self.rd_ladder.setData([], [])
        for c in self.rd_curves.values():
            c.setData([], [])
        self.rd_matched.setData([])
        self.rd_current.setData([])
        self.explore_button.setEnabled(image is not None and not self.runner.is_running())
        self.status.setText("Press Explore rates to encode this image at a ladder of rates."
                            if image is not None else "Open an image first.")

    def explore(self) -> None:
        if self.image is None or self.runner.is_running():
            return
        rates = feasible_rates(self.image.shape, self.ladder, self.prior_dirs)
        if not rates:
            self.failed.emit("No installed prior can code this image at any rate of the ladder "
                             f"({', '.join(f'{r:g}' for r in self.ladder)} bpp).")
            return
        self.set_image(self.image)
        self.rates = rates
        fit, device = self.settings()
        self.explore_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Encoding at {', '.join(f'{r:g}' for r in rates)} bpp…")
        self._draw_curves()
        self.busy_changed.emit(True)
        self.runner.start(self.image, rates, fit, device, self.prior_dirs, keep_going=True)

    def _on_encoded(self, i: int, res: EncodeResult) -> None:
        self.results.append(res)
        self.results.sort(key=lambda r: r.encoded.bpp)
        self.status.setText(f"{len(self.results)} of {len(self.rates)} rates encoded…")
        xs = [r.encoded.bpp for r in self.results]
        self.rd_ladder.setData(xs, [r.encoded.psnr for r in self.results])
        self._slide_to(res)

    # -- showing --------------------------------------------------------------------------------------
    def _draw_curves(self) -> None:
        if self._curves_cache is None:
            self._curves_cache = {c: baselines.rd_curve(self.image, c) for c in self.codecs}
        for c, pts in self._curves_cache.items():
            if pts:
                self.rd_curves[c].setData(*zip(*pts))

    def baselines_for(self, pos: int) -> list[baselines.CodedImage]:
        n = len(self.results[pos].encoded.data)
        if n not in self._baseline_cache:     # measured once, when the result arrives and is first shown
            self._baseline_cache[n] = [baselines.at_size(self.image, c, n) for c in self.codecs]
        return self._baseline_cache[n]

    def show_position(self, pos: int) -> None:
        if not 0 <= pos < len(self.results) or self.image is None:
            return
        enc = self.results[pos].encoded
        px = self.image.shape[0] * self.image.shape[1]
        others = self.baselines_for(pos)
        self.rate_label.setText(f"{enc.bpp:.2f} bpp")
        show_rgb(self.panels["COMBINER"][1], enc.reconstruction)
        self.panels["COMBINER"][2].setText(f"COMBINER<br>{enc.bpp:.2f} bpp")
        rows = [("COMBINER", len(enc.data), enc.bpp, enc.psnr, "")]
        for o in others:
            show_rgb(self.panels[o.codec][1], o.decoded)
            self.panels[o.codec][2].setText(f"{o.codec}<br>{o.bpp(px):.2f} bpp")
            note = f"quality {o.quality}"
            if o.quality == 1 and o.nbytes > 1.25 * len(enc.data):
                note += " (its smallest file)"
            rows.append((o.codec, o.nbytes, o.bpp(px), o.psnr, note))
        for box, _, _ in self.panels.values():
            box.autoRange(padding=0)
        cell = "<td style='padding:0 8px'>{}</td>"
        html = "<table><tr>" + "".join(f"<th style='padding:0 8px'>{h}</th>" for h in
                                       ("codec", "bytes", "bpp", "PSNR (dB)", "")) + "</tr>"
        for name, nb, bpp, ps, note in rows:
            html += "<tr>" + "".join(cell.format(v) for v in (f"<b>{name}</b>", nb, f"{bpp:.3f}", f"{ps:.2f}",
                                                                note)) + "</tr>"
        self.table.setText(html + "</table>")
        self.rd_current.setData([enc.bpp], [enc.psnr])
        self.rd_matched.setData([o.bpp(px) for o in others], [o.psnr for o in others],
                                brush=[pg.mkBrush(COLORS[o.codec]) for o in others])
        self.shown.emit(pos)
