"""“Explore rates”: encode the current image at a ladder of rates in the background, then flip among the
cached results with a slider. Each position is shown in a large split view (COMBINER | JPEG by default; either
side may be the original, COMBINER or JPEG / WebP / AVIF at the nearest file size), with zoom and divider kept
while flipping, a table with PSNR and MS-SSIM, and every point on a rate–distortion plot (the classical codecs run with Pillow in the worker thread, so a large
image never stalls the window). Images of any size are patch-coded, on a ladder of their own that covers the
patch priors' range (`PATCH_LADDER`)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QWidget

from engine.errors import CombinerError

from . import baselines

from .compare import SplitCompare
from .result_view import equal_size_table
from .ladder import LadderMixin
from .plans import alpha_bytes, distinct_rates, plan_image, use_patches
from .worker import EncodeRunner, EncodeResult

LADDER = (0.3, 0.5, 0.8, 1.2, 2.0, 3.0)
PATCH_LADDER = (0.15, 0.25, 0.4, 0.6, 0.9, 1.2)   # the patch priors cover about 0.1-1.2 bpp
COLORS = {"COMBINER": (40, 110, 220), "JPEG": (200, 80, 40), "WebP": (40, 160, 90), "AVIF": (150, 60, 170)}


def feasible_rates(shape, ladder=LADDER, prior_dirs=None, alpha: bytes = b"") -> list[float]:
    """Rates of the ladder the installed priors can code, each giving a distinct file (same prior and block
    count as an earlier rung, e.g. past a prior's capacity, is dropped). A rate below the smallest file of a
    patch-coded image (one block per patch) is dropped too, unless no rate is above it."""
    return distinct_rates(ladder, lambda r: plan_image(shape, r, prior_dirs, alpha=alpha))


class RateExplorer(LadderMixin, QWidget):
    busy_changed = Signal(bool)
    ladder_done = Signal(bool)          # cancelled?
    result_added = Signal(int)          # number of cached results
    shown = Signal(int)                 # slider position shown
    failed = Signal(str)

    RATE_UNIT = "bpp"

    def has_signal(self) -> bool:
        return self.image is not None

    def __init__(self, settings: Callable[[], tuple], prior_dirs=None, ladder=LADDER, parent=None,
                 patch_ladder=PATCH_LADDER):
        """`settings()` -> (FitConfig, device, audio's delta choice) at the moment Explore is pressed. `ladder`
        serves images coded as one INR, `patch_ladder` patch-coded images."""
        super().__init__(parent)
        self.settings, self.prior_dirs, self.ladder = settings, prior_dirs, tuple(ladder)
        self.patch_ladder = tuple(patch_ladder)
        self.rates: list[float] = []
        self.image: np.ndarray | None = None
        self.results: list[EncodeResult] = []
        self._baseline_cache: dict[int, list[baselines.CodedImage]] = {}   # by COMBINER file size
        self._curves_cache: dict[str, list] | None = None
        self.runner = EncodeRunner(self)
        self.runner.encoded.connect(self._on_encoded)
        self.runner.rate_failed.connect(self._on_rate_failed)
        self.runner.curves.connect(self._on_curves)
        self.runner.failed.connect(self.failed)
        self.runner.done.connect(self._on_done)
        self.codecs = baselines.codecs()

        self._build_controls("", "Open an image, then encode it at a ladder of rates.")
        self.split = SplitCompare()
        self.split.setObjectName("explorerSplit")

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

        self._lay_out(self.split, self.rd, rd_stretch=1)

    # -- state ----------------------------------------------------------------------------------------
    def set_image(self, image: np.ndarray | None) -> None:
        self.runner.cancel()
        self.image = image
        self.results, self._baseline_cache, self._curves_cache = [], {}, None
        self._reset_ladder()
        self.split.clear()
        self.rd_ladder.setData([], [])
        for c in self.rd_curves.values():
            c.setData([], [])
        self.rd_matched.setData([])
        self.rd_current.setData([])
        self.explore_button.setEnabled(image is not None and not self.runner.is_running())
        self.status.setText("Press Explore rates to encode this image at a ladder of rates."
                            if image is not None else "Open an image first.")

    def ladder_for(self, shape) -> tuple[float, ...]:
        """The ladder of rates for an image of this shape: patch-coded images get the patch priors' range."""
        return self.patch_ladder if use_patches(shape, self.prior_dirs) else self.ladder

    def explore(self) -> None:
        if self.image is None or self.runner.is_running():
            return
        ladder = self.ladder_for(self.image.shape)
        try:
            alpha = alpha_bytes(self.image) if ladder is self.patch_ladder else b""
            rates = feasible_rates(self.image.shape, ladder, self.prior_dirs, alpha)
        except CombinerError as e:
            self.failed.emit(str(e))
            return
        if not rates:
            self.failed.emit("No installed prior can code this image at any rate of the ladder "
                             f"({', '.join(f'{r:g}' for r in ladder)} bpp).")
            return
        self.set_image(self.image)
        self._start(self.image, rates, f"Encoding at {', '.join(f'{r:g}' for r in rates)} bpp…")

    def _on_encoded(self, i: int, res: EncodeResult) -> None:
        self.results.append(res)
        self.results.sort(key=lambda r: r.encoded.bpp)
        self.status.setText(f"{len(self.results)} of {len(self.rates)} rates encoded…")
        xs = [r.encoded.bpp for r in self.results]
        self.rd_ladder.setData(xs, [r.encoded.psnr for r in self.results])
        self._slide_to(res)

    # -- showing --------------------------------------------------------------------------------------
    def _on_curves(self, curves: dict) -> None:
        """The classical codecs' rate–distortion curves, made by the worker before the first rate."""
        self._curves_cache = curves
        self._draw_curves()

    def _draw_curves(self) -> None:
        if self._curves_cache is None:
            colour = baselines.colour(self.image)
            self._curves_cache = {c: baselines.rd_curve(colour, c) for c in self.codecs}
        for c, pts in self._curves_cache.items():
            if pts and c in self.rd_curves:
                self.rd_curves[c].setData(*zip(*pts))

    def baselines_for(self, pos: int) -> list[baselines.CodedImage]:
        """JPEG / WebP / AVIF at the size of result `pos`: made by the worker with the result, or here once."""
        res = self.results[pos]
        if res.references:
            return res.references
        n = len(res.encoded.data)
        if n not in self._baseline_cache:     # measured once, when the result arrives and is first shown
            colour = baselines.colour(self.image)
            self._baseline_cache[n] = [baselines.at_size(colour, c, n) for c in self.codecs]
        return self._baseline_cache[n]

    def show_position(self, pos: int) -> None:
        if not 0 <= pos < len(self.results) or self.image is None:
            return
        res = self.results[pos]
        self._shown_result = res
        enc = res.encoded
        px = self.image.shape[0] * self.image.shape[1]
        others = self.baselines_for(pos)
        self.rate_label.setText(f"{enc.bpp:.2f} bpp")
        sources = {"Original": self.image, "COMBINER": enc.reconstruction}
        notes = {"COMBINER": f"{enc.bpp:.3f} bpp, {enc.psnr:.2f} dB"}
        rows = [("COMBINER", len(enc.data), enc.bpp, enc.psnr, res.metrics.get("ms_ssim"), "")]
        for o in others:
            sources[o.codec] = o.decoded
            notes[o.codec] = f"{o.bpp(px):.3f} bpp, {o.psnr:.2f} dB"
            note = f"quality {o.quality}"
            if o.quality == 1 and o.nbytes > 1.25 * len(enc.data):
                note += " (its smallest file)"
            rows.append((o.codec, o.nbytes, o.bpp(px), o.psnr, res.ref_metrics.get(o.codec, {}).get("ms_ssim"),
                         note))
        first = not self.split.sources
        self.split.set_sources(sources, notes)    # keeps the zoom, the divider and the chosen sides
        if first:
            self.split.set_pair("COMBINER", others[0].codec if others else "Original")
        self.table.setText(equal_size_table(rows))
        self.rd_current.setData([enc.bpp], [enc.psnr])
        self.rd_matched.setData([o.bpp(px) for o in others], [o.psnr for o in others],
                                brush=[pg.mkBrush(COLORS[o.codec]) for o in others])
        self.shown.emit(pos)
